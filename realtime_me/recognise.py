"""``realtime-me recognise``: micro-expression recognition on pre-segmented samples.

Research databases hand out each ME as a folder of frames from the coded onset to the
coded offset, with no still face before it, so the live spotter (which learns the
face's noise for 0.7 s first) cannot be used on them. This command takes the onset and
offset as given and runs the product's own stages on the frames in between:

    frames -> FaceChain (tracker -> aligner -> flow points) -> apex finder -> Classifier(onset, apex)

``--model fdp|pointcloud`` (or ``--weights`` of such a model) runs a sequence model
instead: ``classify.make_classifier`` gives a ``SequenceClassifier``, which gets every
face onset -> offset and the apex (FDP samples 8 frames from them, the point-cloud model
carries the onset's points to the apex). ``locate`` (tracking, onset, apex) is public so
``sequences.dataset_samples`` builds training samples from exactly what this command sees.

**Apex** (unless one is given, or the dataset codes one): the frame of largest facial
displacement from the onset, the criterion of the apex-spotting literature (e.g. Yan et
al. 2014, Liong et al. 2015, who take the peak of a feature difference against the
onset frame). Here the feature is the flow points: each frame's points are
similarity-aligned onto the onset's stable points in inter-ocular units (the spotter's
head-motion removal), box-smoothed over the spotter's ``smooth_s``, and every spotter
region's RMS displacement from the onset shape is divided by the spotter's region gain
(the lids' halved: the spotter doubles their thresholds for gaze and lid jitter); the
score is the mean over regions, and the apex is its maximum after the onset (``find_apex``).

**Regions that moved**: at the apex, those within the spotter's ``dom_frac`` of the
strongest (the spotter's rule for which regions make up a movement).

**Tight crops**: the databases' 128x128 crops cut the face at forehead and chin. When
face mesh finds no face in the onset frame, or the face spans half the image width or
more, every frame is padded by half its size on each side (edge pixels replicated,
``cv2.copyMakeBorder``) before tracking: on tighter crops of the real clips the mesh
lost the face or misplaced it by 17 px without the border, and found it with. The
aligner replicates borders too, so the aligned crop is the same either way.

**Bad input**: frames without a face are reported and left out (the flow chain goes on
from the last face; the first frame with a face is the onset); a folder with unreadable or differently sized frames, positions
out of range or fewer than two frames is one ``UserError``, raised before any output
is written (outputs are written whole at the end, or not at all).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from .datasets import Sample, read_samples
from .engines import BACKENDS
from .errors import UserError
from .explain import explain
from .types import AlignedFace, Frame, Window

#: the face counts as filling the image from this fraction of its width (then: pad)
TIGHT_FRACTION = 0.5
#: border added on each side of a tight crop, as a fraction of the image's larger side
PAD_FRACTION = 0.5


# ------------------------------------------------------------------ reading a sample
@dataclass(frozen=True)
class Span:
    """The positions of a sample to use, checked against what it holds."""

    onset: int
    offset: int
    apex: int | None          # coded apex, or None
    n_frames: int | None      # None: a video that does not say


def check_span(sample: Sample, n_frames: int | None, where: str) -> Span:
    """Onset/apex/offset of ``sample`` against its ``n_frames`` (defaults: first and last frame)."""
    if n_frames is not None and n_frames < 2:
        raise UserError(f"{where} holds {n_frames} frame{'s' if n_frames != 1 else ''}; "
                        "recognition needs an onset and a later apex frame (at least 2)")
    last = None if n_frames is None else n_frames - 1
    onset = 0 if sample.onset is None else sample.onset
    offset = sample.offset if sample.offset is not None else last
    rng = "" if n_frames is None else f" ({where} has {n_frames} frames, positions 0-{last})"
    for name, pos in (("onset", onset), ("apex", sample.apex), ("offset", offset)):
        if pos is not None and last is not None and not 0 <= pos <= last:
            raise UserError(f"{name} {pos} is out of range{rng}")
    if offset is not None and offset <= onset:
        raise UserError(f"offset {offset} must come after onset {onset}{rng}")
    if sample.apex is not None and not (onset < sample.apex and (offset is None or sample.apex <= offset)):
        raise UserError(f"apex {sample.apex} must lie after onset {onset} and at or before offset {offset}")
    return Span(onset, -1 if offset is None else offset, sample.apex, n_frames)


def _check_images(paths: Sequence[Path]) -> None:
    """Every frame opens as an image and all share one size (headers only, no decoding)."""
    from PIL import Image, UnidentifiedImageError

    first = None
    for p in paths:
        try:
            with Image.open(p) as im:
                size = im.size
        except (UnidentifiedImageError, OSError, ValueError):
            raise UserError(f"{p}: not an image, or unreadable") from None
        if first is None:
            first = (p, size)
        elif size != first[1]:
            raise UserError(f"{p} is {size[0]}x{size[1]} but {first[0].name} is {first[1][0]}x{first[1][1]}: "
                            "the frames of one sample must share one size")


class SampleFrames:
    """The frames of one sample from onset to offset, opened and checked before any work."""

    def __init__(self, sample: Sample) -> None:
        from .sources import FrameFolderSource, VideoSource

        self.sample = sample
        if sample.path.is_dir():
            self.source = FrameFolderSource(sample.path, sample.fps)
            self.paths: list[Path] | None = list(self.source.paths)
            n: int | None = len(self.paths)
        elif sample.path.is_file():
            self.source = VideoSource(sample.path, realtime=False)
            self.paths = None
            n = self.source.info.n_frames
        else:
            raise UserError(f"no such folder or video: {sample.path}")
        self.fps = float(sample.fps or self.source.info.fps)
        if sample.n_frames is not None and n is not None and self.paths is not None and sample.n_frames != n:
            raise UserError(f"{sample.path} holds {n} frames but the list says n_frames {sample.n_frames}: "
                            "its positions may not fit these frames")
        # a video's frame count is the container's estimate: checked for real while decoding
        self.span = check_span(sample, n if self.paths is not None else None, str(sample.path))
        if self.paths is not None:
            _check_images(self.paths[self.span.onset:self.span.offset + 1])

    @property
    def n_frames(self) -> int:
        return self.span.offset - self.span.onset + 1

    def frames(self) -> Iterator[Frame]:
        """Frames onset..offset, ``index`` = position in the sorted list, ``t`` = position / fps."""
        onset, offset = self.span.onset, self.span.offset
        expected, size, last = onset, None, -1
        with self.source:
            for frame in self.source.frames():
                if frame.index < onset:
                    continue
                if offset >= 0 and frame.index > offset:
                    break
                if frame.index != expected:
                    raise UserError(f"cannot read frame {self._name(expected)} of {self.sample.path}")
                h, w = frame.image.shape[:2]
                if size is None:
                    size = (w, h)
                elif (w, h) != size:
                    raise UserError(f"frame {self._name(frame.index)} is {w}x{h}, the first {size[0]}x{size[1]}: "
                                    "the frames of one sample must share one size")
                last, expected = frame.index, frame.index + 1
                yield Frame(frame.index, frame.index / self.fps, frame.image)
        if offset >= 0 and last < offset:
            raise UserError(f"offset {offset} is out of range: {self.sample.path} has {last + 1} frames")
        if last - onset + 1 < 2:
            raise UserError(f"{self.sample.path} holds {max(0, last - onset + 1)} frame(s) from the onset on; "
                            "recognition needs an onset and a later apex frame (at least 2)")

    def _name(self, pos: int) -> str:
        return self.paths[pos].name if self.paths is not None and pos < len(self.paths) else f"{pos}"


# ------------------------------------------------------------------ tracking
def tracking_border(image: np.ndarray) -> int:
    """Pixels of border to add on each side before tracking: 0 unless the face fills the image
    (or face mesh finds none in it as it is), see the module docstring."""
    from .landmarks import landmarks_of_image

    pts = landmarks_of_image(image)
    h, w = image.shape[:2]
    if pts is not None and np.ptp(pts[:, 0]) < TIGHT_FRACTION * w:
        return 0
    return int(round(PAD_FRACTION * max(h, w)))


def pad(image: np.ndarray, border: int) -> np.ndarray:
    """``image`` with ``border`` replicated edge pixels on each side."""
    if border <= 0:
        return image
    return cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_REPLICATE)


@dataclass
class ClipTrack:
    """What the product's stages saw in a sample: per frame onset..offset, the aligned
    face and its flow points (aligned-crop pixels), or None / NaN where no face was found."""

    positions: np.ndarray             # (n,) positions in the sorted frame list
    points: np.ndarray                # (n, 478, 3) float32 flow points, NaN rows without face
    faces: list[AlignedFace | None]
    fps: float
    border: int = 0                   # padding added before tracking
    apertures: np.ndarray | None = None   # (n,) CropPoints.eye_aperture (the blink cue), NaN without face

    @property
    def no_face(self) -> list[int]:
        return [int(p) for p, f in zip(self.positions, self.faces) if f is None]


def track(frames: Iterator[Frame], fps: float, total: int | None = None, border: int | None = None,
          progress: bool = True, desc: str = "tracking") -> ClipTrack:
    """Frames -> ``FaceChain`` up to the flow points, as the pipeline chains them. A frame
    without a face is skipped without ending the flow chain (a pre-segmented clip is
    short: the next face is still comparable with the reference crop)."""
    from tqdm import tqdm

    from .chain import ChainConfig, FaceChain

    positions, rows, faces, aps = [], [], [], []
    with FaceChain(ChainConfig(spot=False)).start(fps) as chain:
        for frame in tqdm(frames, total=total, desc=desc, unit="frame", leave=False, disable=not progress,
                          file=sys.stderr):
            if border is None:
                border = tracking_border(frame.image)
            step = chain.process(Frame(frame.index, frame.t, pad(frame.image, border)))
            positions.append(frame.index)
            faces.append(step.located.face)
            rows.append(np.full((478, 3), np.nan, np.float32) if step.moved is None else step.moved.points.points)
            aps.append(np.nan if step.moved is None else step.moved.points.eye_aperture)
    pts = np.stack(rows) if rows else np.zeros((0, 478, 3), np.float32)
    return ClipTrack(np.array(positions, np.int64), pts, faces, float(fps), border or 0, np.asarray(aps))


# ------------------------------------------------------------------ apex
@dataclass
class ApexFit:
    """The motion of a clip from its first frame, and the apex it implies."""

    apex: int                    # index into the clip (0 = onset) of the largest score
    score: np.ndarray            # (n,) smoothed mean region displacement / gain, NaN without face
    regions: np.ndarray          # (n, R) smoothed RMS displacement per region from the onset (IOD)
    shapes: np.ndarray           # (n, S, 2) smoothed aligned shapes (IOD units), spotter point set
    base: np.ndarray             # (S, 2) the onset's aligned shape
    region_names: tuple[str, ...]
    gains: np.ndarray            # (R,) region gains the score divides by


def _nan_box(x: np.ndarray, h: int) -> np.ndarray:
    """Centred box mean of half width ``h`` along axis 0, ignoring NaN rows (truncated at the ends)."""
    if h <= 0:
        return x.copy()
    from scipy.ndimage import uniform_filter1d

    ok = np.isfinite(x).all(axis=tuple(range(1, x.ndim)))
    v = np.where(ok.reshape((-1,) + (1,) * (x.ndim - 1)), x, 0.0)
    num = uniform_filter1d(v, 2 * h + 1, axis=0, mode="constant")
    den = uniform_filter1d(ok.astype(np.float64), 2 * h + 1, mode="constant")
    out = num / np.maximum(den, 1e-12).reshape((-1,) + (1,) * (x.ndim - 1))
    out[~ok] = np.nan
    return out


def aligned_shapes(points: np.ndarray, ref: int = 0) -> np.ndarray:
    """(n, S, 2) the spotter's point set of every frame, similarity-aligned onto frame
    ``ref``'s stable points in inter-ocular units (head motion removed); NaN without face."""
    from .spotting.reference import align_frame, init_reference
    from .spotting.regions import tables

    tb = tables()
    n = len(points)
    out = np.full((n, len(tb.selected), 2), np.nan)
    ref_stable, scratch = np.zeros((len(tb.stable), 2)), np.zeros((len(tb.stable), 2))
    if not (0 <= ref < n) or not np.isfinite(points[ref, :, :2]).all() \
            or not init_reference(points[ref], tb.stable, tb.iod_pts, ref_stable):
        raise ValueError(f"frame {ref} has no usable face to measure motion from")
    for i, p in enumerate(points):
        if np.isfinite(p[:, :2]).all() and not align_frame(p, tb.selected, tb.stable, ref_stable, out[i], scratch):
            out[i] = np.nan
    return out


def blink_frames(apertures: np.ndarray | None, fps: float, ref: int = 0) -> np.ndarray:
    """(n,) bool: frames within the spotter's ``blink_near_s`` of one where the face mesh's
    eye aperture is ``mesh_blink_drop`` below the onset's (the spotter's blink rule)."""
    from .spotting import SpotterConfig

    if apertures is None or not np.isfinite(apertures[ref]):
        return np.zeros(0 if apertures is None else len(apertures), bool)
    cfg = SpotterConfig()
    shut = np.flatnonzero(apertures < (1.0 - cfg.mesh_blink_drop) * apertures[ref])
    near, idx = cfg.frames(fps)["near"], np.arange(len(apertures))
    return (np.abs(idx[:, None] - shut[None, :]) <= near).any(axis=1) if len(shut) else np.zeros(len(idx), bool)


def find_apex(points: np.ndarray, fps: float, ref: int = 0, lo: int | None = None, hi: int | None = None,
              apertures: np.ndarray | None = None) -> ApexFit:
    """Apex of a pre-segmented clip: the frame in ``lo..hi`` (default: after ``ref`` to the
    end) of largest head-motion-compensated displacement from frame ``ref``.

    ``points``: (n, 478, 2|3) face-mesh points per frame (flow points in the product), NaN
    rows where no face was found. Per spotter region, the RMS displacement of the
    smoothed aligned shape from the reference shape, in inter-ocular units, divided by the
    spotter's region gain; the score is its mean over regions. Near a blink (``apertures``:
    the face mesh's eye aperture per frame, ``blink_frames``) it is the mean over the
    regions a blink does not move, as in the spotter: a blink is not the ME's apex."""
    from .spotting import SpotterConfig
    from .spotting.reference import region_rms_all
    from .spotting.regions import BLINK_REGIONS, REGION_NAMES, tables

    cfg, tb = SpotterConfig(), tables()
    shapes = aligned_shapes(points, ref)
    base = shapes[ref].copy()
    smooth = _nan_box(shapes, cfg.frames(fps)["h"])
    n, R = len(points), len(REGION_NAMES)
    regions = np.full((n, R), np.nan)
    for i in range(n):
        if np.isfinite(smooth[i]).all():
            regions[i] = region_rms_all(smooth[i], base, tb.region_ptr, tb.region_pts)
    gains = np.where(tb.eye_mask == 1, cfg.eye_gain, 1.0)
    score = (regions / gains).mean(axis=1)
    blink = blink_frames(apertures, fps, ref)
    if blink.any():
        still = [i for i, name in enumerate(REGION_NAMES) if name not in BLINK_REGIONS]
        score[blink] = (regions[blink][:, still] / gains[still]).mean(axis=1)
    lo = ref + 1 if lo is None else lo
    hi = n - 1 if hi is None else hi
    window = np.full(n, -np.inf)
    sel = np.arange(n)
    inside = (sel >= lo) & (sel <= hi) & np.isfinite(score)
    if not inside.any():
        raise ValueError(f"no face in frames {lo}-{hi} to find an apex in")
    window[inside] = score[inside]
    return ApexFit(int(np.argmax(window)), score, regions, smooth, base, REGION_NAMES, gains)


def moved_regions(fit: ApexFit, at: int) -> list[str]:
    """Regions that make up the movement at clip index ``at``, strongest first: within the
    spotter's ``dom_frac`` of the strongest (gain-weighted) region."""
    from .describe import dominant

    d = fit.regions[at] / fit.gains
    if not np.isfinite(d).all():
        return []
    return dominant(dict(zip(fit.region_names, d.tolist())))


def window_motion(fit: ApexFit, at: int) -> tuple[dict[str, float], dict[str, float]]:
    """What the spotter puts in ``Window.regions`` and ``Window.cues`` (region displacements
    and AU cues of the movement onset -> ``at``), so the classifier's AU corroboration
    works as live."""
    from .spotting.reference import aperture
    from .spotting.regions import cues, tables

    tb = tables()
    reg = {n: float(v) for n, v in zip(fit.region_names, fit.regions[at])}
    apex_shape = fit.shapes[at]
    return reg, cues(apex_shape, fit.base, aperture(apex_shape, tb.lids, tb.corners),
                     aperture(fit.base, tb.lids, tb.corners))


# ------------------------------------------------------------------ one sample
@dataclass
class Recognition:
    """Everything ``recognise`` reports for one sample (``to_dict`` is its JSON)."""

    sample: str
    path: str
    dataset: str
    fps: float
    onset: int                         # positions in the sorted frame list
    apex: int
    offset: int
    apex_from: str                     # "motion" or "coded"
    motion_apex: int
    coded_apex: int | None
    emotion: str
    confidence: float
    probs: dict[str, float]
    aus: dict[str, float]              # the AUs reported (the classifier's thresholds)
    au_probs: dict[str, float]         # every AU head output
    moved: list[str]
    regions: dict[str, float]          # region displacement onset -> apex (IOD) and AU cues
    explanation: str
    no_face: list[int] = field(default_factory=list)
    border: int = 0
    label: str | None = None
    coded_aus: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    motion: list[float | None] = field(default_factory=list)   # apex score per position onset..offset

    def ms(self, frames: float) -> float:
        return frames / self.fps * 1e3

    def to_dict(self) -> dict:
        apex_err = None if self.coded_apex is None else self.motion_apex - self.coded_apex
        return {
            "sample": self.sample, "dataset": self.dataset, "path": self.path, "fps": self.fps,
            "emotion": self.emotion, "confidence": round(self.confidence, 4),
            "probs": {k: round(v, 4) for k, v in self.probs.items()},
            "aus": {k: round(v, 4) for k, v in self.aus.items()},
            "au_probs": {k: round(v, 4) for k, v in self.au_probs.items()},
            "onset": self.onset, "apex": self.apex, "offset": self.offset, "apex_from": self.apex_from,
            "apex_ms": round(self.ms(self.apex - self.onset), 1),
            "duration_ms": round(self.ms(self.offset - self.onset), 1),
            "motion_apex": self.motion_apex, "coded_apex": self.coded_apex,
            "motion_apex_error_frames": apex_err,
            "motion_apex_error_ms": None if apex_err is None else round(self.ms(apex_err), 1),
            "moved": self.moved, "regions": {k: round(v, 5) for k, v in self.regions.items()},
            "explanation": self.explanation, "label": self.label,
            "correct": None if self.label is None else self.label == self.emotion,
            "coded_aus": self.coded_aus, "no_face": self.no_face, "border": self.border, "notes": self.notes,
            "motion": self.motion,
        }


@dataclass
class Located:
    """Where a sample's ME is: the tracked clip, the onset (first frame with a face), the apex
    used and the motion fit behind it (indices into the clip)."""

    clip: ClipTrack
    ref: int
    at: int
    apex_from: str
    fit: ApexFit
    coded: int | None
    notes: list[str]


def locate(sample: Sample, frames: SampleFrames | None = None, own_apex: bool = False,
           progress: bool = True) -> Located:
    """Track a sample and choose its onset and apex, as ``recognise`` does (also used to
    build training samples for the sequence models, so both see the same frames)."""
    frames = frames or SampleFrames(sample)
    fps, coded = frames.fps, frames.span.apex
    clip = track(frames.frames(), fps, total=frames.n_frames if frames.span.offset >= 0 else None,
                 progress=progress, desc=sample.name)
    pos, has_face = clip.positions, np.array([f is not None for f in clip.faces])
    if not has_face.any():
        raise UserError(f"no face found in any of the {len(pos)} frames of {sample.path}")
    ref = int(np.argmax(has_face))            # the onset: the first frame with a face
    if not has_face[ref + 1:].any():
        raise UserError(f"{sample.path}: a face only in frame {int(pos[ref])}; "
                        "recognition needs an onset and a later apex frame with a face")
    notes = []
    if ref > 0:
        notes.append(f"no face at the onset {int(pos[0])}: frame {int(pos[ref])}, the first with a face, is the onset")
    fit = find_apex(clip.points, fps, ref=ref, apertures=clip.apertures)
    at, apex_from = fit.apex, "motion"
    if coded is not None and not own_apex:
        at, apex_from = int(coded - pos[0]), "coded"
        if not has_face[at]:
            faced = np.flatnonzero(has_face[ref + 1:]) + ref + 1
            at = int(faced[np.argmin(np.abs(faced - at))])
            notes.append(f"no face at the coded apex {coded}: used frame {int(pos[at])}")
    return Located(clip, ref, at, apex_from, fit, coded, notes)


def recognise(sample: Sample, classifier, own_apex: bool = False, progress: bool = True,
              frames: SampleFrames | None = None) -> Recognition:
    """One sample through tracker, aligner, flow points, apex finder and classifier."""
    from .classify import sigmoid
    from .spotting import SpotterConfig

    frames = frames or SampleFrames(sample)
    fps = frames.fps
    loc = locate(sample, frames, own_apex, progress)
    clip, ref, at, apex_from, fit, coded, notes = loc.clip, loc.ref, loc.at, loc.apex_from, loc.fit, loc.coded, loc.notes
    pos = clip.positions
    onset, apex, offset = int(pos[ref]), int(pos[at]), int(pos[-1])
    regions, cued = window_motion(fit, at)
    window = Window(onset_index=onset, apex_index=apex, offset_index=offset, onset_t=onset / fps,
                    apex_t=apex / fps, offset_t=offset / fps, regions=regions, cues=cued)
    max_micro = SpotterConfig().max_micro_s
    if window.duration > max_micro:
        window.kind = "macro"
        notes.append(f"onset to offset is {window.duration * 1e3:.0f} ms, longer than a micro-expression "
                     f"({max_micro * 1e3:.0f} ms); classified as given")
    if getattr(classifier, "needs_window", False):   # a sequence model: every face onset -> offset
        inputs = classifier.window_inputs([f for f in clip.faces[ref:] if f is not None], clip.faces[at])
    else:
        inputs = classifier.inputs(clip.faces[ref], clip.faces[at])
    out = classifier.engine.run(inputs)
    event = classifier.to_event(window, out)
    au_probs = {} if "au_logits" not in out else {
        n: float(p) for n, p in zip(classifier.au_names, sigmoid(out["au_logits"][0].astype(np.float64)))}
    moved = moved_regions(fit, at)
    sentence = explain(moved, event.aus, event.emotion, event.probs,
                       apex_s=(apex - onset) / fps, duration_s=(offset - onset) / fps)
    if clip.no_face:
        notes.append(f"no face in {len(clip.no_face)} of {len(pos)} frames (left out): {_ranges(clip.no_face)}")
    return Recognition(
        sample=sample.name, path=str(sample.path), dataset=sample.dataset, fps=fps, onset=onset, apex=apex,
        offset=offset, apex_from=apex_from, motion_apex=int(pos[fit.apex]), coded_apex=coded,
        emotion=event.emotion, confidence=float(event.confidence), probs=dict(event.probs), aus=dict(event.aus),
        au_probs=au_probs, moved=moved, regions=window.regions, explanation=sentence, no_face=clip.no_face,
        border=clip.border, label=sample.label, coded_aus=list(sample.aus), notes=notes,
        motion=[None if not np.isfinite(v) else round(float(v), 5) for v in fit.score])


def _ranges(positions: Sequence[int]) -> str:
    """[3, 4, 5, 9] -> "3-5, 9"."""
    out, start = [], None
    for i, p in enumerate(positions):
        if start is None:
            start = p
        if i + 1 == len(positions) or positions[i + 1] != p + 1:
            out.append(f"{start}" if start == p else f"{start}-{p}")
            start = None
    return ", ".join(out)


# ------------------------------------------------------------------ outputs
class Outputs:
    """Output files checked before the work starts and written whole at the end (each to a
    temporary file beside it, then renamed), so a failed run leaves none half-written."""

    def __init__(self, **paths: str | None) -> None:
        self.paths = {k: Path(v) for k, v in paths.items() if v}
        for opt, p in self.paths.items():
            flag = f"--{opt.replace('_', '-')}"
            if p.is_dir():
                raise UserError(f"{flag} {p}: is a folder, not a file")
            try:
                if p.parent.is_dir():   # a real test: create and remove a file beside it
                    fd, probe = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".probe")
                    os.close(fd)
                    os.unlink(probe)
                else:                   # folders are made only when writing; the nearest existing one must take them
                    up = next(a for a in p.parents if a.exists())
                    if not up.is_dir() or not os.access(up, os.W_OK | os.X_OK):
                        raise NotADirectoryError(20, "not a folder" if not up.is_dir() else "not writable", str(up))
            except OSError as e:
                where = e.filename or p.parent
                raise UserError(f"{flag} {p}: cannot write there ({e.strerror or e}: {where})") from None

    def write(self, contents: dict) -> None:
        """``contents``: option -> str (text) or callable(path) that writes the file."""
        staged = []
        try:
            for opt, data in contents.items():
                p = self.paths.get(opt)
                if p is None:
                    continue
                p.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=p.suffix)
                os.close(fd)
                staged.append((tmp, p))
                if callable(data):
                    data(tmp)
                else:
                    Path(tmp).write_text(data, encoding="utf-8")
            for tmp, p in staged:
                os.replace(tmp, p)
        except OSError as e:
            raise UserError(f"cannot write {getattr(e, 'filename', '') or 'output'}: {e.strerror or e}") from None
        finally:
            for tmp, _ in staged:
                if os.path.exists(tmp):
                    os.unlink(tmp)


CSV_FIELDS = ("sample", "dataset", "label", "emotion", "confidence", "correct", "onset", "apex", "offset",
              "apex_from", "motion_apex", "coded_apex", "motion_apex_error_ms", "aus", "moved", "explanation",
              "error")


def to_csv(rows: list[dict], labels: Sequence[str]) -> str:
    buf = io.StringIO()
    fields = list(CSV_FIELDS[:5]) + [f"p_{k}" for k in labels] + list(CSV_FIELDS[5:])
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        out = dict(r)
        out.update({f"p_{k}": v for k, v in (r.get("probs") or {}).items()})
        out["aus"] = "+".join(r.get("aus") or {})
        out["moved"] = "+".join(r.get("moved") or [])
        w.writerow(out)
    return buf.getvalue()


# ------------------------------------------------------------------ metrics
def metrics(rows: list[dict], labels: Sequence[str]) -> dict | None:
    """UF1/UAR overall and per dataset (``metrics.score``, the LOSO metric) over rows
    with a label and no error, plus how far the motion apex fell from the coded one."""
    scored = [r for r in rows if r.get("label") and not r.get("error")]
    out: dict = {}
    if scored:
        from .metrics import score

        y_true = np.array([labels.index(r["label"]) for r in scored])
        y_pred = np.array([labels.index(r["emotion"]) for r in scored])
        out = score(y_true, y_pred, np.array([r["dataset"] for r in scored]), labels)
        out["correct"] = int((y_true == y_pred).sum())
    errs = [abs(r["motion_apex_error_ms"]) for r in rows if r.get("motion_apex_error_ms") is not None]
    if errs:
        out["motion_apex_abs_error_ms"] = {"n": len(errs), "mean": round(float(np.mean(errs)), 1),
                                           "median": round(float(np.median(errs)), 1),
                                           "max": round(float(np.max(errs)), 1),
                                           "within_30ms": int(sum(e <= 30 for e in errs))}
    return out or None


# ------------------------------------------------------------------ command
def configure(p: argparse.ArgumentParser) -> None:
    p.description = ("Recognise the emotion of pre-segmented micro-expression samples (a folder of frames or a "
                     "video from onset to offset, or a list of them). The apex is found from the motion unless "
                     "given.")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = """\
--dataset FILE.csv columns: sample, path (a folder of frames or a video, relative to
  the CSV), fps (needed for folders; a video's own rate if empty), and optional onset,
  apex, offset (positions in the sorted frame list; default first frame, from the
  motion, last frame), label (one of the model's classes: enables UF1/UAR), aus
  (e.g. 4+7+L10), dataset (for per-dataset scores), subject.
--dataset clips.json: a list of objects with sample, fps, emotion, aus, n_frames,
  onset, apex (null: unknown), offset; frames in the folder named sample beside it.

The apex, unless coded: the frame of largest head-motion-compensated flow-point
displacement from the onset (realtime_me/recognise.py says how). Frames without a
face are reported and left out; tight face crops are padded before tracking."""
    src = p.add_argument_group("input (one of)")
    src.add_argument("--frames", metavar="DIR", help="a folder of frames, sorted by name (needs --fps)")
    src.add_argument("--video", metavar="PATH", help="a video file")
    src.add_argument("--dataset", metavar="FILE", help="a CSV sample list or a clips.json (realclips layout)")
    one = p.add_argument_group("one sample")
    one.add_argument("--fps", type=float, help="the frames' rate (--video: overrides the file's)")
    one.add_argument("--onset", type=int, metavar="POS", help="onset position in the sorted frames (default: first)")
    one.add_argument("--apex", type=int, metavar="POS", help="coded apex position (default: found from the motion)")
    one.add_argument("--offset", type=int, metavar="POS", help="offset position (default: last)")
    p.add_argument("--own-apex", action="store_true",
                   help="ignore coded apexes (--apex, the dataset's apex column) and use the one found from the "
                        "motion; the coded one is still reported for comparison")
    model = p.add_argument_group("model")
    model.add_argument("--model", help="a shipped model by name (medn, ststnet, fdp, pointcloud: models/NAME); "
                                       "default medn")
    model.add_argument("--weights", help="model folder (default: the shipped models/medn)")
    model.add_argument("--backend", default="auto", choices=BACKENDS,
                       help="inference engine")
    out = p.add_argument_group("output (each written whole at the end)")
    out.add_argument("--json", metavar="OUT.json", help="one sample: its result; --dataset: metrics and all samples")
    out.add_argument("--jsonl", metavar="OUT.jsonl", help="one JSON object per sample")
    out.add_argument("--csv", metavar="OUT.csv", help="one row per sample")
    out.add_argument("--confusion", metavar="OUT.png", help="--dataset with labels: confusion matrices (PNG)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _samples(args) -> list[Sample]:
    sources = [n for n, v in (("--frames", args.frames), ("--video", args.video), ("--dataset", args.dataset)) if v]
    if len(sources) != 1:
        raise UserError("give one input: --frames DIR --fps F, --video PATH or --dataset FILE"
                        + (f" (not {' and '.join(sources)})" if sources else ""))
    if args.dataset:
        given = [f"--{n}" for n in ("fps", "onset", "apex", "offset") if getattr(args, n) is not None]
        if given:
            raise UserError(f"{', '.join(given)}: with --dataset, per-sample values come from the file's columns")
        return read_samples(args.dataset)
    for n in ("onset", "apex", "offset"):
        v = getattr(args, n)
        if v is not None and v < 0:
            raise UserError(f"--{n} {v}: positions count from 0")
    if args.fps is not None and not args.fps > 0:
        raise UserError(f"--fps {args.fps:g}: must be positive")
    path = Path(args.frames or args.video)
    if args.frames:
        if not path.is_dir():
            raise UserError(f"no such folder: {path}")
        if args.fps is None:
            raise UserError("an image sequence needs its frame rate: pass --fps F (e.g. --fps 200)")
    elif not path.is_file():
        raise UserError(f"no such video file: {path}")
    return [Sample(path.name if args.frames else path.stem, path, args.fps, args.onset, args.apex, args.offset,
                   origin=str(path))]


def _open_all(samples: list[Sample], single: bool) -> list[SampleFrames]:
    """Open and check every sample before any work, so a bad list fails at once."""
    opened = []
    for s in samples:
        try:
            opened.append(SampleFrames(s))
        except UserError as e:
            raise UserError(str(e) if single else f"{s.origin}: sample {s.name}: {e}") from None
    return opened


def weights_dir(args) -> Path:
    """The weights folder of ``--weights`` or ``--model NAME`` (a shipped folder), default MEDN."""
    from .engines import DEFAULT_WEIGHTS

    model, weights = getattr(args, "model", None), getattr(args, "weights", None)
    if model and weights:
        raise UserError("give --model NAME or --weights DIR, not both")
    if model:
        path = DEFAULT_WEIGHTS.parent / model
        if not (path / "model.json").is_file():
            known = sorted(p.name for p in DEFAULT_WEIGHTS.parent.iterdir() if (p / "model.json").is_file())
            raise UserError(f"--model {model}: no shipped model of that name (shipped: {', '.join(known)})")
        return path
    return Path(weights) if weights else DEFAULT_WEIGHTS


def _load_classifier(args):
    from .classify import make_classifier
    from .engines import load_engine

    return make_classifier(load_engine(weights_dir(args), backend=args.backend))


def format_result(r: Recognition) -> str:
    probs = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r.probs.items(), key=lambda kv: -kv[1]))
    aus = ", ".join(f"{k} {v:.2f}{'*' if k in r.aus else ''}"
                    for k, v in sorted(r.au_probs.items(), key=lambda kv: -kv[1])) + "  (* reported)"
    apex = f"{r.apex} ({r.ms(r.apex - r.onset):.0f} ms after the onset; {r.apex_from}"
    if r.apex_from == "coded":
        apex += f", the motion says {r.motion_apex}"
    elif r.coded_apex is not None:
        apex += f", coded {r.coded_apex}: {r.ms(r.motion_apex - r.coded_apex):+.0f} ms"
    lines = [f"sample:  {r.sample}  frames {r.onset}-{r.offset} at {r.fps:g} fps ({r.ms(r.offset - r.onset):.0f} ms)",
             f"emotion: {r.emotion} {r.confidence:.0%}" + (f"   (coded {r.label})" if r.label else ""),
             f"probs:   {probs}", f"AUs:     {aus}" + (f"   (coded {'+'.join(r.coded_aus)})" if r.coded_aus else ""),
             f"moved:   {', '.join(r.moved) or 'nothing clear'}", f"apex:    {apex})"]
    lines += [f"note:    {n}" for n in r.notes]
    lines.append(r.explanation)
    return "\n".join(lines)


def _row_line(r: dict) -> str:
    if r.get("error"):
        return f"{r['sample']}: FAILED: {r['error']}"
    coded = f"coded {r['label']:<9}" if r.get("label") else ""
    apex = f"apex {r['apex']} ({r['apex_from']})"
    if r.get("coded_apex") is not None:
        apex += f", motion {r['motion_apex']} vs coded {r['coded_apex']} ({r['motion_apex_error_ms']:+.0f} ms)"
    return f"{r['sample']:<24} {coded} -> {r['emotion']:<9} {r['confidence']:4.0%}  {apex}"


def run(args: argparse.Namespace) -> int:
    weights_dir(args)                      # a bad --model / --weights pair fails before any sample is read
    samples = _samples(args)
    single = not args.dataset
    outputs = Outputs(json=args.json, jsonl=args.jsonl, csv=args.csv, confusion=args.confusion)
    if args.confusion and not any(s.label for s in samples):
        raise UserError("--confusion needs coded labels (a label column / emotion key in the dataset file)")
    opened = _open_all(samples, single)
    from .weights import read_card

    labels = list(read_card(weights_dir(args)).labels)
    for s in samples:
        if s.label is not None and s.label not in labels:
            raise UserError(f"{s.origin}: sample {s.name}: label {s.label!r} is not one of the model's classes "
                            f"({', '.join(labels)})")
    classifier = _load_classifier(args)
    labels = list(classifier.labels)
    rows: list[dict] = []
    progress = not args.no_progress
    if single:
        result = recognise(samples[0], classifier, args.own_apex, progress, opened[0])
        rows.append(result.to_dict())
        print(format_result(result))
    else:
        from tqdm import tqdm

        bar = tqdm(total=len(samples), desc="samples", unit="sample", disable=not progress, file=sys.stderr)
        for s, frames in zip(samples, opened):
            try:
                row = recognise(s, classifier, args.own_apex, False, frames).to_dict()
            except UserError as e:
                row = {"sample": s.name, "dataset": s.dataset, "path": str(s.path), "label": s.label, "error": str(e)}
            rows.append(row)
            bar.write(_row_line(row))
            bar.update(1)
        bar.close()
    summary = metrics(rows, labels)
    if summary and not single:
        _print_summary(summary)
    contents: dict = {"jsonl": "".join(json.dumps(r) + "\n" for r in rows), "csv": to_csv(rows, labels)}
    if single:
        contents["json"] = json.dumps(rows[0], indent=2) + "\n"
    else:
        contents["json"] = json.dumps({"dataset": str(args.dataset), "own_apex": bool(args.own_apex),
                                       "model": classifier.engine.describe(), "metrics": summary,
                                       "samples": rows}, indent=2) + "\n"
    if args.confusion and summary and "overall" in summary:
        from .metrics import plot_confusion

        contents["confusion"] = lambda tmp: plot_confusion(summary, tmp)
    outputs.write(contents)
    failed = [r for r in rows if r.get("error")]
    if failed:
        print(f"{len(failed)} of {len(rows)} samples failed (their rows carry the error)", file=sys.stderr)
        return 1
    return 0


def _print_summary(m: dict) -> None:
    if "overall" in m:
        o = m["overall"]
        print(f"all: {m['correct']}/{o['n']} correct  UF1 {o['uf1']:.3f}  UAR {o['uar']:.3f}")
        for d, v in m["per_dataset"].items():
            print(f"  {d:<8} UF1 {v['uf1']:.3f}  UAR {v['uar']:.3f}  (n={v['n']})")
    a = m.get("motion_apex_abs_error_ms")
    if a:
        print(f"motion apex vs coded apex: median {a['median']:.0f} ms, mean {a['mean']:.0f} ms, "
              f"max {a['max']:.0f} ms, within 30 ms {a['within_30ms']}/{a['n']}")
