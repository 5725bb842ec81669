"""Demo clip generator: render time per frame, and rendered vs requested ME amplitude.

    .venv/bin/python -m benchmarks.synth [--seeds 6] [--out benchmarks/results/synth.json]

Speed: every frame of the default 20 s, 640x480, 30 fps clip (all distractors on), then with
head motion off; split into frames with an expression/blink being drawn and frames without.

Amplitude: for each ME of quiet clips (no distractors) the displacement between its onset and
apex frames, measured two ways and expressed as a gain over the truth's landmark motion on the
moving region (landmarks the truth moves by >= half the peak), so gain x amplitude_px is the
measured amplitude: (1) MediaPipe's face mesh (FaceTracker, static mode), the spotter's
instrument; (2) Farneback optical flow sampled at the landmarks, a check of the pixels alone.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from realtime_me.landmarks import FaceTracker
from realtime_me.synth import SynthClip, SynthConfig
from realtime_me.types import Frame
from testkit.synth_measure import flow_at, gain_and_cosine

QUIET = dict(head_motion=False, noise=False, flicker=False, blinks=False, macro=False)


def speed(**kw) -> dict:
    """Wall and CPU (this thread; OpenCV runs single-threaded here) ms per frame. CPU time is
    what a frame costs; wall time also counts waiting for a core on a shared machine."""
    clip = SynthClip(SynthConfig(seed=7, **kw))
    clip.render(0)                       # lazy set-up (noise bank) outside the timing
    wall, cpu = {"event": [], "still": []}, {"event": [], "still": []}
    for i in range(clip.n_frames):
        t, c = time.perf_counter(), time.thread_time()
        clip.render(i)
        key = "event" if clip._active[i] >= 0 else "still"
        wall[key].append((time.perf_counter() - t) * 1e3)
        cpu[key].append((time.thread_time() - c) * 1e3)

    def stats(ms):
        return {"frames": len(ms), "mean_ms": round(float(np.mean(ms)), 3),
                "p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3)}

    return {"config": {"fps": 30, "duration_s": 20, "width": 640, "height": 480, **kw},
            **{f"{name}_{part}": stats(d[part] if part != "all" else d["event"] + d["still"])
               for name, d in (("cpu", cpu), ("wall", wall)) for part in ("all", "event", "still")}}


def amplitudes(seeds: int) -> dict:
    rows = []
    with FaceTracker(static_images=True) as tracker:
        for seed in range(seeds):
            clip = SynthClip(SynthConfig(seed=seed, duration_s=20, **QUIET))
            for e in clip.truth["events"]:
                on, ap = clip.render(e["onset_frame"]), clip.render(e["apex_frame"])
                p0 = clip.landmarks(e["onset_frame"])
                expected = clip.landmarks(e["apex_frame"]) - p0
                mesh = [tracker.process(Frame(0, 0.0, img)) for img in (on, ap)]
                g_mesh, c_mesh = gain_and_cosine(mesh[1].points[:, :2] - mesh[0].points[:, :2], expected)
                g_flow, c_flow = gain_and_cosine(flow_at(on, ap, p0), expected)
                rows.append({"seed": seed, "aus": "+".join(map(str, e["aus"])), "emotion": e["emotion"],
                             "amplitude_px": e["amplitude_px"],
                             "mesh_amplitude_px": round(g_mesh * e["amplitude_px"], 3),
                             "mesh_gain": round(g_mesh, 3), "mesh_cos": round(c_mesh, 3),
                             "flow_gain": round(g_flow, 3), "flow_cos": round(c_flow, 3)})
    per = defaultdict(list)
    for r in rows:
        per[r["aus"]].append(r)
    summary = {aus: {"n": len(rs),
                     "mesh_gain_median": round(float(np.median([r["mesh_gain"] for r in rs])), 3),
                     "mesh_gain_min": round(float(np.min([r["mesh_gain"] for r in rs])), 3),
                     "mesh_cos_median": round(float(np.median([r["mesh_cos"] for r in rs])), 3),
                     "flow_gain_median": round(float(np.median([r["flow_gain"] for r in rs])), 3),
                     "flow_cos_median": round(float(np.median([r["flow_cos"] for r in rs])), 3)}
               for aus, rs in sorted(per.items())}
    err = [abs(r["mesh_amplitude_px"] - r["amplitude_px"]) for r in rows]
    return {"events": rows, "per_aus": summary,
            "all": {"n": len(rows), "mesh_gain_median": round(float(np.median([r["mesh_gain"] for r in rows])), 3),
                    "flow_gain_median": round(float(np.median([r["flow_gain"] for r in rows])), 3),
                    "mesh_abs_error_px_median": round(float(np.median(err)), 3),
                    "mesh_within_40pct_or_0.5px": round(float(np.mean(
                        [e <= max(0.4 * r["amplitude_px"], 0.5) for e, r in zip(err, rows)])), 3)}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=6, help="quiet 20 s clips for the amplitude check")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "synth.json"))
    args = ap.parse_args()
    cv2.setNumThreads(1)
    runs = [speed(), speed(head_motion=False)]
    amp = amplitudes(args.seeds)
    out = {"machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                       "python": platform.python_version(), "opencv": cv2.__version__,
                       "load_avg_1min": round(os.getloadavg()[0], 2)},
           "date": time.strftime("%Y-%m-%d"), "render": runs, "amplitude": amp}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    for r in runs:
        hm = "head motion on " if r["config"].get("head_motion", True) else "head motion off"
        print(f"render 640x480, {hm}: CPU mean {r['cpu_all']['mean_ms']:.2f} ms/frame, p95 {r['cpu_all']['p95_ms']:.2f} "
              f"(p50 still {r['cpu_still']['p50_ms']:.2f}, drawing an event {r['cpu_event']['p50_ms']:.2f}); "
              f"wall mean {r['wall_all']['mean_ms']:.2f} ms")
    print(f"{'AUs':<8} {'n':>3} {'mesh gain':>10} {'(min)':>6} {'mesh cos':>9} {'flow gain':>10} {'flow cos':>9}")
    for aus, s in amp["per_aus"].items():
        print(f"{aus:<8} {s['n']:>3} {s['mesh_gain_median']:>10.2f} {s['mesh_gain_min']:>6.2f} "
              f"{s['mesh_cos_median']:>9.2f} {s['flow_gain_median']:>10.2f} {s['flow_cos_median']:>9.2f}")
    a = amp["all"]
    print(f"all {a['n']} MEs: mesh gain median {a['mesh_gain_median']:.2f}, |mesh - requested| median "
          f"{a['mesh_abs_error_px_median']:.2f} px, within 40 % or 0.5 px: {100 * a['mesh_within_40pct_or_0.5px']:.0f} %; "
          f"flow gain median {a['flow_gain_median']:.2f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
