"""Throughput and per-stage latency of the live pipeline, as fast as possible.

    .venv/bin/python benchmarks/pipeline.py [--out benchmarks/results/pipeline.json]

Runs the same Pipeline object the CLI uses on (1) the built-in demo clip at
640x480 and (2) ../shared/data/videos/single_face.mp4 (if present), offline with
back-pressure (no frame dropped), and reports processed fps plus p50/p95/max per
stage. Target (issue 2): decode + landmarks + alignment sustain >= 100 fps at
640x480 on a 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime_me.pipeline import Pipeline, PipelineConfig  # noqa: E402
from realtime_me.sources import DemoSource, VideoSource  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def bench(source, classify: bool) -> dict:
    pipeline = Pipeline(PipelineConfig(classify=classify))
    result = pipeline.run(source)
    s = result.stats.to_dict()
    lat = s["latency"]
    per_frame_ms = sum(lat[k]["mean_ms"] for k in ("decode", "landmarks", "align") if lat.get(k, {}).get("count"))
    return {
        "source": source.info.name,
        "resolution": f"{source.info.width}x{source.info.height}",
        "frames": s["frames_processed"],
        "frames_dropped": s["frames_dropped"],
        "fps_processed": s["fps_processed"],
        "per_frame_path_ms": round(per_frame_ms, 3),
        "per_frame_path_fps_single_thread": round(1000 / per_frame_ms, 1) if per_frame_ms else None,
        "classify": classify,
        "events": len(result.events),
        "latency": lat,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pipeline.json"))
    ap.add_argument("--no-classify", action="store_true", help="leave the model out (spotting only)")
    args = ap.parse_args()
    classify = not args.no_classify
    runs = [bench(DemoSource(seed=7, fps=30, duration_s=20, realtime=False), classify)]
    video = SHARED / "videos" / "single_face.mp4"
    if video.exists():
        runs.append(bench(VideoSource(video, realtime=False), classify))
    out = {"machine": {"cpus": __import__("os").cpu_count(), "processor": platform.processor() or platform.machine(),
                       "python": platform.python_version()},
           "date": time.strftime("%Y-%m-%d"), "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    for r in runs:
        print(f"{r['source']:<45} {r['resolution']:>8}  {r['fps_processed']:7.1f} fps processed  "
              f"decode+landmarks+align {r['per_frame_path_ms']:.2f} ms/frame")
        for k, v in r["latency"].items():
            if v.get("count"):
                print(f"    {k:<10} p50 {v['p50_ms']:7.3f}  p95 {v['p95_ms']:7.3f}  max {v['max_ms']:7.3f} ms")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
