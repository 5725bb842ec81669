"""Soak: does a long run hold its memory, threads and open files flat, and drop nothing?

    .venv/bin/python -m benchmarks.soak [--minutes 60] [--serve-minutes 10] [--out benchmarks/results/soak.json]

1. The pipeline: the demo clip looped as a live-paced 30 fps stream (the path a camera or
   the browser takes: ``Pipeline.start`` + ``push``), model on, for ``--minutes``.
2. The server: ``realtime-me serve`` in a subprocess, with clients that open a session,
   stream a second of frames over the socket and vanish without saying goodbye, in a loop
   for ``--serve-minutes`` (so the session cap and the idle reaper do the cleaning).

Every few seconds the process's RSS, threads and open file descriptors are sampled. Targets,
after the warm-up (minute 5, or the first twelfth of a shorter run): RSS trend <= 5 %
(``rss_trend_pct``, see ``verdict``), threads and descriptors flat, zero dropped frames.
JSON and a plot in benchmarks/results/.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]

from realtime_me.pipeline import Pipeline, PipelineConfig
from realtime_me.sources import DemoSource

SAMPLE_S = 5.0


def proc_sample(pid: int, t0: float) -> dict:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = {k: v.split()[0] for k, _, v in (line.partition(":") for line in status) if k in ("VmRSS", "Threads")}
    return {"t_s": round(time.monotonic() - t0, 1), "rss_mb": round(int(fields["VmRSS"]) / 1024, 1),
            "threads": int(fields["Threads"]), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def verdict(samples: list[dict], total_s: float) -> dict:
    """RSS growth from the end of warm-up (minute 5, or 1/12 of a shorter run) to the end;
    spread of threads and descriptors over the same span. RSS saw-tooths by tens of MB
    (allocator pools filled and returned), so a two-sample difference depends on where the
    ends fall; the trend is the median of the last quarter of the steady span against
    the median of its first quarter."""
    warm = min(300.0, total_s / 12)
    steady = [s for s in samples if s["t_s"] >= warm] or samples[-1:]
    rss0, rss1 = steady[0]["rss_mb"], samples[-1]["rss_mb"]
    rss_peak = max(s["rss_mb"] for s in steady)
    q = max(1, len(steady) // 4)
    first, last = (float(np.median([s["rss_mb"] for s in part])) for part in (steady[:q], steady[-q:]))
    return {"warmup_s": round(warm, 1), "rss_start_mb": rss0, "rss_end_mb": rss1, "rss_peak_mb": rss_peak,
            "rss_growth_pct": round(100 * (rss1 - rss0) / rss0, 2),
            "rss_peak_growth_pct": round(100 * (rss_peak - rss0) / rss0, 2),
            "rss_median_first_quarter_mb": first, "rss_median_last_quarter_mb": last,
            "rss_trend_pct": round(100 * (last - first) / first, 2),
            "threads_range": [min(s["threads"] for s in steady), max(s["threads"] for s in steady)],
            "fds_range": [min(s["fds"] for s in steady), max(s["fds"] for s in steady)]}


def looped_demo(lap_s: float):
    """Frames of the demo clip, lap after lap (rendered once per lap, never held whole)."""
    while True:
        yield from DemoSource(seed=7, fps=30.0, duration_s=lap_s, realtime=False).clip.frames()


def soak_pipeline(minutes: float) -> dict:
    fps, total_s = 30.0, minutes * 60
    pipeline = Pipeline(PipelineConfig())
    pipeline.start(fps, live=True)
    t0 = time.monotonic()
    samples, next_sample = [proc_sample(os.getpid(), t0)], t0 + SAMPLE_S
    frames = looped_demo(60.0)
    bar = tqdm(total=int(total_s), unit="s", desc="pipeline soak", file=sys.stderr)
    index = 0
    while (now := time.monotonic()) - t0 < total_s:
        due = t0 + index / fps
        if due > now:
            time.sleep(due - now)
        pipeline.push(next(frames), t=index / fps, index=index)
        index += 1
        if time.monotonic() >= next_sample:
            samples.append({**proc_sample(os.getpid(), t0), "dropped": pipeline.stats.frames_dropped})
            next_sample += SAMPLE_S
            bar.update(int(samples[-1]["t_s"]) - bar.n)
    bar.close()
    stats = pipeline.stop().to_dict()
    v = verdict(samples, total_s)
    at_warm = next((x["dropped"] for x in samples[1:] if x["t_s"] >= v["warmup_s"]), 0)
    return {"frames_pushed": index, "frames_processed": stats["frames_processed"],
            "frames_dropped": stats["frames_dropped"], "frames_dropped_after_warmup": stats["frames_dropped"] - at_warm,
            "events": len(pipeline.events),
            "fps_processed": stats["fps_processed"], "samples": samples, **v}


def soak_server(minutes: float) -> dict:
    from websockets.sync.client import connect

    from realtime_me.web.client import ServerProcess
    from realtime_me.web.stream import HEADER, encode_frame

    server = ServerProcess("--max-sessions", "4", "--idle-timeout", "10")
    jpegs = [encode_frame(img, float("nan"), 0.0, 0)[HEADER.size:] for img, _ in zip(looped_demo(2.0), range(30))]

    t0, total_s = time.monotonic(), minutes * 60
    samples, clients, busy = [proc_sample(server.proc.pid, t0)], 0, 0
    bar = tqdm(total=int(total_s), unit="s", desc="serve soak", file=sys.stderr)
    try:
        while time.monotonic() - t0 < total_s:
            token = server.session_token(f"soak-{clients}")
            clients += 1
            if token is None:          # every slot taken: the reaper frees one within seconds
                busy += 1
                time.sleep(2.0)
            else:
                with connect(f"ws://127.0.0.1:{server.port}/rtme/ws?token={token}&fps=30", open_timeout=60) as ws:
                    while True:       # wait for "ready" (tracker and model loaded)
                        msg = ws.recv(timeout=60)
                        if isinstance(msg, str) and json.loads(msg)["type"] == "ready":
                            break
                    for k, jpeg in enumerate(jpegs):
                        ws.send(HEADER.pack(float("nan"), (k + 1) / 30, k + 1) + jpeg)
                        time.sleep(1 / 30)
            samples.append(proc_sample(server.proc.pid, t0))
            bar.update(int(samples[-1]["t_s"]) - bar.n)
    finally:
        bar.close()
        server.close()
    return {"clients": clients, "refused_busy": busy, "samples": samples, **verdict(samples, total_s)}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [k for k in ("pipeline", "serve") if k in result]
    fig, axes = plt.subplots(len(parts), 1, figsize=(8, 3.2 * len(parts)), squeeze=False)
    for ax, name in zip(axes[:, 0], parts):
        s = result[name]["samples"]
        t = [x["t_s"] / 60 for x in s]
        ax.plot(t, [x["rss_mb"] for x in s], label="RSS (MB)")
        ax.set_xlabel("minutes")
        ax.set_ylabel("RSS (MB)")
        ax.axvline(result[name]["warmup_s"] / 60, color="grey", ls=":", label="end of warm-up")
        ax2 = ax.twinx()
        ax2.plot(t, [x["threads"] for x in s], color="tab:orange", label="threads")
        ax2.plot(t, [x["fds"] for x in s], color="tab:green", label="open fds")
        ax2.set_ylabel("threads / fds")
        ax.set_title(f"{name}: RSS {result[name]['rss_growth_pct']:+.1f} % after warm-up")
        ax.legend(loc="upper left")
        ax2.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0, help="pipeline soak length (0: skip)")
    ap.add_argument("--serve-minutes", type=float, default=10.0, help="server soak length (0: skip)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "soak.json"))
    args = ap.parse_args()
    result = {"machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
              "date": time.strftime("%Y-%m-%d"), "minutes": args.minutes, "serve_minutes": args.serve_minutes}
    if args.minutes > 0:
        result["pipeline"] = soak_pipeline(args.minutes)
    if args.serve_minutes > 0:
        result["serve"] = soak_server(args.serve_minutes)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    plot(result, out.with_suffix(".png"))
    for name in ("pipeline", "serve"):
        if name in result:
            r = {k: v for k, v in result[name].items() if k != "samples"}
            print(name, json.dumps(r))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
