"""Per-frame cost of the spotting kernels: numba vs the NumPy reference, same input.

Feeds a landmark track with micro-expressions, blinks, a macro-expression and head
motion (``testkit.tracks``) to ``Spotter.kernel_step`` (the whole per-frame hot path:
alignment, smoothing, region differences, noise, state machine, decisions) and to
``Spotter.update`` (what the pipeline calls: + Python glue, MotionSample, Windows),
at 30 and 200 fps, and checks both backends spot the same windows.

    .venv/bin/python -m benchmarks.spotting [--json benchmarks/results/spotting_kernels.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from realtime_me.spotting import Spotter
from realtime_me.types import CropPoints
from testkit.tracks import TrackBuilder

OUT = Path(__file__).resolve().parent / "results" / "spotting_kernels.json"


def make_track(fps: float, seconds: float):
    b = TrackBuilder(fps, seconds, seed=1).head_motion()
    for i, t in enumerate(np.arange(2.0, seconds - 2.0, 3.0)):
        b.add_movement(("lip_corner_up", "brow_raise", "brow_lower", "chin_raise")[i % 4], t, 0.3, 0.03)
        b.add_blink(t + 1.3)
    b.add_macro("lip_corner_up", seconds - 4.0, 0.4, 1.0, 0.5, 0.08)
    return b.build()


def time_kernel(fps: float, backend: str, points: np.ndarray) -> np.ndarray:
    """Seconds per call of the backend's per-frame kernel over the track (fresh stream)."""
    sp = Spotter(fps, backend=backend)
    out = np.empty(len(points))
    clock = time.perf_counter
    for i, p in enumerate(points):
        t0 = clock()
        sp.kernel_step(p, i, i / fps)
        out[i] = clock() - t0
    return out


def time_update(sp: Spotter, points: np.ndarray) -> tuple[np.ndarray, list]:
    out = np.empty(len(points))
    windows = []
    clock = time.perf_counter
    for i, p in enumerate(points):
        lm = CropPoints(i, i / sp.fps, p)
        t0 = clock()
        windows += sp.update(lm)[1]
        out[i] = clock() - t0
    return out, windows


def stats(sec: np.ndarray) -> dict:
    us = sec * 1e6
    return {"mean_us": round(float(us.mean()), 2), "p50_us": round(float(np.percentile(us, 50)), 2),
            "p99_us": round(float(np.percentile(us, 99)), 2), "max_us": round(float(us.max()), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=str(OUT))
    ap.add_argument("--seconds", type=float, default=30.0, help="track length per fps (30)")
    ap.add_argument("--repeats", type=int, default=3, help="numba runs; the fastest mean counts (3)")
    args = ap.parse_args()
    res = {"machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
           "seconds": args.seconds, "fps": {}}
    for fps in (30.0, 200.0):
        track = make_track(fps, args.seconds)
        nb, ref = Spotter(fps, backend="numba"), Spotter(fps, backend="numpy")
        t0 = time.perf_counter()
        nb.warmup()
        warm = time.perf_counter() - t0
        kn = min((time_kernel(fps, "numba", track.points) for _ in range(args.repeats)), key=lambda a: a.mean())
        kr = time_kernel(fps, "numpy", track.points)
        un, wn = time_update(nb, track.points)
        ur, wr = time_update(ref, track.points)
        same = [(w.kind, w.onset_index, w.apex_index, w.offset_index) for w in wn] == \
               [(w.kind, w.onset_index, w.apex_index, w.offset_index) for w in wr]
        res["fps"][f"{fps:g}"] = {
            "frames": track.n,
            "warmup_s": round(warm, 3),
            "kernel_numba": stats(kn), "kernel_numpy": stats(kr),
            "kernel_speedup_mean": round(float(kr.mean() / kn.mean()), 1),
            "update_numba": stats(un), "update_numpy": stats(ur),
            "windows": len(wn), "same_windows_both_backends": same,
        }
        r = res["fps"][f"{fps:g}"]
        print(f"{fps:>5g} fps: kernel numba {r['kernel_numba']['mean_us']:.1f} us/frame "
              f"(p99 {r['kernel_numba']['p99_us']:.1f}), numpy {r['kernel_numpy']['mean_us']:.1f} us/frame, "
              f"x{r['kernel_speedup_mean']}; Spotter.update numba {r['update_numba']['mean_us']:.1f} us/frame; "
              f"{len(wn)} windows, same on both backends: {same}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
