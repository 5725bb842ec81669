"""Built-in demo clips: labelled micro-expressions rendered from one real face photo.

A clip is one still face (by default scikit-image's public-domain astronaut photo)
placed at webcam size and moved by smooth displacement fields shaped like FACS
action units. Fields are anchored on the photo's face-mesh landmarks (found once)
and expressed in face coordinates (inter-ocular distance, face rotation), so any
frontal face photo works. The clip mixes the micro-expressions (MEs) to spot with
the distractors a real webcam shows: blinks, head drift, one macro-expression,
illumination flicker and sensor noise. Every event is written to a ground-truth
JSON, so the spotter can be scored without any labelled video.

Rendering is random-access and deterministic for a seed. Per frame: one affine warp
of the still face for the head drift, and only while an event is drawn, a scaled copy
of its precomputed field, a fixed-point inverse and a ``cv2.remap`` of that region;
then flicker and noise. ``benchmarks/synth.py`` measures it and checks the rendered
motion against the truth.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .errors import UserError
from .types import EMOTIONS

# --------------------------------------------------------------------------- timing

#: Quantile levels of the embedded ME phase durations below.
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 21)

#: Onset->apex and apex->offset durations of real MEs, in seconds, at QUANTILE_LEVELS.
#: Made once by ``duration_quantiles("../shared/data/composite/labels.csv")``: the 250
#: rows with frame numbers (CASME II and SAMM, 200 fps; SMIC has none), durations
#: (apex - onset) / fps and (offset - apex) / fps, ``np.quantile`` (linear), rounded
#: to 0.1 ms. tests/test_synth.py recomputes them from the CSV when it is present.
ONSET_APEX_S = np.array([
    0.005, 0.08, 0.099, 0.105, 0.115, 0.125, 0.13, 0.14, 0.15, 0.155, 0.165,
    0.17, 0.18, 0.185, 0.2, 0.215, 0.225, 0.25, 0.275, 0.325, 0.44])
APEX_OFFSET_S = np.array([
    0.0, 0.0572, 0.0845, 0.0968, 0.11, 0.125, 0.125, 0.1408, 0.155, 0.17, 0.175,
    0.185, 0.2, 0.21, 0.225, 0.2388, 0.26, 0.285, 0.31, 0.33, 0.45])

MICRO_MIN_S, MICRO_MAX_S = 0.065, 0.5      # rendered MEs last this long (the databases' range)
MICRO_AMPLITUDE_PX = (0.5, 3.0)            # peak landmark displacement at 640x480
MACRO_AMPLITUDE_PX = (5.0, 10.0)
MACRO_DURATION_S = (0.8, 3.0)
MACRO_SPREAD = 1.5                         # a macro-expression recruits more of the face
BLINK_DURATION_S = (0.1, 0.4)
LEAD_S, TAIL_S, GAP_S = 1.0, 0.5, 1.0      # neutral start, neutral end, min gap between expressions
BLINK_MARGIN_S = 0.1                       # blinks stay this far from expressions (may come close)

#: Face width (cheek to cheek) at the reference 640x480 frame, px; amplitudes scale with it.
REF_FACE_WIDTH_PX = 0.36 * 640


def duration_quantiles(labels_csv: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Onset->apex and apex->offset quantiles (s) of the composite set's coded MEs.

    Only used to (re)derive ONSET_APEX_S / APEX_OFFSET_S; the product never reads the CSV.
    """
    rise, fall = [], []
    with open(labels_csv, newline="") as f:
        for row in csv.DictReader(f):
            if not row["onset_frame"]:
                continue
            on, ap, off, fps = (int(row["onset_frame"]), int(row["apex_frame"]),
                                int(row["offset_frame"]), float(row["fps"]))
            rise.append((ap - on) / fps)
            fall.append((off - ap) / fps)
    q = lambda x: np.round(np.quantile(np.asarray(x), QUANTILE_LEVELS), 4)  # noqa: E731
    return q(rise), q(fall)


# --------------------------------------------------------------------------- action units

@dataclass(frozen=True)
class Anchors:
    """Landmarks that move together, the direction they move and how far the pull spreads.

    ``move`` is (outward, down) in face coordinates: outward is away from the face's
    midline (mirrored per side, zero on the midline). Its length is relative: an
    expression's field is normalised afterwards. ``sigma`` is the Gaussian falloff in
    inter-ocular distances.
    """

    points: tuple[int, ...]
    move: tuple[float, float]
    sigma: float


@dataclass(frozen=True)
class ActionUnit:
    number: int
    name: str
    anchors: tuple[Anchors, ...]
    pins: tuple[int, ...] = ()      # landmarks held still (the field fades to 0 there)
    pin_sigma: float = 0.04


_INNER_BROW = (107, 66, 55, 65, 336, 296, 285, 295)
_MID_BROW = (105, 52, 334, 282)
_OUTER_BROW = (70, 63, 46, 53, 300, 293, 276, 283)
_UPPER_LID = (246, 161, 160, 159, 158, 157, 173, 466, 388, 387, 386, 385, 384, 398)
_LOWER_LID = (7, 163, 144, 145, 153, 154, 155, 249, 390, 373, 374, 380, 381, 382)
_CHEEK = (117, 118, 119, 100, 101, 50, 346, 347, 348, 329, 330, 280)
_LIP_CORNER = (61, 291, 76, 306, 62, 292, 78, 308, 57, 287, 185, 409, 146, 375)
_NASOLABIAL = (206, 426, 216, 436, 207, 427, 92, 322)
_CHIN = (18, 200, 199, 201, 421, 208, 428, 83, 313, 32, 262)
_LOWER_LIP = (17, 84, 314, 181, 405)

#: FACS action units as landmark pulls (Ekman & Friesen's descriptions, seen from the front).
ACTION_UNITS: dict[int, ActionUnit] = {au.number: au for au in (
    ActionUnit(1, "inner brow raiser", (Anchors(_INNER_BROW, (0.0, -1.0), 0.15),
                                        Anchors(_MID_BROW, (0.0, -0.4), 0.15))),
    ActionUnit(2, "outer brow raiser", (Anchors(_OUTER_BROW, (0.0, -1.0), 0.15),
                                        Anchors(_MID_BROW, (0.0, -0.6), 0.15))),
    ActionUnit(4, "brow lowerer", (Anchors(_INNER_BROW, (-0.45, 0.9), 0.12),
                                   Anchors(_MID_BROW, (-0.2, 0.6), 0.12)), pins=_LOWER_LID, pin_sigma=0.08),
    ActionUnit(5, "upper lid raiser", (Anchors(_UPPER_LID, (0.0, -1.0), 0.05),), pins=_LOWER_LID),
    ActionUnit(6, "cheek raiser", (Anchors(_CHEEK, (0.15, -1.0), 0.15),
                                   Anchors(_LOWER_LID, (0.0, -0.5), 0.05))),
    ActionUnit(7, "lid tightener", (Anchors(_LOWER_LID, (0.0, -1.0), 0.05),
                                    Anchors(_UPPER_LID, (0.0, 0.35), 0.05))),
    ActionUnit(12, "lip corner puller", (Anchors(_LIP_CORNER, (0.75, -0.6), 0.12),
                                         Anchors(_NASOLABIAL, (0.35, -0.45), 0.15))),
    ActionUnit(14, "dimpler", (Anchors(_LIP_CORNER, (0.6, 0.05), 0.09),)),
    ActionUnit(15, "lip corner depressor", (Anchors(_LIP_CORNER, (0.15, 1.0), 0.12),
                                            Anchors((91, 321, 181, 405), (0.1, 0.4), 0.12))),
    ActionUnit(17, "chin raiser", (Anchors(_LOWER_LIP, (0.0, -1.0), 0.1),
                                   Anchors(_CHIN, (0.0, -0.6), 0.15))),
)}


@dataclass(frozen=True)
class Expression:
    """An emotion's AU combination; weights are the AUs' relative strengths."""

    emotion: str
    aus: tuple[tuple[int, float], ...]

    @property
    def au_numbers(self) -> list[int]:
        return sorted(n for n, _ in self.aus)


#: The MEs the clip shows, per class of the MEGC2019 composite protocol.
EXPRESSIONS: tuple[Expression, ...] = (
    Expression("positive", ((6, 0.5), (12, 1.0))),
    Expression("negative", ((4, 1.0), (7, 0.6))),
    Expression("negative", ((14, 1.0),)),
    Expression("negative", ((15, 1.0), (17, 0.7))),
    Expression("surprise", ((1, 1.0), (2, 0.8))),
    Expression("surprise", ((1, 1.0), (2, 0.8), (5, 0.5))),
)

#: Blink (AU45) eye landmarks: corners (image-left, image-right), upper lid, lower lid.
_EYES = (
    ((33, 133), (246, 161, 160, 159, 158, 157, 173), (7, 163, 144, 145, 153, 154, 155)),
    ((362, 263), (398, 384, 385, 386, 387, 388, 466), (382, 381, 380, 374, 373, 390, 249)),
)


# --------------------------------------------------------------------------- config and events

@dataclass
class SynthConfig:
    """What to render. Distractor flags switch each nuisance off for cleaner checks."""

    seed: int = 0
    fps: float = 30.0
    duration_s: float = 20.0
    width: int = 640
    height: int = 480
    face: str | None = None          # path; None = astronaut
    n_micro: int | None = None       # None = about one every 3 s
    macro: bool = True
    blinks: bool = True
    head_motion: bool = True
    flicker: bool = True
    noise: bool = True
    distractors_only: bool = False

    def validate(self) -> None:
        if not (5 <= self.fps <= 2000):   # below 5 fps a 2-frame movement is longer than an ME
            raise UserError(f"fps must be in [5, 2000], got {self.fps}")
        if not (0 < self.duration_s <= 3600):
            raise UserError(f"duration must be in (0, 3600] s, got {self.duration_s}")
        if self.width < 160 or self.height < 120:
            raise UserError(f"frame size {self.width}x{self.height} is too small (at least 160x120)")
        if self.n_micro is not None and self.n_micro < 0:
            raise UserError(f"--n-micro must be >= 0, got {self.n_micro}")
        if self.distractors_only and self.n_micro:
            raise UserError("--distractors-only renders no micro-expression; drop --n-micro")


@dataclass
class _Event:
    """One planned movement, in frames. The weight rises onset->rise_end, holds, falls to offset."""

    kind: str                       # micro | macro | blink
    emotion: str | None
    aus: list[int]
    onset: int
    rise_end: int
    fall_start: int
    offset: int
    amplitude_px: float
    expression: int | None = None   # index into EXPRESSIONS (None for blinks)
    closure: float = 1.0            # blinks: peak fraction of the eye closed
    spread: float = 1.0             # field falloff multiplier (wider for a macro-expression)

    @property
    def apex(self) -> int:
        return (self.rise_end + self.fall_start) // 2

    def weight(self, i: int) -> float:
        """0 at onset and offset, 1 at the apex, raised-cosine ramps in between."""
        if i <= self.onset or i >= self.offset:
            return 0.0
        if i < self.rise_end:
            return _ease((i - self.onset) / (self.rise_end - self.onset))
        if i <= self.fall_start:
            return 1.0
        return _ease((self.offset - i) / (self.offset - self.fall_start))

    def to_dict(self, fps: float) -> dict:
        return {
            "kind": self.kind, "emotion": self.emotion, "aus": list(self.aus),
            "onset_frame": self.onset, "apex_frame": self.apex, "offset_frame": self.offset,
            "onset_s": round(self.onset / fps, 4), "apex_s": round(self.apex / fps, 4),
            "offset_s": round(self.offset / fps, 4),
            "duration_s": round((self.offset - self.onset) / fps, 4),
            "amplitude_px": round(float(self.amplitude_px), 3),
        }


def _ease(u: float) -> float:
    return 0.5 - 0.5 * math.cos(math.pi * min(max(u, 0.0), 1.0))


def _rng(seed: int, stream: int, *more: int) -> np.random.Generator:
    """Independent streams, so switching one distractor off leaves the others unchanged."""
    return np.random.default_rng([seed & 0xFFFFFFFF, stream, *more])


# --------------------------------------------------------------------------- face set-up

@dataclass(frozen=True)
class _FaceAxes:
    """Face coordinates: origin between the irises, x towards image right, y down the face."""

    origin: np.ndarray
    x: np.ndarray
    y: np.ndarray
    iod: float

    @classmethod
    def of(cls, lm: np.ndarray) -> "_FaceAxes":
        a, b = lm[468].astype(np.float64), lm[473].astype(np.float64)   # iris centres
        x = (b - a) / np.linalg.norm(b - a)
        return cls((a + b) / 2, x, np.array([-x[1], x[0]]), float(np.linalg.norm(b - a)))


@lru_cache(maxsize=4)
def _load_face(path: str | None, stamp: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """(photo BGR, its 478x2 landmarks). Cached: MediaPipe start-up costs a second."""
    del stamp  # part of the cache key only: a changed file is read again
    if path is None:
        import skimage.data

        photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    else:
        photo = cv2.imread(path, cv2.IMREAD_COLOR)
        if photo is None:
            raise UserError(f"cannot read face image {path}")
    from .landmarks import landmarks_of_image

    lm = landmarks_of_image(photo)
    if lm is None:
        raise UserError(f"no face found in {path or 'the astronaut photo'}")
    return photo, lm[:, :2].astype(np.float64)


def _face_photo(path: str | None) -> tuple[np.ndarray, np.ndarray]:
    if path is None:
        return _load_face(None, None)
    p = Path(path)
    if not p.is_file():
        raise UserError(f"face image not found: {path}")
    st = p.stat()
    return _load_face(str(p.resolve()), (st.st_mtime_ns, st.st_size))


# --------------------------------------------------------------------------- fields

class _Points:
    """Where to evaluate a field: arbitrary points (N, 2)."""

    def __init__(self, pts: np.ndarray) -> None:
        self.pts = pts
        self.shape = (len(pts),)

    def union(self, anchors: np.ndarray, sigma: float) -> np.ndarray:
        """1 - prod(1 - gaussian): 1 on any anchor, smooth, never above 1 however dense the anchors."""
        keep = np.ones(self.shape)
        for a in anchors:
            keep *= 1.0 - np.exp(((self.pts - a) ** 2).sum(axis=1) / (-2.0 * sigma * sigma))
        return 1.0 - keep


class _Grid(_Points):
    """Where to evaluate a field: every pixel of a box; each Gaussian only within 4 sigma, separably."""

    def __init__(self, x0: int, y0: int, w: int, h: int) -> None:
        self.x0, self.y0 = x0, y0
        self.shape = (h, w)

    def union(self, anchors: np.ndarray, sigma: float) -> np.ndarray:
        keep = np.ones(self.shape)
        h, w = self.shape
        r = 4.0 * sigma
        for ax, ay in anchors:
            i0, i1 = max(0, int(ax - r) - self.x0), min(w, int(ax + r) + 1 - self.x0)
            j0, j1 = max(0, int(ay - r) - self.y0), min(h, int(ay + r) + 1 - self.y0)
            if i0 >= i1 or j0 >= j1:
                continue
            gx = np.exp((np.arange(i0, i1) + self.x0 - ax) ** 2 / (-2.0 * sigma * sigma))
            gy = np.exp((np.arange(j0, j1) + self.y0 - ay) ** 2 / (-2.0 * sigma * sigma))
            keep[j0:j1, i0:i1] *= 1.0 - np.outer(gy, gx)
        return 1.0 - keep


def _au_field(au: ActionUnit, lm: np.ndarray, axes: _FaceAxes, where: _Points, spread: float = 1.0) -> np.ndarray:
    """Forward displacement (*where.shape, 2) of one AU (relative units); ``spread`` widens every falloff."""
    out = np.zeros((*where.shape, 2))
    for group in au.anchors:
        idx = np.asarray(group.points)
        side = np.sign(np.round((lm[idx] - axes.origin) @ axes.x / (0.04 * axes.iod)))
        for s in np.unique(side):
            vec = axes.iod * (s * group.move[0] * axes.x + group.move[1] * axes.y)
            out += where.union(lm[idx[side == s]], spread * group.sigma * axes.iod)[..., None] * vec
    if au.pins:
        out *= (1.0 - where.union(lm[list(au.pins)], spread * au.pin_sigma * axes.iod))[..., None]
    return out


def _expression_points(expr: Expression) -> tuple[np.ndarray, float]:
    idx = sorted({p for n, _ in expr.aus for g in ACTION_UNITS[n].anchors for p in g.points})
    sigma = max(g.sigma for n, _ in expr.aus for g in ACTION_UNITS[n].anchors)
    return np.asarray(idx), sigma


@dataclass
class _Field:
    """A unit expression field on a region of the static frame, and at the landmarks.

    Scaled so the largest landmark displacement is 1 px: ``amplitude * field`` moves
    the moving region's peak landmark by ``amplitude`` px.
    """

    x0: int
    y0: int
    grid: np.ndarray        # (h, w, 2) float32 forward displacement per px of amplitude
    at_landmarks: np.ndarray  # (478, 2)


def _build_field(expr: Expression, lm: np.ndarray, axes: _FaceAxes, width: int, height: int,
                 spread: float = 1.0) -> _Field:
    idx, sigma = _expression_points(expr)
    pad = 4.0 * spread * sigma * axes.iod
    (x0, y0), (x1, y1) = lm[idx].min(0) - pad, lm[idx].max(0) + pad
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(width, int(math.ceil(x1))), min(height, int(math.ceil(y1)))

    def total(where: _Points) -> np.ndarray:
        return sum(w * _au_field(ACTION_UNITS[n], lm, axes, where, spread) for n, w in expr.aus)

    at_lm = total(_Points(lm))
    scale = 1.0 / np.linalg.norm(at_lm, axis=1).max()
    grid = (total(_Grid(x0, y0, x1 - x0, y1 - y0)) * scale).astype(np.float32)
    return _Field(x0, y0, grid, at_lm * scale)


@dataclass
class _Eye:
    """Blink geometry of one eye in eye coordinates (u along the lid, v down)."""

    x0: int
    y0: int
    v_axis: np.ndarray      # unit "down" vector of the eye, frame px
    v: np.ndarray           # (h, w) per-pixel v
    v_upper: np.ndarray     # (h, w) upper lid v at the pixel's u
    opening: np.ndarray     # (h, w) lid gap at the pixel's u (0 outside the corners)
    skin: float             # lid skin above the lashes that stretches over the eye, px
    lid_points: np.ndarray  # upper-lid landmark indices
    lid_opening: np.ndarray  # their lid gap, px
    band_points: np.ndarray  # landmarks in the stretched skin band
    band_depth: np.ndarray   # their height above the lashes, px
    band_opening: np.ndarray  # lid gap at their u, px

    LASH_SQUEEZE = 1.5

    @cached_property
    def max_opening(self) -> float:
        return float(self.opening.max())

    def backward(self, closure: float) -> np.ndarray:
        """(h, w, 2) backward displacement: output px shows source px minus this.

        The lashes come down to ``v_upper + closure * opening``; the skin band above
        them stretches down, the eye below the new lid line is left as it is (covered
        where the lid passed, untouched elsewhere), so a full blink is lid on lid.
        """
        top = self.v_upper - self.skin
        lid = self.v_upper + closure * self.opening
        inside = (self.v >= top) & (self.v < lid) & (self.opening > 0)
        # A power law keeps the lashes a thin line at the lid's edge and stretches the
        # skin above them; it is the identity when the eye is open.
        s = np.clip((self.v - top) / np.maximum(lid - top, 1e-6), 0.0, 1.0)
        src = top + self.skin * s ** self._power(closure, self.opening)
        b = np.where(inside, self.v - src, 0.0).astype(np.float32)
        return b[..., None] * self.v_axis.astype(np.float32)

    def _power(self, closure: float, opening: np.ndarray) -> np.ndarray:
        """Exponent of the skin stretch: 1 (no warp) where the lids meet or the eye is open."""
        return 1.0 + self.LASH_SQUEEZE * closure * opening / self.max_opening

    def forward_landmarks(self, closure: float, n: int) -> np.ndarray:
        """(n, 2) landmark displacements: lashes by closure * gap, the skin band as stretched."""
        d = np.zeros((n, 2))
        d[self.lid_points] = (closure * self.lid_opening)[:, None] * self.v_axis
        gap = self.band_opening
        r = (self.skin - self.band_depth) / self.skin          # source position in the band, 0..1
        moved = r ** (1.0 / self._power(closure, gap)) * (self.skin + closure * gap) - r * self.skin
        d[self.band_points] = moved[:, None] * self.v_axis
        return d


def _build_eye(corners, upper, lower, lm: np.ndarray, width: int, height: int) -> _Eye:
    a, b = lm[corners[0]], lm[corners[1]]
    u_axis = (b - a) / np.linalg.norm(b - a)
    v_axis = np.array([-u_axis[1], u_axis[0]])
    origin, half = (a + b) / 2, np.linalg.norm(b - a) / 2

    def uv(p):
        return (p - origin) @ u_axis, (p - origin) @ v_axis

    def lid_curve(idx):
        u, v = uv(lm[[corners[0], *idx, corners[1]]])
        order = np.argsort(u)
        return u[order], v[order]

    uu, vu = lid_curve(upper)
    ul, vl = lid_curve(lower)

    def gap(u):
        g = np.interp(u, ul, vl) - np.interp(u, uu, vu)
        return np.where(np.abs(u) < half, np.maximum(g, 0.0), 0.0)

    hmax = float(gap(np.linspace(-half, half, 64)).max())
    skin = 1.0 * hmax
    corners_xy = [origin + su * u_axis + sv * v_axis
                  for su in (-half - 2, half + 2) for sv in (vu.min() - skin - 2, vl.max() + 2)]
    (x0, y0), (x1, y1) = np.min(corners_xy, 0), np.max(corners_xy, 0)
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(width, int(math.ceil(x1))), min(height, int(math.ceil(y1)))
    gy, gx = np.mgrid[y0:y1, x0:x1]
    u, v = uv(np.stack([gx, gy], axis=-1).astype(np.float64))
    lid_idx = np.asarray(upper)
    lu, _ = uv(lm[lid_idx])
    # Landmarks in the skin band between the lashes and the crease move with the stretch.
    au, av = uv(lm)
    depth = np.interp(au, uu, vu) - av
    band = np.flatnonzero((np.abs(au) < half) & (depth > 0.5) & (depth < skin))
    return _Eye(x0, y0, v_axis, v, np.interp(u, uu, vu), gap(u), skin, lid_idx, gap(lu),
                band, depth[band], gap(au[band]))


# --------------------------------------------------------------------------- the clip

class SynthClip:
    """A planned clip: ``truth`` holds its events, ``render(i)`` draws frame ``i``."""

    NOISE_SIGMA = 2.0        # grey levels: a webcam in good light
    NOISE_BANK = 4

    def __init__(self, cfg: SynthConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.fps = float(cfg.fps)
        self.n_frames = max(1, int(round(cfg.duration_s * cfg.fps)))
        self.width, self.height = int(cfg.width), int(cfg.height)
        self._setup_face()
        self.events = self._plan()
        self._active = np.full(self.n_frames, -1, dtype=np.int64)
        for k, ev in enumerate(self.events):
            self._active[ev.onset + 1:ev.offset] = k
        self._fields: dict[tuple[int, float], _Field] = {}     # built when first drawn
        self._eyes = [_build_eye(*eye, self.lm, self.width, self.height) for eye in _EYES] \
            if any(e.kind == "blink" for e in self.events) else []
        self._setup_motion()
        self.truth = self._truth()

    # ----- set-up

    def _setup_face(self) -> None:
        """Scale the photo so the face is webcam-sized and centre it; keep a margin for head drift."""
        photo, lm = _face_photo(self.cfg.face)
        axes = _FaceAxes.of(lm)
        face_w = abs(float((lm[454] - lm[234]) @ axes.x))
        target = min(0.36 * self.width, 0.48 * self.height)
        s = target / face_w
        scaled = cv2.resize(photo, None, fx=s, fy=s,
                            interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
        lm_s = (lm + 0.5) * s - 0.5
        centre = (lm_s.min(0) + lm_s.max(0)) / 2
        shift = np.round(np.array([self.width / 2, 0.47 * self.height]) - centre)
        self.margin = m = int(math.ceil(0.06 * max(self.width, self.height))) + 8
        t = shift + m
        mat = np.array([[1, 0, t[0]], [0, 1, t[1]]], dtype=np.float64)
        self.canvas = cv2.warpAffine(scaled, mat, (self.width + 2 * m, self.height + 2 * m),
                                     flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        self.lm = lm_s + shift                      # landmarks in frame px, no head motion
        self.axes = _FaceAxes.of(self.lm)
        self.face_width_px = face_w * s
        self.scale = self.face_width_px / REF_FACE_WIDTH_PX   # amplitudes are given at 640x480

    def _setup_motion(self) -> None:
        """Head drift, flicker and noise parameters, each from its own random stream."""
        m = self.margin
        self._still = np.ascontiguousarray(self.canvas[m:m + self.height, m:m + self.width])
        r = _rng(self.cfg.seed, 3)
        # (amplitude, [(period s, phase)]) for tx px, ty px, rotation deg, log scale
        amps = (3.0 * self.scale, 2.0 * self.scale, 1.5, 0.01)
        self._drift = [(a, [(r.uniform(4, 12), r.uniform(0, 2 * np.pi)) for _ in range(2)]) for a in amps]
        r = _rng(self.cfg.seed, 4)
        self._flicker = (r.uniform(2, 6), r.uniform(0, 2 * np.pi), r.uniform(0, 2 * np.pi))
        self._noise: tuple[np.ndarray, np.ndarray] | None = None   # made when first drawn

    def _field(self, ev: _Event) -> _Field:
        key = (ev.expression, ev.spread)
        if key not in self._fields:
            self._fields[key] = _build_field(EXPRESSIONS[ev.expression], self.lm, self.axes,
                                             self.width, self.height, ev.spread)
        return self._fields[key]

    def _noise_bank(self) -> tuple[np.ndarray, np.ndarray]:
        """A few frames of Gaussian noise as (positive, negative) uint8 parts, for saturating add/subtract."""
        if self._noise is None:
            r = _rng(self.cfg.seed, 5)
            shape = (self.NOISE_BANK, self.height + 32, self.width + 32, 3)
            n = np.round(r.standard_normal(shape, dtype=np.float32) * self.NOISE_SIGMA)
            self._noise = (np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8))
        return self._noise

    # ----- planning

    def _micro_count(self) -> int:
        if self.cfg.distractors_only:
            return 0
        if self.cfg.n_micro is not None:
            return self.cfg.n_micro
        return max(1, int(round(self.cfg.duration_s / 3.0)))

    def _sample_micro_phases(self, r: np.random.Generator) -> tuple[float, float]:
        """Onset->apex and apex->offset (s) from the real MEs' quantiles, total 65-500 ms."""
        while True:
            rise = float(np.interp(r.uniform(), QUANTILE_LEVELS, ONSET_APEX_S))
            fall = float(np.interp(r.uniform(), QUANTILE_LEVELS, APEX_OFFSET_S))
            if MICRO_MIN_S <= rise + fall <= MICRO_MAX_S:
                return rise, fall

    def _plan(self) -> list[_Event]:
        cfg, T = self.cfg, self.cfg.duration_s
        r = _rng(cfg.seed, 0)
        n_micro = self._micro_count()
        emotions = [EMOTIONS[k % len(EMOTIONS)] for k in range(n_micro)]
        r.shuffle(emotions)
        # (kind, expression index, [rise, hold, fall] s, amplitude px)
        items = []
        for emo in emotions:
            choices = [k for k, e in enumerate(EXPRESSIONS) if e.emotion == emo]
            rise, fall = self._sample_micro_phases(r)
            amp = math.exp(r.uniform(*np.log(MICRO_AMPLITUDE_PX)))
            items.append(("micro", int(r.choice(choices)), [rise, 0.0, fall], amp))
        rm = _rng(cfg.seed, 1)
        macro = None
        if cfg.macro:
            total = rm.uniform(*MACRO_DURATION_S)
            rise, hold = rm.uniform(0.25, 0.4), rm.uniform(0.15, 0.35)
            macro = ["macro", int(rm.integers(len(EXPRESSIONS))), [rise, hold, 1 - rise - hold],
                     rm.uniform(*MACRO_AMPLITUDE_PX), total]
        busy = sum(sum(it[2]) for it in items)
        room = T - LEAD_S - TAIL_S
        if cfg.n_micro is not None and n_micro and busy + (n_micro - 1) * GAP_S > room:
            raise UserError(f"{n_micro} micro-expressions need a clip of at least "
                            f"{busy + (n_micro - 1) * GAP_S + LEAD_S + TAIL_S:.1f} s")
        while items and busy + (len(items) - 1) * GAP_S > room:   # default count: drop what does not fit
            busy -= sum(items.pop()[2])
        if macro is not None:
            free = room - busy - len(items) * GAP_S
            total = min(macro.pop(), free)
            if total >= MACRO_DURATION_S[0]:
                macro[2] = [f * total for f in macro[2]]
                items.append(tuple(macro))
        order = r.permutation(len(items))
        items = [items[k] for k in order]
        slack = room - sum(sum(it[2]) for it in items) - max(0, len(items) - 1) * GAP_S
        extra = r.dirichlet(np.ones(len(items) + 1)) * max(0.0, slack)
        events, t = [], LEAD_S + extra[0]
        for k, (kind, expr, phases, amp) in enumerate(items):
            events.append(self._event(kind, expr, t, phases, amp * self.scale))
            t += sum(phases) + GAP_S + extra[k + 1]
        if cfg.blinks:
            events += self._plan_blinks(events)
        return sorted(events, key=lambda e: e.onset)

    def _frame(self, t: float) -> int:
        return int(round(t * self.fps))

    def _event(self, kind: str, expr: int, t0: float, phases, amp: float) -> _Event:
        """Seconds to frames, each phase at least one frame, a micro at most MICRO_MAX_S long."""
        rise, hold, fall = phases
        on = self._frame(t0)
        rise_end = on + max(1, self._frame(t0 + rise) - on)
        fall_start = rise_end + max(0, self._frame(t0 + rise + hold) - self._frame(t0 + rise))
        off = fall_start + max(1, self._frame(t0 + rise + hold + fall) - self._frame(t0 + rise + hold))
        if kind == "micro":   # rounding each boundary to a frame must not leave 65-500 ms
            while (off - on) / self.fps > MICRO_MAX_S and off - fall_start > 1:
                off -= 1
            while (off - on) / self.fps < MICRO_MIN_S:
                off += 1
        e = EXPRESSIONS[expr]
        spread = MACRO_SPREAD if kind == "macro" else 1.0
        return _Event(kind, e.emotion, e.au_numbers, on, rise_end, fall_start, off, amp, expr, spread=spread)

    def _plan_blinks(self, expressions: list[_Event]) -> list[_Event]:
        """Blinks every 2-5 s, kept clear of expressions (moved next to one when they collide)."""
        r = _rng(self.cfg.seed, 2)
        busy = [(e.onset / self.fps - BLINK_MARGIN_S, e.offset / self.fps + BLINK_MARGIN_S) for e in expressions]
        blinks, t = [], r.uniform(0.3, 2.0)
        while t < self.cfg.duration_s:
            dur = r.uniform(*BLINK_DURATION_S)
            close = dur * r.uniform(0.3, 0.45)
            closure = 1.0 if r.uniform() < 0.8 else r.uniform(0.6, 0.95)
            nudge = r.uniform(0.0, 0.25)
            start = t
            for b0, b1 in busy:
                if start < b1 and start + dur > b0:   # collides: go just before or after it
                    start = b0 - nudge - dur if t - b0 < b1 - t else b1 + nudge
                    break
            clash = any(start < b1 and start + dur > b0 for b0, b1 in busy)
            if start >= 0 and start + dur < self.cfg.duration_s - 1 / self.fps and not clash:
                on = self._frame(start)
                apex = on + max(1, self._frame(start + close) - on)
                off = apex + max(1, self._frame(start + dur) - apex)
                if off < self.n_frames:
                    blinks.append(_Event("blink", None, [45], on, apex, apex, off, 0.0, None, closure))
                    busy.append((on / self.fps - 2 * BLINK_MARGIN_S, off / self.fps + 2 * BLINK_MARGIN_S))
            t += r.uniform(2.0, 5.0)
        return blinks

    def _truth(self) -> dict:
        if self._eyes:
            for e in self.events:
                if e.kind == "blink":
                    e.amplitude_px = e.closure * max(eye.lid_opening.max() for eye in self._eyes)
        cfg = self.cfg
        return {
            "generator": "realtime_me.synth",
            "seed": cfg.seed, "fps": self.fps, "n_frames": self.n_frames,
            "width": self.width, "height": self.height,
            "duration_s": round(self.n_frames / self.fps, 4),
            "face": cfg.face or "skimage.data.astronaut",
            "face_width_px": round(self.face_width_px, 1),
            "inter_ocular_px": round(self.axes.iod, 1),
            "distractors": {"macro": cfg.macro, "blinks": cfg.blinks, "head_motion": cfg.head_motion,
                            "flicker": cfg.flicker, "noise": cfg.noise},
            "distractors_only": cfg.distractors_only,
            "events": [e.to_dict(self.fps) for e in self.events],
        }

    # ----- rendering

    def head_transform(self, i: int) -> np.ndarray:
        """2x3 similarity taking still-frame px to frame ``i`` px (identity without head motion)."""
        if not self.cfg.head_motion:
            return np.array([[1.0, 0, 0], [0, 1.0, 0]])
        t = i / self.fps
        tx, ty, rot, logs = (a * (0.6 * math.sin(2 * math.pi * t / p[0][0] + p[0][1])
                                  + 0.4 * math.sin(2 * math.pi * t / p[1][0] + p[1][1]))
                             for a, p in self._drift)
        m = cv2.getRotationMatrix2D(tuple(map(float, self.axes.origin)), rot, math.exp(logs))
        m[:, 2] += (tx, ty)
        return m

    def _patches(self, i: int) -> list[tuple[int, int, np.ndarray]]:
        """Backward displacement patches (x0, y0, field) in still-frame px for frame ``i``."""
        k = self._active[i]
        if k < 0:
            return []
        ev = self.events[k]
        w = ev.weight(i)
        if w <= 0:
            return []
        if ev.kind == "blink":
            return [(eye.x0, eye.y0, eye.backward(w * ev.closure)) for eye in self._eyes]
        f = self._field(ev)
        # the fixed-point inverse converges as (amplitude x field gradient)^n: 2 steps leave
        # < 0.03 px at ME amplitudes, a macro needs more
        steps = 2 if ev.kind == "micro" else 4
        return [(f.x0, f.y0, _invert(f.grid * np.float32(w * ev.amplitude_px), steps))]

    def render(self, i: int) -> np.ndarray:
        """Frame ``i`` as HxWx3 BGR uint8 (any order of ``i``, same pixels every time)."""
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} outside 0..{self.n_frames - 1}")
        # Backward map output px -> canvas px is A(x) - e(H^-1 x): the still face moved by
        # the head similarity H, minus the expression/blink field carried along with it.
        h = self.head_transform(i)
        a = cv2.invertAffineTransform(h)
        a[:, 2] += self.margin
        if self.cfg.head_motion:
            img = cv2.warpAffine(self.canvas, a, (self.width, self.height),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        else:
            img = self._still.copy()
        for x0, y0, e in self._patches(i):   # only the moving region needs a dense remap
            self._warp_patch(img, x0, y0, e, h, a)
        if self.cfg.flicker:
            img = cv2.convertScaleAbs(img, alpha=self._gain(i))
        if self.cfg.noise:
            pos, neg = self._noise_bank()
            r = _rng(self.cfg.seed, 6, i)
            k, ox, oy = int(r.integers(self.NOISE_BANK)), int(r.integers(32)), int(r.integers(32))
            sl = (k, slice(oy, oy + self.height), slice(ox, ox + self.width))
            img = cv2.subtract(cv2.add(img, pos[sl]), neg[sl])
        return img

    def _warp_patch(self, img: np.ndarray, x0: int, y0: int, e: np.ndarray, h: np.ndarray,
                    a: np.ndarray) -> None:
        """Redraw the output box covering the still-frame patch at (x0, y0) with its field."""
        ph, pw = e.shape[:2]
        if self.cfg.head_motion:
            box = np.array([[x0, y0], [x0 + pw, y0], [x0, y0 + ph], [x0 + pw, y0 + ph]], np.float64)
            box = box @ h[:, :2].T + h[:, 2]
            ox0, oy0 = np.maximum(np.floor(box.min(0)).astype(int) - 2, 0)
            ox1, oy1 = np.minimum(np.ceil(box.max(0)).astype(int) + 2, (self.width, self.height))
            if ox1 <= ox0 or oy1 <= oy0:
                return
            m = h.copy()
            m[:, 2] += m[:, :2] @ (x0, y0) - (ox0, oy0)
            e = cv2.warpAffine(e, m, (int(ox1 - ox0), int(oy1 - oy0)), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        else:
            ox0, oy0 = x0, y0
            ox1, oy1 = x0 + pw, y0 + ph
        a_box = a.copy()
        a_box[:, 2] += a[:, :2] @ (ox0, oy0)
        mp = cv2.transform(_pixel_grid(int(oy1 - oy0), int(ox1 - ox0)), a_box) - e
        img[oy0:oy1, ox0:ox1] = cv2.remap(self.canvas, mp, None, cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REPLICATE)

    def _gain(self, i: int) -> float:
        """Exposure drift (+-1.5 %) plus 100 Hz mains flicker (+-0.5 %) sampled at the frame rate."""
        period, ph1, ph2 = self._flicker
        t = i / self.fps
        return 1.0 + 0.015 * math.sin(2 * math.pi * t / period + ph1) + 0.005 * math.sin(2 * math.pi * 100 * t + ph2)

    def frames(self) -> Iterator[np.ndarray]:
        for i in range(self.n_frames):
            yield self.render(i)

    def landmarks(self, i: int) -> np.ndarray:
        """(478, 2) where the photo's landmarks are drawn in frame ``i`` (exact, from the plan)."""
        pts = self.lm.copy()
        k = self._active[i] if 0 <= i < self.n_frames else -1
        if k >= 0:
            ev = self.events[k]
            w = ev.weight(i)
            if ev.kind == "blink":
                for eye in self._eyes:
                    pts += eye.forward_landmarks(w * ev.closure, len(pts))
            else:
                pts += w * ev.amplitude_px * self._field(ev).at_landmarks
        h = self.head_transform(i)
        return pts @ h[:, :2].T + h[:, 2]


def _pixel_grid(h: int, w: int) -> np.ndarray:
    """(h, w, 2) float32 pixel coordinates (x, y), a view of a cached grid."""
    return _grid_at_least(-(-h // 64) * 64, -(-w // 64) * 64)[:h, :w]


@lru_cache(maxsize=4)
def _grid_at_least(h: int, w: int) -> np.ndarray:
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([gx, gy], axis=-1)


def _invert(d: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Backward field e with e(y) = d(y - e(y)): the exact inverse of a small forward warp."""
    grid = _pixel_grid(*d.shape[:2])
    e = d
    for _ in range(iterations):
        e = cv2.remap(d, grid - e, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return e


# --------------------------------------------------------------------------- writers

VIDEO_FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
_FRAME_NAME = re.compile(r"^\d{6}\.png$")


def output_kind(out: str | Path) -> str:
    """"dir" (PNG frames), "y4m" or "video", from how ``out`` is spelled."""
    s = str(out)
    p = Path(s)
    if s.endswith(("/", os.sep)) or p.is_dir() or p.suffix == "":
        return "dir"
    if p.suffix.lower() == ".y4m":
        return "y4m"
    if p.suffix.lower() in VIDEO_FOURCC:
        return "video"
    raise UserError(f"unsupported output {p.name}: use .mp4, .mov, .avi, .mkv, .y4m or a folder (DIR/)")


def truth_path(out: str | Path) -> Path:
    """Where write_clip puts the ground truth for ``out``."""
    return Path(out) / "truth.json" if output_kind(out) == "dir" else Path(out).with_suffix(".json")


def write_clip(cfg: SynthConfig, out: str | Path, progress: bool = True) -> dict:
    """Render ``cfg`` to a video (.mp4/.mov/.avi/.mkv), a .y4m or a PNG folder, plus the JSON truth."""
    kind = output_kind(out)
    out = Path(out)
    if kind != "dir" and (cfg.width % 2 or cfg.height % 2):   # encoders would crop it silently
        raise UserError(f"{out.suffix} is 4:2:0 video and needs an even frame size, got {cfg.width}x{cfg.height}")
    clip = SynthClip(cfg)
    (out if kind == "dir" else out.parent).mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    frames = tqdm(clip.frames(), total=clip.n_frames, desc=f"synth {out.name}", unit="frame",
                  disable=not progress, leave=False)
    if kind == "dir":
        _write_pngs(frames, out)
    elif kind == "y4m":
        _write_y4m(frames, out, clip.width, clip.height, clip.fps)
    else:
        _write_video(frames, out, clip.width, clip.height, clip.fps)
    truth = dict(clip.truth, video=out.name if kind != "dir" else ".")
    truth_path(out).write_text(json.dumps(truth, indent=1))
    return truth


def _write_pngs(frames, out: Path) -> None:
    for old in out.iterdir():   # a shorter re-run must not leave stale frames behind
        if _FRAME_NAME.match(old.name):
            old.unlink()
    for i, img in enumerate(frames):
        if not cv2.imwrite(str(out / f"{i:06d}.png"), img, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise UserError(f"cannot write frames into {out}")


def y4m_header(width: int, height: int, fps: float) -> bytes:
    """YUV4MPEG2 header for 8-bit 4:2:0 (what Chromium's fake camera reads)."""
    rate = Fraction(fps).limit_denominator(1001)
    return f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A1:1 C420jpeg\n".encode()


def _write_y4m(frames, out: Path, width: int, height: int, fps: float) -> None:
    with open(out, "wb") as f:
        f.write(y4m_header(width, height, fps))
        for img in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420).tobytes())   # BT.601 limited range


def _write_video(frames, out: Path, width: int, height: int, fps: float) -> None:
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*VIDEO_FOURCC[out.suffix.lower()]),
                             fps, (width, height))
    if not writer.isOpened():
        raise UserError(f"OpenCV cannot write {out} (no {VIDEO_FOURCC[out.suffix.lower()]} encoder?)")
    try:
        for img in frames:
            writer.write(img)
    finally:
        writer.release()


# --------------------------------------------------------------------------- CLI

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True,
                        help="clip.mp4 / .mov / .avi / .mkv, clip.y4m (Chromium's fake camera) or DIR/ "
                             "(numbered PNGs); the truth goes to clip.json or DIR/truth.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds (default 20)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--face", help="face photo to animate (default: scikit-image's astronaut)")
    parser.add_argument("--n-micro", type=int, help="number of micro-expressions (default: one per 3 s)")
    parser.add_argument("--no-blinks", action="store_true")
    parser.add_argument("--no-head-motion", action="store_true")
    parser.add_argument("--no-flicker", action="store_true")
    parser.add_argument("--no-noise", action="store_true")
    parser.add_argument("--no-macro", action="store_true")
    parser.add_argument("--distractors-only", action="store_true",
                        help="no micro-expression at all, for false-alarm measurements")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    return SynthConfig(
        seed=args.seed, fps=args.fps, duration_s=args.duration, width=args.width, height=args.height,
        face=args.face, n_micro=args.n_micro, macro=not args.no_macro, blinks=not args.no_blinks,
        head_motion=not args.no_head_motion, flicker=not args.no_flicker, noise=not args.no_noise,
        distractors_only=args.distractors_only)


def run(args: argparse.Namespace) -> int:
    truth = write_clip(config_from_args(args), args.out, progress=not args.quiet)
    count = {k: sum(e["kind"] == k for e in truth["events"]) for k in ("micro", "macro", "blink")}
    print(f"wrote {args.out} ({truth['n_frames']} frames, {truth['fps']:g} fps) and {truth_path(args.out)}: "
          f"{count['micro']} micro, {count['macro']} macro, {count['blink']} blinks")
    return 0


__all__ = ["SynthConfig", "SynthClip", "write_clip", "configure", "run", "EXPRESSIONS", "ACTION_UNITS",
           "duration_quantiles", "y4m_header", "truth_path", "output_kind"]


# --------------------------------------------------------------------------- public field API

def apply_expression(image_bgr: np.ndarray, landmarks_xy: np.ndarray, expression: Expression,
                     amplitude_px: float) -> np.ndarray:
    """``image_bgr`` with ``expression`` drawn at its apex: the AU field (built on these
    478x2 landmarks, as in the clips) scaled so the peak landmark moves ``amplitude_px``."""
    h, w = image_bgr.shape[:2]
    lm = np.asarray(landmarks_xy, np.float64)[:, :2]
    f = _build_field(expression, lm, _FaceAxes.of(lm), w, h)
    e = _invert(f.grid * np.float32(amplitude_px), 2)
    ph, pw = e.shape[:2]
    out = image_bgr.copy()
    mp = _pixel_grid(ph, pw) + np.float32([f.x0, f.y0]) - e
    out[f.y0:f.y0 + ph, f.x0:f.x0 + pw] = cv2.remap(image_bgr, mp, None, cv2.INTER_LINEAR,
                                                    borderMode=cv2.BORDER_REPLICATE)
    return out


__all__ += ["apply_expression", "Expression"]
