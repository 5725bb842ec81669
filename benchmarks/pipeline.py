"""Throughput, per-stage latency, decision latency, landmark jitter and classifier-input
agreement of the live pipeline.

    .venv/bin/python -m benchmarks.pipeline [--out benchmarks/results/pipeline.json] [--quick]

Pipeline runs (the Pipeline object the CLI uses, offline with back-pressure: as fast as
possible, no frame dropped):
  * a generated 640x480 200 fps sequence (the demo clip, seed 7, written to an mp4 first so
    capture is decoding, not rendering) and the same clip at 30 fps;
  * a real 640x480 clip: ../shared/data/videos/single_face.mp4 (640x360) letterboxed to
    640x480 (the face at its own size) and played forward/backward to 600 frames, timed as
    200 fps (as a 200 fps camera would deliver it; the face moves 6.7x more per frame than a
    real 200 fps capture, so the mesh re-runs on drift more often: a conservative case);
  * the 30 fps clip, and a 20 s 200 fps one, paced as a live camera delivers them: the
    classify stage's time while a pipeline that keeps up runs beside it (the offline runs
    share the cores with one flat out).
Each reports processed fps, per-stage p50/p95, face-mesh runs, and the ratio to face mesh
alone (FaceTracker with the mesh on every frame, timed on the same frames in the same
process just before and after): this VM is shared and noisy, and the mesh alone says how
fast it was during the run (the ratio moves too: the mesh and the path slow unequally). Decision
latency: spotting delay (the spotter's ``confirmed_t - apex_t``, media time) plus the
classify stage, p50/p95 over the events.

Jitter: frame-to-frame motion of what the spotter reads (after a similarity fit on the
stable points removes head motion), median over frames, in crop pixels, for raw face-mesh
landmarks and flow points under the settings before and after the speed work.

Classifier inputs: ``preprocess.make_inputs``'s TV-L1 (``realtime_me.tvl1``) against
OpenCV's ``DualTVL1OpticalFlow`` with the same settings, on the six real clips' coded
onset/apex and on generated MEs (seeds 2000-2001, used by no evaluation): per-channel
correlation, largest difference, the shipped model's answer on both, and CPU time.
Classify parts (``classify_parts``; ``--classify-only`` runs just these two and merges them
into the JSON): the classify stage's CPU per part on one core, for the shipped pair models.

The machine: CPU count and model, and an NVIDIA GPU or Jetson if there is one (the
pipeline has no GPU stage yet; on such a machine ``bash benchmarks/gpu.sh TAG`` runs this
script, the engines benchmark and the GPU tests).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from realtime_me.alignment import STABLE_POINTS, umeyama
from realtime_me.chain import ChainConfig, FaceChain
from realtime_me.landmarks import FaceTracker
from realtime_me.paths import SHARED_DATA
from realtime_me.pipeline import Pipeline, PipelineConfig
from realtime_me.sources import DemoSource, VideoSource
from realtime_me.spotting.flow import FlowConfig
from realtime_me.types import Frame

SHARED = SHARED_DATA
WORK = ROOT / ".cache" / "bench"
#: the settings before this speed work, measured alongside the current ones: the mesh on every
#: frame, DIS's preset descent, one face at a time in the motion thread, OpenCV's own pool, every
#: thread at one priority
BEFORE = {"mesh_every_s": 0.0, "flow": FlowConfig(patch_stride=None, descent_iterations=None), "motion_batch": 1,
          "opencv_threads": os.cpu_count() or 1, "frame_nice": 0}


# ------------------------------------------------------------------ the machine
def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "opencv": cv2.__version__,
           "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}
    gpu = None
    if shutil.which("nvidia-smi"):
        try:
            gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            gpu = None
    tegra = Path("/etc/nv_tegra_release")
    if tegra.exists():
        gpu = f"Jetson: {tegra.read_text().splitlines()[0]}"
    out["gpu"] = gpu or "none (GPU figures unmeasured)"
    return out


# ------------------------------------------------------------------ sources
def write_video(path: Path, frames, fps: float, size=(640, 480)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mp4")
    w = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for f in frames:
        w.write(f)
    w.release()
    tmp.replace(path)
    return path


def generated_clip(fps: float, seconds: float) -> Path:
    path = WORK / f"demo_s7_{fps:g}fps_{seconds:g}s.mp4"
    if not path.exists():
        src = DemoSource(seed=7, fps=fps, duration_s=seconds, realtime=False)
        write_video(path, (f.image for f in src.frames()), fps)
    return path


def real_clip(n: int = 600, fps: float = 200.0) -> Path | None:
    video = SHARED / "videos" / "single_face.mp4"
    if not video.exists():
        return None
    path = WORK / f"single_face_640x480_{n}f_{fps:g}fps.mp4"
    if not path.exists():
        with VideoSource(video, realtime=False) as src:
            frames = [f.image for f in src.frames()]
        h = frames[0].shape[0]
        top = (480 - h) // 2
        boxed = [cv2.copyMakeBorder(f, top, 480 - h - top, 0, 0, cv2.BORDER_CONSTANT) for f in frames]
        loop = boxed + boxed[-2:0:-1]                   # forward, backward: no jump at the seam
        write_video(path, (loop[i % len(loop)] for i in range(n)), fps)
    return path


# ------------------------------------------------------------------ pipeline runs
def mesh_alone(path: Path, n: int = 300) -> tuple[float, float]:
    """Face mesh on every frame (what the per-frame path did before), alone in the process:
    frames per second and process CPU ms per frame (MediaPipe's own threads included)."""
    with VideoSource(path, realtime=False) as src:
        frames = [f for _, f in zip(range(n), src.frames())]
    with FaceTracker(mesh_every_s=0.0) as tr:
        tr.process(frames[0])
        t0, c0 = time.perf_counter(), time.process_time()
        for f in frames:
            tr.process(f)
        return len(frames) / (time.perf_counter() - t0), (time.process_time() - c0) / len(frames) * 1e3


def pct(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 4) if len(values) else None


def bench(path: Path, label: str, classify: bool = True, settings: str = "after", live: bool = False) -> dict:
    """One run; ``settings`` "before": ``BEFORE`` (the per-frame settings before the speed
    work), "after": the defaults. ``live``: the file
    paced at its frame rate, as a camera delivers it (the ring drops frames if the path falls
    behind), so the classify stage shares the cores with a pipeline that keeps up, not with
    one flat out."""
    mesh_before, mesh_cpu_before = mesh_alone(path)
    source = VideoSource(path, realtime=live)
    extra = dict(BEFORE) if settings == "before" else {}
    pipeline = Pipeline(PipelineConfig(classify=classify, **extra))
    c0 = time.process_time()
    result = pipeline.run(source)
    cpu_ms = (time.process_time() - c0) / max(1, result.stats.frames_processed) * 1e3
    mesh_after, mesh_cpu_after = mesh_alone(path)
    s = result.stats.to_dict()
    lat = s["latency"]
    mesh_fps, mesh_cpu = (mesh_before + mesh_after) / 2, (mesh_cpu_before + mesh_cpu_after) / 2
    n = max(1, s["frames_processed"])
    threads = {k.removeprefix("rtme-"): round(v / n * 1e3, 3) for k, v in s["thread_cpu_s"].items()
               if k != "rtme-classify"}
    # two cores: the path runs at most as fast as its busiest thread, and as two cores' worth of its total
    capacity = min(2000.0 / cpu_ms, 1000.0 / max(threads.values())) if threads else None
    delays = [max(0.0, e.window.confirmed_t - e.window.apex_t) for e in result.events if e.window.kind == "micro"]
    classify_s = [v / 1e3 for v in [lat.get("classify", {}).get("p50_ms")] if v is not None]
    decision = [d + (classify_s[0] if classify_s else 0.0) for d in delays]
    return {
        "source": label,
        "settings": settings,
        "paced_live": live,
        "file": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        "resolution": f"{source.info.width}x{source.info.height}",
        "fps_of_source": source.info.fps,
        "frames": s["frames_processed"],
        "frames_dropped": s["frames_dropped"],
        "mesh_runs": s["mesh_runs"],
        "fps_processed": s["fps_processed"],
        "mesh_alone_fps": round(mesh_fps, 1),
        "mesh_alone_fps_before_after": [round(mesh_before, 1), round(mesh_after, 1)],
        "ratio_to_mesh_alone": round(s["fps_processed"] / mesh_fps, 3),
        "cpu_ms_per_frame": round(cpu_ms, 3),
        "mesh_alone_cpu_ms_per_frame": round(mesh_cpu, 3),
        "cpu_ratio_mesh_alone_over_pipeline": round(mesh_cpu / cpu_ms, 3),
        "thread_cpu_ms_per_frame": threads,
        "classify_cpu_ms_per_event": (round(s["thread_cpu_s"]["rtme-classify"] / lat["classify"]["count"] * 1e3, 2)
                                      if lat.get("classify", {}).get("count") and "rtme-classify" in s["thread_cpu_s"]
                                      else None),
        "two_core_capacity_fps": round(capacity, 1) if capacity else None,
        "capacity_how": "min(2 cores / process CPU per frame, 1 / busiest pipeline thread's CPU per frame); "
                        "MediaPipe's and OpenCV's worker threads count in the process CPU only",
        "classify": classify,
        "events": len(result.events),
        "micro_events": len(delays),
        "spotting_delay_s": {"p50": pct(delays, 50), "p95": pct(delays, 95)},
        "decision_latency_s": {"p50": pct(decision, 50), "p95": pct(decision, 95),
                               "how": "spotting delay (media time) + classify stage p50"},
        "latency": lat,
    }


# ------------------------------------------------------------------ jitter
def chain_points(frames, fps: float, mesh_every_s: float, flow: FlowConfig | None) -> tuple[np.ndarray, int]:
    """The product's ``FaceChain`` per frame, up to the aligned face-mesh landmarks (``flow``
    None) or the flow points: (n, 478, 2) crop pixels, and how often the mesh ran."""
    rows = []
    with FaceChain(ChainConfig(mesh_every_s=mesh_every_s, flow=flow, spot=False)).start(fps) as chain:
        for f in frames:
            face = chain.locate(f).face
            if face is None:
                chain.lost(f.index, f.t)
                rows.append(np.full((478, 2), np.nan, np.float32))
                continue
            rows.append(chain.move(face).points.points[:, :2] if flow is not None else face.points)
        runs = chain.tracker.mesh_runs
    return np.stack(rows), runs


def jitter_px(pts: np.ndarray) -> float:
    """Median over frames of the RMS frame-to-frame displacement after a similarity fit
    on the stable points (what the spotter does to remove head motion)."""
    out = []
    for a, b in zip(pts[:-1], pts[1:]):
        if np.isnan(a[0, 0]) or np.isnan(b[0, 0]):
            continue
        m = umeyama(b[STABLE_POINTS].astype(np.float64), a[STABLE_POINTS].astype(np.float64))
        bb = b @ m[:, :2].T + m[:, 2]
        out.append(float(np.sqrt(np.mean(np.sum((bb - a) ** 2, axis=1)))))
    return round(float(np.median(out)), 4) if out else float("nan")


def still_real_face(n: int = 400, noise: float = 2.0) -> list[Frame] | None:
    """``single_face.jpg`` letterboxed into 640x480, the same photo every frame plus fresh
    sensor noise (sigma 2 gray levels): a real face that does not move, so all motion is jitter."""
    path = SHARED / "videos" / "single_face.jpg"
    if not path.exists():
        return None
    img = cv2.imread(str(path))
    s = min(640 / img.shape[1], 480 / img.shape[0])
    img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    top, left = (480 - img.shape[0]) // 2, (640 - img.shape[1]) // 2
    img = cv2.copyMakeBorder(img, top, 480 - img.shape[0] - top, left, 640 - img.shape[1] - left, cv2.BORDER_CONSTANT)
    rng = np.random.default_rng(0)
    return [Frame(i, i / 200.0, np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8))
            for i in range(n)]


def jitter(path: Path | None, fps: float, n: int, frames: list[Frame] | None = None) -> dict:
    if frames is None:
        with VideoSource(path, realtime=False) as src:
            frames = [Frame(f.index, f.index / fps, f.image) for _, f in zip(range(n), src.frames())]
    raw, _ = chain_points(frames, fps, 0.0, None)
    before, runs_b = chain_points(frames, fps, BEFORE["mesh_every_s"], BEFORE["flow"])
    after, runs_a = chain_points(frames, fps, ChainConfig().mesh_every_s, FlowConfig())
    return {"frames": len(frames), "fps": fps, "unit": "crop px (224 template), median over frames",
            "face_mesh_landmarks": jitter_px(raw), "flow_points_before": jitter_px(before),
            "flow_points_after": jitter_px(after), "mesh_runs_before": runs_b, "mesh_runs_after": runs_a,
            "rms_after_vs_before_px": round(float(np.sqrt(np.nanmean(np.sum((after - before) ** 2, axis=2)))), 4)}


# ------------------------------------------------------------------ decision-latency floor
def latency_floor() -> dict | None:
    """Spotting delay of every micro window on spot-eval's generated clips (their cached
    tracks), split into offset - apex and confirmed - offset: what the spotter's look-ahead costs."""
    from realtime_me.spot_eval import DEFAULT_CACHE, EvalPlan, generator_stamp, cache_path, spot_track, track_clip

    stamp, out = generator_stamp(), {}
    for name, specs in EvalPlan().specs().items():
        if name == "distractors":
            continue
        if not all(cache_path(DEFAULT_CACHE, spec, stamp).exists() for spec in specs):
            return None  # run `realtime-me spot-eval` first (it caches the tracks)
        rows = []
        for spec in specs:
            run = spot_track(track_clip(spec, DEFAULT_CACHE, stamp, False), 1.0, {})
            rows += [(w.confirmed_t - w.apex_t, w.offset_t - w.apex_t, w.confirmed_t - w.offset_t)
                     for w in run.windows if w.kind == "micro"]
        d, b, a = (np.array(c) for c in zip(*rows))
        out[name] = {"n": len(d), "delay_median": round(float(np.median(d)), 3),
                     "delay_p95": round(float(np.percentile(d, 95)), 3),
                     "offset_minus_apex_median": round(float(np.median(b)), 3),
                     "confirmed_minus_offset_median": round(float(np.median(a)), 3),
                     "confirmed_minus_offset_min": round(float(a.min()), 3),
                     "confirmed_minus_offset_p95": round(float(np.percentile(a, 95)), 3)}
    return out


# ------------------------------------------------------------------ classifier inputs
def opencv_tvl1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from realtime_me.preprocess import TVL1
    from realtime_me.tvl1 import opencv_tvl1 as reference

    return reference(a, b, **TVL1)


def onset_apex_pairs() -> list[dict]:
    from realtime_me.synth import SynthClip, SynthConfig

    pairs = []
    clips_json = SHARED / "realclips" / "clips.json"
    if clips_json.exists():
        from benchmarks.flow_match import clip_faces

        for c in json.loads(clips_json.read_text()):
            onset, apex, _, _, _ = clip_faces(SHARED / "realclips" / c["sample"], c["apex"], c["fps"])
            pairs.append({"kind": "real", "name": c["sample"], "onset": onset, "apex": apex})
    for seed in (2000, 2001):
        clip = SynthClip(SynthConfig(seed=seed, fps=30.0, duration_s=20.0))
        evs = [e for e in clip.truth["events"] if e["kind"] == "micro"]
        need = {e["onset_frame"] for e in evs} | {e["apex_frame"] for e in evs}
        faces = {}
        with FaceChain(ChainConfig(spot=False)) as chain:
            for i in range(clip.n_frames):
                face = chain.locate(Frame(i, i / clip.fps, clip.render(i))).face
                if i in need and face is not None:
                    faces[i] = face
        pairs += [{"kind": "generated", "name": f"s{seed}_apex{e['apex_frame']}", "onset": faces[e["onset_frame"]],
                   "apex": faces[e["apex_frame"]]} for e in evs if e["onset_frame"] in faces and e["apex_frame"] in faces]
    return pairs


def classify_inputs() -> dict:
    from realtime_me import preprocess as P
    from realtime_me.classify import Classifier
    from realtime_me.engines import DEFAULT_WEIGHTS, load_engine
    from realtime_me.tvl1 import warmup
    from realtime_me.types import Window

    engine = load_engine(DEFAULT_WEIGHTS, backend="onnxruntime", warmup=False)
    clf = Classifier(engine)
    window = Window(0, 1, 2, 0.0, 0.1, 0.2)

    def emotion(flow_hwc, apex):
        t = {"flow": np.ascontiguousarray(flow_hwc.transpose(2, 0, 1))[None], "apex": P.normalise_apex(apex.crop)[None]}
        return clf.to_event(window, engine.run({n: t[n] for n in engine.input_names})).emotion

    def image(f):
        f = cv2.resize(f, (P.FLOW_SIZE, P.FLOW_SIZE), interpolation=cv2.INTER_AREA)
        return P.minmax_quantise(np.dstack([f, P.optical_strain(f)]).astype(np.float32))

    warmup()
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)   # CPU time of one core for both
    rows, cpu = [], {"opencv": [], "numba": []}
    try:
        for p in onset_apex_pairs():
            a, b = P.flow_box(p["onset"].crop), P.flow_box(P.in_onset_frame(p["onset"], p["apex"]))
            c0 = time.thread_time()
            ref = opencv_tvl1(a, b)
            c1 = time.thread_time()
            new = P.tvl1_flow(a, b)
            c2 = time.thread_time()
            cpu["opencv"].append(c1 - c0)
            cpu["numba"].append(c2 - c1)
            ri, ni = image(ref), image(new)
            live = P.make_inputs(p["onset"], p["apex"]).flow.transpose(1, 2, 0)
            rows.append({"kind": p["kind"], "name": p["name"],
                         "r": [round(float(np.corrcoef(ri[..., k].ravel(), ni[..., k].ravel())[0, 1]), 6) for k in range(3)],
                         "max_abs_diff_flow_px": float(np.abs(ref - new).max()),
                         "identical_image": bool(np.array_equal(ri, ni)), "make_inputs_is_new": bool(np.array_equal(live, ni)),
                         "emotion_opencv": emotion(ri, p["apex"]), "emotion_new": emotion(ni, p["apex"])})
    finally:
        cv2.setNumThreads(threads)
    out = {"pairs": rows, "tvl1_cpu_ms_one_core": {k: round(float(np.median(v)) * 1e3, 2) for k, v in cpu.items()}}
    for kind in ("real", "generated"):
        rs = [r for r in rows if r["kind"] == kind]
        if rs:
            out[kind] = {"n": len(rs), "mean_r_u_v_strain": [round(float(np.mean([r["r"][k] for r in rs])), 6) for k in range(3)],
                         "identical": sum(r["identical_image"] for r in rs),
                         "model_agrees": sum(r["emotion_opencv"] == r["emotion_new"] for r in rs)}
    return out


def classify_parts(reps: int = 5) -> dict:
    """Where the classify stage's CPU goes, on one core (cv2 one thread, ORT one intra-op
    thread as in the pipeline), per shipped pair model, on the six real clips' onset/apex:
    p50 ms of each part of ``Classifier.classify`` (thread CPU time), and of the whole call."""
    from realtime_me import preprocess as P
    from realtime_me.classify import make_classifier
    from realtime_me.engines import load_engine
    from realtime_me.tvl1 import warmup
    from realtime_me.types import Window

    clips_json = SHARED / "realclips" / "clips.json"
    if not clips_json.exists():
        return {}
    from benchmarks.flow_match import clip_faces

    pairs = [clip_faces(SHARED / "realclips" / c["sample"], c["apex"], c["fps"])[:2]
             for c in json.loads(clips_json.read_text())]
    warmup()
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    window, out = Window(0, 1, 2, 0.0, 0.1, 0.2), {}
    tt = time.thread_time
    try:
        for name in ("medn", "ststnet"):
            engine = load_engine(ROOT / "models" / name, backend="onnxruntime")
            clf = make_classifier(engine)
            parts = {k: [] for k in ("in_onset_frame", "flow_box_x2", "tvl1", "resize_strain_quantise",
                                     "normalise_apex", "engine", "to_event", "classify_call")}
            for _ in range(reps):
                for onset, apex in pairs:
                    t = [tt()]
                    fa = P.in_onset_frame(onset, apex); t.append(tt())
                    a, b = P.flow_box(onset.crop), P.flow_box(fa); t.append(tt())
                    f = P.tvl1_flow(a, b); t.append(tt())
                    f = cv2.resize(f, (P.FLOW_SIZE, P.FLOW_SIZE), interpolation=cv2.INTER_AREA)
                    img = P.minmax_quantise(np.dstack([f, P.optical_strain(f)]).astype(np.float32)); t.append(tt())
                    ap = P.normalise_apex(apex.crop, clf.apex_size); t.append(tt())
                    ins = {"flow": np.ascontiguousarray(img.transpose(2, 0, 1))[None], "apex": ap[None]}
                    res = engine.run({n: ins[n] for n in engine.input_names}); t.append(tt())
                    clf.to_event(window, res); t.append(tt())
                    clf.classify(window, onset, apex); t.append(tt())
                    for k, t0, t1 in zip(parts, t, t[1:]):
                        parts[k].append(t1 - t0)
            out[name] = {k: round(float(np.median(v)) * 1e3, 2) for k, v in parts.items()}
            out[name]["classify_call_p95"] = round(float(np.percentile(parts["classify_call"], 95)) * 1e3, 2)
    finally:
        cv2.setNumThreads(threads)
    out["how"] = "p50 thread CPU ms over 6 real pairs x %d, cv2 1 thread, ORT 1 intra-op thread" % reps
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pipeline.json"))
    ap.add_argument("--no-classify", action="store_true", help="leave the model out (spotting only)")
    ap.add_argument("--quick", action="store_true", help="pipeline runs only (no jitter, no input agreement)")
    ap.add_argument("--classify-only", action="store_true",
                    help="only the classify stage's parts and input agreement, merged into --out's JSON")
    args = ap.parse_args()
    classify = not args.no_classify
    if args.classify_only:
        path = Path(args.out)
        out = json.loads(path.read_text()) if path.exists() else {"machine": machine()}
        out["classify_parts"] = classify_parts()
        out["classify_inputs"] = classify_inputs()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1))
        print(json.dumps(out["classify_parts"], indent=1))
        print(json.dumps({k: v for k, v in out["classify_inputs"].items() if k != "pairs"}, indent=1))
        return 0
    out = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "runs": []}
    gen200 = generated_clip(200.0, 5.0)
    real = real_clip()
    # untimed: first use compiles the numba kernels and builds the MediaPipe graph and the ORT session
    Pipeline(PipelineConfig(classify=classify)).run(VideoSource(gen200, realtime=False))
    for settings in ("after", "before"):
        out["runs"].append(bench(gen200, "generated 640x480, 200 fps (demo seed 7, 5 s)", classify, settings))
        if real is not None:
            out["runs"].append(bench(real, "real single_face.mp4 letterboxed to 640x480, timed as 200 fps", classify,
                                     settings))
    gen30 = generated_clip(30.0, 20.0)
    out["runs"].append(bench(gen30, "generated 640x480, 30 fps (demo seed 7, 20 s)", classify))
    out["runs"].append(bench(gen30, "generated 640x480, 30 fps (demo seed 7, 20 s), paced as a camera", classify,
                             live=True))
    gen200_long = generated_clip(200.0, 20.0)
    out["runs"].append(bench(gen200_long, "generated 640x480, 200 fps (demo seed 7, 20 s), paced as a camera", classify,
                             live=True))
    if not args.quick:
        out["jitter"] = {"generated_200fps": jitter(gen200, 200.0, 1000)}
        still = still_real_face()
        if still is not None:
            out["jitter"]["real_still_face_200fps"] = jitter(None, 200.0, len(still), still)
        out["classify_parts"] = classify_parts()
        out["classify_inputs"] = classify_inputs()
        floor = latency_floor()
        if floor is not None:
            out["decision_latency_floor"] = {"by_fps": floor}
    out["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    for r in out["runs"]:
        print(f"{r['source']:<75} {r['settings']:<6} {r['fps_processed']:7.1f} fps  mesh alone {r['mesh_alone_fps']:6.1f}  "
              f"ratio {r['ratio_to_mesh_alone']:.2f}  mesh runs {r['mesh_runs']}/{r['frames']}  "
              f"dropped {r['frames_dropped']}  decision p50 {r['decision_latency_s']['p50']}\n"
              f"    CPU {r['cpu_ms_per_frame']:.2f} ms/frame (mesh alone {r['mesh_alone_cpu_ms_per_frame']:.2f}), "
              f"threads {r['thread_cpu_ms_per_frame']}, 2-core capacity {r['two_core_capacity_fps']} fps, "
              f"classify CPU {r['classify_cpu_ms_per_event']} ms/event")
        for k, v in r["latency"].items():
            if v.get("count"):
                print(f"    {k:<10} p50 {v['p50_ms']:7.3f}  p95 {v['p95_ms']:7.3f}  max {v['max_ms']:7.3f} ms  n={v['count']}")
    if "jitter" in out:
        print(json.dumps(out["jitter"], indent=1))
        ci = out["classify_inputs"]
        print(json.dumps({k: v for k, v in ci.items() if k != "pairs"}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
