"""``realtime-me spot-eval``: score the spotter on generated clips (MEGC rule) and real footage.

Generated clips (``synth.SynthClip``: blinks, head drift, a macro-expression,
flicker, sensor noise) are rendered and run through the real face tracker; the
landmark tracks are cached per clip (npz, keyed by the clip's config and the
generator's source), so scoring other detector settings takes seconds.

MEGC rule: a spotted interval is a true positive when its IoU with a ground-truth
micro-expression interval is at least 0.5 (one match per interval); precision,
recall and F1 are summed over clips. Macro-expressions are scored the same way
against the macro truth. Distractor-only clips (no ME) give false alarms per
minute, and so do the real clips in ``--data`` (no labels: every micro window
counts as a false alarm there, an upper bound).

Seeds: evaluation uses ``EVAL_SEED0`` upwards; the detector was tuned on
``TUNE_SEED0`` upwards (``--seeds tune``), never on the evaluation seeds.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .errors import UserError
from .metrics import IOU_THRESHOLD, interval, iou, match, prf
from .paths import SHARED_DATA
from .types import CropPoints, Window

log = logging.getLogger(__name__)

EVAL_SEED0 = 100
TUNE_SEED0 = 1000
DISTRACTOR_SEED_OFFSET = 500    # distractor-only clips use seeds seed0 + 500 ...
DEFAULT_DATA = SHARED_DATA / "videos"
DEFAULT_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "spot_eval"
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv")


# ------------------------------------------------------------------ clips and landmark cache
@dataclass(frozen=True)
class ClipSpec:
    seed: int
    fps: float
    duration_s: float
    distractors_only: bool = False
    face: str | None = None          # photo to animate; None: the astronaut

    def config(self):
        from .synth import SynthConfig

        return SynthConfig(seed=self.seed, fps=self.fps, duration_s=self.duration_s,
                           distractors_only=self.distractors_only, face=self.face)

    @property
    def name(self) -> str:
        kind = "distract" if self.distractors_only else "clip"
        face = f"_{Path(self.face).stem}" if self.face else ""
        return f"{kind}_s{self.seed}_{self.fps:g}fps_{self.duration_s:g}s{face}"


DEFAULT_FACES = SHARED_DATA / "composite"


def real_faces(composite: Path, n: int = 24) -> tuple[str, ...]:
    """One apex crop per subject of a composite folder (labels.csv + apex/), the first ``n``
    subjects in name order: the clips are rendered on many real faces, not one photo."""
    import csv

    labels = composite / "labels.csv"
    if not labels.is_file():
        raise UserError(f"--faces {composite}: no labels.csv there (the composite layout)")
    first: dict[str, str] = {}
    with labels.open(newline="") as f:
        for row in csv.DictReader(f):
            first.setdefault(row["subject"], row["apex"])
    faces = [str(composite / first[s]) for s in sorted(first)[:n]]
    missing = [f for f in faces if not Path(f).is_file()]
    if missing:
        raise UserError(f"--faces {composite}: {len(missing)} apex crops missing, e.g. {missing[0]}")
    return tuple(faces)


@dataclass
class Track:
    """What the spotter sees of one clip (``track_frames``): flow points (n, 478, 3) float32,
    NaN rows without a face, and the face mesh's eye aperture (n,) per frame."""

    name: str
    fps: float
    points: np.ndarray
    truth: dict
    apertures: np.ndarray | None = None

    @property
    def minutes(self) -> float:
        return len(self.points) / self.fps / 60.0


def generator_stamp() -> str:
    """Cached tracks are only valid for the generator and tracker that made them."""
    import mediapipe

    from . import alignment, landmarks, preprocess, synth
    from .spotting import flow

    files = sorted(Path(synth.__file__).parent.glob("*.py"))   # every module of the generator
    files += [Path(mod.__file__) for mod in (landmarks, alignment, flow, preprocess)]
    h = hashlib.sha1()
    for path in files:
        h.update(path.read_bytes())
    h.update(mediapipe.__version__.encode())
    return h.hexdigest()[:12]


def cache_path(cache_dir: Path, spec: ClipSpec, stamp: str) -> Path:
    key = hashlib.sha1(json.dumps([asdict(spec.config()), stamp], sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir / f"{spec.name}_{key}.npz"


def track_frames(frames, fps: float, desc: str, total: int | None = None,
                 progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """What the pipeline feeds its spotter, per frame (``FaceChain`` up to the flow
    points): (n, 478, 3) float32 points with NaN rows where no face was found, and (n,)
    eye apertures (``CropPoints.eye_aperture``)."""
    from tqdm import tqdm

    from .chain import ChainConfig, FaceChain

    rows, aps = [], []
    with FaceChain(ChainConfig(spot=False)).start(fps) as chain:
        for frame in tqdm(frames, desc=desc, unit="frame", leave=False, disable=not progress, total=total):
            moved = chain.process(frame).moved
            if moved is None:
                chain.lost(frame.index, frame.t)
                rows.append(np.full((478, 3), np.nan, np.float32))
                aps.append(np.nan)
            else:
                rows.append(moved.points.points)
                aps.append(moved.points.eye_aperture)
    if not rows:
        return np.zeros((0, 478, 3), np.float32), np.zeros(0, np.float32)
    return np.stack(rows), np.asarray(aps, np.float32)


def track_clip(spec: ClipSpec, cache_dir: Path | None, stamp: str, progress: bool = True) -> Track:
    """Render the clip and run the real tracking stages on it, or load the cached result."""
    path = cache_path(cache_dir, spec, stamp) if cache_dir else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as z:
            return Track(spec.name, float(z["fps"]), z["points"], json.loads(str(z["truth"])), z["apertures"])
    from .synth import SynthClip
    from .types import Frame

    clip = SynthClip(spec.config())
    frames = (Frame(i, i / clip.fps, clip.render(i)) for i in range(clip.n_frames))
    pts, aps = track_frames(frames, clip.fps, f"track {spec.name}", clip.n_frames, progress)
    track = Track(spec.name, clip.fps, pts, clip.truth, aps)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, points=pts, apertures=aps, fps=np.float64(clip.fps),
                            truth=np.array(json.dumps(clip.truth)))
        tmp.replace(path)
    return track


def track_video(path: Path, progress: bool = True) -> Track:
    """Real footage through the same stages (no cache: these clips are short)."""
    from .sources import VideoSource

    with VideoSource(path, realtime=False) as src:
        pts, aps = track_frames(src.frames(), src.info.fps, f"track {path.name}", src.info.n_frames, progress)
        fps = src.info.fps
    return Track(path.name, fps, pts, {"events": []}, aps)


# ------------------------------------------------------------------ spotting a track
@dataclass
class SpotRun:
    windows: list[Window]
    counts: dict
    face_frames: int
    us_per_frame: float


def spot_track(track: Track, sensitivity: float, overrides: dict, backend: str = "numba") -> SpotRun:
    """Feed a landmark track to a fresh Spotter frame by frame, as the pipeline's chain does."""
    from .chain import SpotStream
    from .spotting import Spotter

    sp = Spotter(track.fps, sensitivity=sensitivity, backend=backend, **overrides)
    sp.warmup()
    stream = SpotStream(sp, holds=sp.holds(len(track.points)))
    windows: list[Window] = []
    lost, face = True, 0
    t0 = time.perf_counter()
    aps = track.apertures if track.apertures is not None else np.full(len(track.points), np.nan)
    for i, p in enumerate(track.points):
        t = i / track.fps
        if np.isnan(p[0, 0]):
            if not lost:
                windows += stream.lost(i, t)
            lost = True
            continue
        lost = False
        face += 1
        windows += stream.update(CropPoints(i, t, p, float(aps[i])))[1]
    dt = time.perf_counter() - t0
    n = len(track.points)
    windows += stream.finish(n - 1, (n - 1) / track.fps)
    return SpotRun(windows, asdict(sp.counts), face, dt / max(1, n) * 1e6)


def score_clip(track: Track, run: SpotRun) -> dict:
    """Micro and macro matching on one clip, with what each false alarm overlapped."""
    ev = track.truth["events"]
    out = {"name": track.name, "fps": track.fps, "minutes": track.minutes, "counts": run.counts}
    for kind in ("micro", "macro"):
        pred = [w for w in run.windows if w.kind == kind]
        truth = [e for e in ev if e["kind"] == kind]
        m = match([interval(w) for w in pred], [interval(e) for e in truth])
        res = {"tp": m.tp, "fp": m.fp, "fn": m.fn, "n_truth": len(truth)}
        if kind == "micro":
            res["delays_s"] = [round(pred[i].confirmed_t - pred[i].apex_t, 4) for i, _, _ in m.pairs]
            res["apex_err_s"] = [round(abs(pred[i].apex_t - truth[j]["apex_s"]), 4) for i, j, _ in m.pairs]
            res["ious"] = [round(v, 3) for _, _, v in m.pairs]
            res["fp_overlaps"] = [_overlap_kind(interval(pred[i]), ev) for i in sorted(m.unmatched_pred)]
            found = {j for _, j, _ in m.pairs}
            res["missed"] = [{k: truth[j][k] for k in ("onset_frame", "apex_frame", "offset_frame", "amplitude_px",
                                                      "aus")} for j in range(len(truth)) if j not in found]
        out[kind] = res
    return out


def _overlap_kind(iv: tuple[int, int], events: list[dict]) -> str:
    """What a false alarm overlapped most: a blink, a macro, a micro (IoU < 0.5) or nothing."""
    best, kind = 0.0, "none"
    for e in events:
        v = iou(iv, interval(e))
        if v > best:
            best, kind = v, e["kind"]
    return kind


def aggregate(clips: list[dict]) -> dict:
    """Summed counts over clips -> P/R/F1, spotting delay, false alarms per minute."""
    minutes = sum(c["minutes"] for c in clips)
    out = {"clips": len(clips), "minutes": round(minutes, 3)}
    for kind in ("micro", "macro"):
        tp, fp, fn = (sum(c[kind][k] for c in clips) for k in ("tp", "fp", "fn"))
        out[kind] = prf(tp, fp, fn)
        out[kind]["false_alarms_per_min"] = round(fp / minutes, 3) if minutes else 0.0
    d = [x for c in clips for x in c["micro"]["delays_s"]]
    a = [x for c in clips for x in c["micro"]["apex_err_s"]]
    if d:
        out["micro"]["spotting_delay_s"] = {"mean": round(float(np.mean(d)), 4), "median": round(float(np.median(d)), 4),
                                            "p95": round(float(np.percentile(d, 95)), 4)}
        out["micro"]["apex_error_s"] = {"mean": round(float(np.mean(a)), 4), "median": round(float(np.median(a)), 4)}
    fo: dict[str, int] = {}
    for c in clips:
        for k in c["micro"]["fp_overlaps"]:
            fo[k] = fo.get(k, 0) + 1
    out["micro"]["false_alarms_by_overlap"] = fo
    out["rejected_blink"] = sum(c["counts"]["rejected_blink"] for c in clips)
    return out


# ------------------------------------------------------------------ the command
@dataclass
class EvalPlan:
    n30: int = 12
    n200: int = 12
    n_distract: int = 6
    duration30_s: float = 20.0
    duration200_s: float = 10.0
    duration_distract_s: float = 20.0
    seed0: int = EVAL_SEED0
    faces: tuple[str | None, ...] = (None,)   # photos, one clip after another (None: the astronaut)

    def specs(self) -> dict[str, list[ClipSpec]]:
        s, f = self.seed0, self.faces

        def face(i: int) -> str | None:
            return f[i % len(f)]

        return {
            "30": [ClipSpec(s + i, 30.0, self.duration30_s, face=face(i)) for i in range(self.n30)],
            "200": [ClipSpec(s + 100 + i, 200.0, self.duration200_s, face=face(self.n30 + i))
                    for i in range(self.n200)],
            "distractors": [ClipSpec(s + DISTRACTOR_SEED_OFFSET + i, 30.0, self.duration_distract_s, True,
                                     face=face(self.n30 + self.n200 + i)) for i in range(self.n_distract)],
        }


def configure(parser: argparse.ArgumentParser) -> None:
    from .spotting import DEFAULT_SENSITIVITY

    parser.add_argument("--json", metavar="PATH", help="write the full results here")
    parser.add_argument("--real", metavar="DIR", help="instead: real ME clips in the realclips layout (DIR/clips.json): "
                        "the live pipeline on each as it comes and between 1 s of held first/last frames, "
                        "and recognise with its own and the coded apex (see real_eval.py)")
    parser.add_argument("--weights", help="--real: model folder (default: the shipped one)")
    parser.add_argument("--faces", default=None, metavar="astronaut|DIR",
                        help="faces the clips are rendered on: a composite folder (one apex crop per subject, "
                             "24 subjects; default ../shared/data/composite when present) or astronaut (one photo)")
    parser.add_argument("--cache", metavar="DIR", default=str(DEFAULT_CACHE),
                        help=f"landmark-track cache (default {DEFAULT_CACHE}); 'none' to disable")
    parser.add_argument("--n30", type=int, default=12, help="generated clips at 30 fps (12)")
    parser.add_argument("--n200", type=int, default=12, help="generated clips at 200 fps (12)")
    parser.add_argument("--n-distract", type=int, default=6, help="distractor-only clips at 30 fps (6)")
    parser.add_argument("--duration30", type=float, default=20.0, help="seconds per 30 fps clip (20)")
    parser.add_argument("--duration200", type=float, default=10.0, help="seconds per 200 fps clip (10)")
    parser.add_argument("--duration-distract", type=float, default=20.0, help="seconds per distractor clip (20)")
    parser.add_argument("--seeds", choices=["eval", "tune"], default="eval",
                        help=f"seed range: eval ({EVAL_SEED0}+) or tune ({TUNE_SEED0}+, what the defaults were tuned on)")
    parser.add_argument("--seed0", type=int, help="first seed (overrides --seeds)")
    parser.add_argument("--data", default=str(DEFAULT_DATA),
                        help="folder of real clips without labels, for false alarms per minute ('none' to skip)")
    parser.add_argument("--sensitivity", type=float, default=DEFAULT_SENSITIVITY, help="spotter sensitivity")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a SpotterConfig field (repeatable), e.g. --set z=4.5")
    parser.add_argument("--backend", choices=["numba", "numpy"], default="numba")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def parse_overrides(items: list[str]) -> dict:
    from .spotting import SpotterConfig

    names = {f.name: f.type for f in fields(SpotterConfig)}
    out = {}
    for it in items:
        name, sep, value = it.partition("=")
        if not sep or name not in names:
            raise UserError(f"--set expects NAME=VALUE with NAME one of {', '.join(names)}; got {it!r}")
        try:
            out[name] = float(value)
        except ValueError:
            raise UserError(f"--set {name}: {value!r} is not a number") from None
    return out


def _check(args: argparse.Namespace) -> None:
    for name in ("n30", "n200", "n_distract"):
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0")
    for name in ("duration30", "duration200", "duration_distract"):
        if not getattr(args, name) > 0:
            raise UserError(f"--{name.replace('_', '-')} must be > 0 seconds")
    if not args.sensitivity > 0:
        raise UserError("--sensitivity must be > 0")


def evaluate(plan: EvalPlan, cache: Path | None, sensitivity: float, overrides: dict, data: Path | None,
             backend: str = "numba", progress: bool = True) -> dict:
    from tqdm import tqdm

    stamp = generator_stamp()
    groups = plan.specs()
    all_specs = [s for g in groups.values() for s in g]
    results: dict = {"per_clip": {}}
    t0 = time.perf_counter()
    bar = tqdm(all_specs, desc="spot-eval", unit="clip", disable=not progress)
    runtimes = []
    for name, specs in groups.items():
        clips = []
        for spec in specs:
            bar.set_postfix_str(spec.name)
            track = track_clip(spec, cache, stamp, progress)
            run = spot_track(track, sensitivity, overrides, backend)
            runtimes.append(run.us_per_frame)
            clips.append(score_clip(track, run))
            bar.update(1)
        results["per_clip"][name] = clips
        results[name] = aggregate(clips) if clips else None
    bar.close()
    synth_clips = results["per_clip"]["30"] + results["per_clip"]["200"]
    results["generated"] = aggregate(synth_clips) if synth_clips else None
    results["real"] = evaluate_real(data, sensitivity, overrides, backend, progress) if data else None
    results["spotter_us_per_frame"] = round(float(np.mean(runtimes)), 2) if runtimes else None
    results["seconds"] = round(time.perf_counter() - t0, 1)
    return results


def evaluate_real(data: Path, sensitivity: float, overrides: dict, backend: str, progress: bool) -> dict | None:
    if not data.is_dir():
        log.info("no real clips at %s: skipped", data)
        return {"skipped": f"{data} not found"}
    videos = sorted(p for p in data.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    rows = []
    for v in videos:
        track = track_video(v, progress)
        run = spot_track(track, sensitivity, overrides, backend)
        face_min = run.face_frames / track.fps / 60.0
        micro = sum(w.kind == "micro" for w in run.windows)
        macro = sum(w.kind == "macro" for w in run.windows)
        rows.append({"name": v.name, "fps": round(track.fps, 3), "frames": len(track.points),
                     "face_frames": run.face_frames, "face_minutes": round(face_min, 4), "micro": micro, "macro": macro,
                     "windows": [_window_dict(w) for w in run.windows]})
    face_min = sum(r["face_minutes"] for r in rows)
    micro = sum(r["micro"] for r in rows)
    return {"clips": rows, "face_minutes": round(face_min, 4), "micro_windows": micro,
            "macro_windows": sum(r["macro"] for r in rows),
            "micro_per_min": round(micro / face_min, 3) if face_min else None,
            "note": "no labels: every micro window counts as a false alarm (upper bound); talking and head turns "
                    "are real movements"}


def _window_dict(w: Window) -> dict:
    return {"kind": w.kind, "onset": w.onset_index, "apex": w.apex_index, "offset": w.offset_index,
            "peak": round(w.peak, 3)}


def _row(name: str, agg: dict | None) -> str:
    if not agg:
        return f"{name:<22} (no clips)"
    m, M = agg["micro"], agg["macro"]
    d = m.get("spotting_delay_s", {}).get("median", float("nan"))
    return (f"{name:<22} {agg['clips']:>5} {agg['minutes']:>7.2f} {m['tp']:>4} {m['fp']:>4} {m['fn']:>4} "
            f"{m['precision']:>6.3f} {m['recall']:>6.3f} {m['f1']:>6.3f} {m['false_alarms_per_min']:>7.2f} "
            f"{M['tp']:>3}/{M['tp'] + M['fn']:<3} {M['fp']:>4} {d:>7.3f}")


def summary(results: dict) -> str:
    head = (f"{'clips':<22} {'n':>5} {'min':>7} {'TP':>4} {'FP':>4} {'FN':>4} {'P':>6} {'R':>6} {'F1':>6} "
            f"{'FA/min':>7} {'macro':>7} {'mFP':>4} {'delay_s':>7}")
    lines = ["micro-expressions (MEGC: IoU >= 0.5), macro found/total and macro false positives", head,
             "-" * len(head)]
    for key, label in (("30", "generated 30 fps"), ("200", "generated 200 fps"), ("generated", "generated, all"),
                       ("distractors", "distractor-only 30 fps")):
        lines.append(_row(label, results.get(key)))
    real = results.get("real")
    if real and "clips" in real:
        lines.append(f"real clips ({len(real['clips'])}, no labels): {real['micro_windows']} micro windows in "
                     f"{real['face_minutes']:.2f} face-minutes = {real['micro_per_min']} per min (upper bound on "
                     f"false alarms); {real['macro_windows']} macro")
    elif real:
        lines.append(f"real clips: {real.get('skipped')}")
    lines.append(f"spotter: {results.get('spotter_us_per_frame')} us/frame (whole update() incl. Python); "
                 f"eval took {results.get('seconds')} s")
    return "\n".join(lines)


def run_real(args: argparse.Namespace) -> int:
    from . import real_eval

    results = real_eval.evaluate(Path(args.real), weights=args.weights, progress=not args.quiet)
    print(real_eval.table(results))
    print(json.dumps(results["summary"], indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.real:
        return run_real(args)
    _check(args)
    overrides = parse_overrides(args.set)
    seed0 = args.seed0 if args.seed0 is not None else (TUNE_SEED0 if args.seeds == "tune" else EVAL_SEED0)
    faces_arg = args.faces or (str(DEFAULT_FACES) if (DEFAULT_FACES / "labels.csv").is_file() else "astronaut")
    faces = (None,) if faces_arg == "astronaut" else real_faces(Path(faces_arg))
    plan = EvalPlan(args.n30, args.n200, args.n_distract, args.duration30, args.duration200, args.duration_distract,
                    seed0, faces)
    cache = None if args.cache.lower() == "none" else Path(args.cache)
    data = None if args.data.lower() == "none" else Path(args.data)
    from .spotting import SpotterConfig

    results = evaluate(plan, cache, args.sensitivity, overrides, data, args.backend, progress=not args.quiet)
    results = {"plan": {**asdict(plan), "faces": [Path(f).name if f else "astronaut" for f in plan.faces]},
               "seed_range": "tune" if seed0 >= TUNE_SEED0 else "eval",
               "iou_threshold": IOU_THRESHOLD, "sensitivity": args.sensitivity,
               "spotter": asdict(SpotterConfig(**overrides)), **results}
    print(summary(results))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    return 0
