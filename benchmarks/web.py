"""Frame delivery and latency of the browser demo, measured in a real browser.

    .venv/bin/python -m benchmarks.web [--seconds 30] [--out benchmarks/results/web.json]

Starts the demo server (the app ``realtime-me serve`` runs) on 127.0.0.1, opens it in Debian's
headless Chromium whose fake camera plays a generated 640x480 30 fps clip with labelled
micro-expressions, presses Start and streams for ``--seconds``. Reports how many of the
camera's frames reached the pipeline (with the browser's capture times), where the others
were lost (browser-side gaps in presentedFrames, the pipeline ring), capture -> server
latency, processing, and which of the clip's MEs the page's event log shows. Writes the
JSON and a screenshot (web_live.png) into benchmarks/results/. Needs /usr/bin/chromium
(apt-get install -y chromium) and the playwright Python package (never `playwright install`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from realtime_me.pipeline import PipelineConfig
from realtime_me.web import ServeConfig
from testkit.harness import (CHROMIUM, ServerThread, false_alarms, make_camera_clip, match_truth,
                             run_live)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="streaming time (default 30)")
    ap.add_argument("--seed", type=int, default=11, help="generated camera clip (default 11)")
    ap.add_argument("--clip-seconds", type=float, default=15.0, help="clip length; the fake camera loops it")
    ap.add_argument("--no-classify", action="store_true", help="spot only")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "web.json"))
    args = ap.parse_args()
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} missing: apt-get update && apt-get install -y chromium", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rtme-bench-web-") as tmp:
        y4m, truth = make_camera_clip(Path(tmp), seed=args.seed, duration_s=args.clip_seconds)
        load_before = os.getloadavg()
        with ServerThread(ServeConfig(pipeline=PipelineConfig(classify=not args.no_classify))) as srv:
            run = run_live(srv, y4m, args.seconds, screenshot=out.parent / "web_live.png")
        load_after = os.getloadavg()
    found, missed = match_truth(run.page_events, truth)
    result = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "load_avg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)]},
        "browser": "Debian chromium, headless, fake camera from a .y4m (640x480, 30 fps, looped)",
        "camera_seconds": run.seconds,
        "frames_into_pipeline": run.pipeline["frames_in"],
        "delivery": round(run.delivery, 4),
        "browser_gaps": run.link["gaps"],
        "browser_skipped_busy": run.client.get("skipped"),
        "browser_client_counters": run.client,
        "ring_dropped": run.pipeline["frames_dropped"],
        "frames_processed": run.pipeline["frames_processed"],
        "frames_with_face": run.pipeline["frames_with_face"],
        "fps_processed": run.pipeline["fps_processed"],
        "capture_to_server_ms": {"p50": run.link["capture_to_server_ms_p50"],
                                 "p95": run.link["capture_to_server_ms_p95"]},
        "browser_jpeg_encode_ms_p50": run.client.get("encode_ms"),
        "per_stage_latency": run.pipeline["latency"],
        "mbit_s": run.link["mbit_s"],
        "mes_true": len(found) + len(missed),
        "mes_on_page": len(found),
        "mes_missed_apex_s": [m["apex_s"] for m in missed],
        "page_me_rows_matching_no_true_me": len(false_alarms(run.page_events, truth)),
        "page_events": run.page_events,
        "cleanup_after_page_close_s": run.closed_after_s,
        "page_errors": run.errors,
    }
    out.write_text(json.dumps(result, indent=2))
    print(f"{result['frames_into_pipeline']} frames in {run.seconds:.1f} s: delivery {run.delivery:.1%} "
          f"(browser gaps {run.link['gaps']}, ring drops {run.pipeline['frames_dropped']}); capture->server p50 "
          f"{run.link['capture_to_server_ms_p50']} ms p95 {run.link['capture_to_server_ms_p95']} ms; "
          f"MEs on the page {len(found)}/{len(found) + len(missed)}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
