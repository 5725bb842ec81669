"""Inputs of the sequence models (FDP, the point-cloud model), from a clip, a live window or the generator.

One function per input, used by training, ``recognise`` and the live pipeline alike, on
the ``AlignedFace`` objects the product's tracker and aligner made:

* ``fdp_frames(faces)``: FDP's ``frames`` (T, 64, 64). ``N_FRAMES`` faces sampled
  evenly from onset to offset (``frame_positions``), each re-framed into the onset's crop
  (``preprocess.in_onset_frame``: one fixed crop per sample, as the databases cut them,
  so 1-2 px of alignment jitter between frames does not drown the motion), gray,
  area-resized to 64 px, z-scored over the whole sequence (per frame would erase the
  brightness change a movement makes).
* ``dynamic_image(frames)``: FDP's auxiliary target, approximate rank pooling of those
  frames (``models.fdp.rank_pool_coefficients``), resized to 32 px and z-scored.
* ``point_cloud(onset, apex)``: the point-cloud model's ``cloud`` (4, 468). The onset's
  face-mesh points carried to the apex by the product's flow-points stage
  (``spotting.flow.FlowPoints``: DIS flow from the onset crop to the apex re-framed into
  it), residual head motion removed by a similarity fit on ``alignment.STABLE_POINTS``,
  centred on the stable points and scaled by the inter-ocular distance (outer eye
  corners); displacement times ``DISP_SCALE``.

``synthetic_samples`` is the pretraining set: real face photos (composite apex crops,
realclips frames) moved by the generator's FACS-shaped AU fields (``synth.SynthClip``,
its public API only), three MEs per clip (one per class), rendered only at the frames a
sample uses and run through the same tracker and aligner (``recognise.track``).
``dataset_samples`` reads a ``recognise --dataset`` file (CSV or clips.json) through
``recognise.locate``: the same onset, apex and faces ``recognise`` uses.
"""
from __future__ import annotations

import hashlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .errors import UserError
from .types import AlignedFace, Frame

#: frames FDP sees per sample (the reference code's 8), and their side in px
N_FRAMES = 8
FRAME_SIZE = 64
DYNAMIC_SIZE = 32
#: displacement scale: an ME moves landmarks 0.002-0.02 inter-ocular distances; this makes that ~0.4-4
DISP_SCALE = 200.0
N_POINTS = 468
#: bump when any input above changes (the model card records it)
SEQ_PREPROCESS_VERSION = 1

_OUTER_EYES = (33, 263)


def frame_positions(n: int, k: int = N_FRAMES) -> np.ndarray:
    """``k`` indices into ``0..n-1``, evenly spaced, first and last included (repeats when n < k)."""
    if n < 1:
        raise ValueError("no frames to sample")
    return np.round(np.linspace(0, n - 1, k)).astype(np.int64)


def fdp_frames(faces: Sequence[AlignedFace], size: int = FRAME_SIZE, k: int = N_FRAMES) -> np.ndarray:
    """(k, size, size) float32: ``faces`` (onset first, then in time order, any count >= 1)
    sampled to ``k``, framed by the onset's crop, gray, z-scored over the sequence."""
    from .preprocess import gray, in_onset_frame

    if not faces:
        raise ValueError("fdp_frames needs at least the onset face")
    onset = faces[0]
    out = np.empty((k, size, size), np.float32)
    for j, i in enumerate(frame_positions(len(faces), k)):
        crop = onset.crop if i == 0 else in_onset_frame(onset, faces[i])
        out[j] = cv2.resize(gray(crop), (size, size), interpolation=cv2.INTER_AREA)
    return (out - out.mean()) / max(float(out.std()), 1.0)


def dynamic_image(frames: np.ndarray, size: int = DYNAMIC_SIZE) -> np.ndarray:
    """(1, size, size) float32 approximate-rank-pooled dynamic image of (T, S, S) frames."""
    from .models.fdp import rank_pool_coefficients

    alpha = rank_pool_coefficients(len(frames)).numpy().astype(np.float32)
    d = np.tensordot(alpha, frames, axes=1)                           # (S, S)
    d = cv2.resize(d, (size, size), interpolation=cv2.INTER_AREA)
    return ((d - d.mean()) / max(float(d.std()), 1e-6)).astype(np.float32)[None]


def point_cloud(onset: AlignedFace, apex: AlignedFace, n_points: int = N_POINTS) -> np.ndarray:
    """(4, n_points) float32: onset position (x, y) and onset->apex displacement (dx, dy)."""
    from .alignment import STABLE_POINTS, umeyama
    from .preprocess import in_onset_frame
    from .spotting.flow import FlowPoints

    flow = FlowPoints(30.0)          # the rate only sets when a reference would swap: never here
    p0 = flow.process(onset).points[:, :2].astype(np.float64)
    moved = AlignedFace(apex.index, apex.t, in_onset_frame(onset, apex), onset.matrix, onset.points)
    p1 = flow.process(moved).points[:, :2].astype(np.float64)
    m = umeyama(p1[STABLE_POINTS], p0[STABLE_POINTS])                # residual head motion
    p1 = p1 @ m[:, :2].T + m[:, 2]
    iod = max(float(np.linalg.norm(p0[_OUTER_EYES[0]] - p0[_OUTER_EYES[1]])), 1e-6)
    pos = (p0 - p0[STABLE_POINTS].mean(0)) / iod
    disp = (p1 - p0) / iod * DISP_SCALE
    return np.ascontiguousarray(np.concatenate([pos, disp], 1)[:n_points].T, dtype=np.float32)


def model_inputs(names: Sequence[str], faces: Sequence[AlignedFace], apex: AlignedFace) -> dict[str, np.ndarray]:
    """Batch-of-one inputs named ``names`` from a window's faces (onset first, in time
    order, to the offset) and its apex face."""
    out = {}
    for n in names:
        if n == "frames":
            out[n] = fdp_frames(faces)[None]
        elif n == "cloud":
            out[n] = point_cloud(faces[0], apex)[None]
        else:
            raise UserError(f"a sequence model input {n!r} is unknown (known: frames, cloud)")
    return out


# ------------------------------------------------------------------ samples
@dataclass
class SeqSample:
    """One sample's inputs for both sequence models, with its labels."""

    name: str
    subject: str
    dataset: str
    label: str | None
    aus: tuple[str, ...]
    frames: np.ndarray        # (T, 64, 64)
    cloud: np.ndarray         # (4, 468)
    dynamic: np.ndarray       # (1, 32, 32)


def make_sample(name: str, subject: str, dataset: str, label: str | None, aus: Sequence[str],
                faces: Sequence[AlignedFace], apex: AlignedFace) -> SeqSample:
    frames = fdp_frames(faces)
    return SeqSample(name, subject, dataset, label, tuple(aus), frames, point_cloud(faces[0], apex),
                     dynamic_image(frames))


def dataset_samples(path: str | Path, own_apex: bool = False, progress: bool = True) -> list[SeqSample]:
    """Every sample of a ``recognise --dataset`` file, through the same tracking, onset and
    apex choice as ``recognise`` (``recognise.locate``); a sample without a label is an error
    (training needs them)."""
    from tqdm import tqdm

    from .datasets import read_samples
    from .recognise import SampleFrames, locate

    samples = read_samples(path)
    unlabelled = [s.name for s in samples if not s.label]
    if unlabelled:
        raise UserError(f"{path}: training needs a label for every sample; none for {', '.join(unlabelled[:5])}")
    opened = [SampleFrames(s) for s in samples]
    out = []
    for s, fr in tqdm(list(zip(samples, opened)), desc="samples", unit="sample", disable=not progress,
                      file=sys.stderr):
        loc = locate(s, fr, own_apex=own_apex, progress=False)
        faces = [f for f in loc.clip.faces[loc.ref:] if f is not None]
        out.append(make_sample(s.name, s.subject or s.name, s.dataset, s.label, s.aus, faces,
                               loc.clip.faces[loc.at]))
    return out


# ------------------------------------------------------------------ generated sequences
def face_photo(image_path: str | Path, cache_dir: str | Path | None = None) -> str:
    """A path the generator can read a face from: the image itself, or (a tight crop, where
    face mesh needs room) a copy padded by ``recognise.pad`` in ``cache_dir``."""
    from .recognise import pad, tracking_border

    key0 = str(Path(image_path).resolve())
    if key0 in _PHOTOS:
        return _PHOTOS[key0]
    img = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f"cannot read face image {image_path}")
    border = tracking_border(img)
    if border == 0:
        _PHOTOS[key0] = str(image_path)
        return str(image_path)
    cache = Path(cache_dir or tempfile.gettempdir()) / "rtme_faces"
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(f"{Path(image_path).resolve()}:{border}".encode()).hexdigest()[:16]
    out = cache / f"{key}.png"
    if not out.is_file():
        cv2.imwrite(str(out), pad(img, border))
    _PHOTOS[key0] = str(out)
    return str(out)


_PHOTOS: dict[str, str] = {}   # image -> what face_photo chose (face mesh costs ~0.1 s an image)


def synthetic_samples(faces: Sequence[tuple[str, str]], seed: int = 0, fps_choices: Sequence[float] = (100.0, 200.0),
                      cache_dir: str | Path | None = None, progress: bool = True) -> list[SeqSample]:
    """Generated MEs on real faces: ``faces`` is a list of (subject, image path). One clip per
    face (seed ``seed + i``), three MEs in it (one per class), no macro-expression or blink
    (a sample is one ME), head drift, flicker and sensor noise on. Faces the generator or the
    tracker cannot use are skipped (counted in the progress bar)."""
    from tqdm import tqdm

    from .recognise import track
    from .synth import SynthClip, SynthConfig

    out: list[SeqSample] = []
    rng = np.random.default_rng(seed)
    skipped = 0
    bar = tqdm(list(enumerate(faces)), desc="generating", unit="clip", disable=not progress, file=sys.stderr)
    for i, (subject, path) in bar:
        fps = float(rng.choice(fps_choices))
        try:
            clip = SynthClip(SynthConfig(seed=seed * 100003 + i, fps=fps, duration_s=6.0, face=face_photo(path, cache_dir),
                                         n_micro=3, macro=False, blinks=False))
        except UserError:
            skipped += 1
            continue
        events = [e for e in clip.truth["events"] if e["kind"] == "micro"]
        wanted: dict[int, list[int]] = {}
        for e in events:
            pos = frame_positions(e["offset_frame"] - e["onset_frame"] + 1) + e["onset_frame"]
            wanted[id(e)] = sorted(set(pos.tolist()) | {e["apex_frame"]})
        todo = sorted({p for v in wanted.values() for p in v})
        tr = track((Frame(p, p / fps, clip.render(p)) for p in todo), fps, border=0, progress=False)
        face_at = dict(zip(tr.positions.tolist(), tr.faces))
        for k, e in enumerate(events):
            pos = frame_positions(e["offset_frame"] - e["onset_frame"] + 1) + e["onset_frame"]
            seq = [face_at.get(int(p)) for p in pos]
            apex = face_at.get(e["apex_frame"])
            if apex is None or any(f is None for f in seq):
                skipped += 1
                continue
            out.append(make_sample(f"synth_{seed}_{i}_{k}", subject, "synthetic", e["emotion"],
                                   [f"AU{a}" for a in e["aus"]], seq, apex))
        bar.set_postfix(samples=len(out), skipped=skipped)
    bar.close()
    return out


def save_samples(samples: Sequence[SeqSample], path: str | Path) -> None:
    """Samples to one ``.npz`` (arrays and strings only, read back with ``allow_pickle=False``)."""
    np.savez_compressed(
        path, frames=np.stack([s.frames for s in samples]), cloud=np.stack([s.cloud for s in samples]),
        dynamic=np.stack([s.dynamic for s in samples]), name=np.array([s.name for s in samples]),
        subject=np.array([s.subject for s in samples]), dataset=np.array([s.dataset for s in samples]),
        label=np.array([s.label or "" for s in samples]), aus=np.array(["+".join(s.aus) for s in samples]))


def load_samples(path: str | Path) -> list[SeqSample]:
    with np.load(path, allow_pickle=False) as npz:
        z = {k: npz[k] for k in npz.files}     # each access of an npz member decompresses it again: once only
    return [SeqSample(str(z["name"][i]), str(z["subject"][i]), str(z["dataset"][i]), str(z["label"][i]) or None,
                      tuple(a for a in str(z["aus"][i]).split("+") if a), z["frames"][i], z["cloud"][i],
                      z["dynamic"][i]) for i in range(len(z["name"]))]
