"""Expression displacement fields built on a face's landmarks, and their inverse.

Fields are expressed in face coordinates (inter-ocular distance, face rotation), so
the same action units fit any frontal face photo. The clip renderer and
``apply_expression`` (pretraining's still-image use) share them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .facs import ACTION_UNITS, ActionUnit, Expression


@dataclass(frozen=True)
class FaceAxes:
    """Face coordinates: origin between the irises, x towards image right, y down the face."""

    origin: np.ndarray
    x: np.ndarray
    y: np.ndarray
    iod: float

    @classmethod
    def of(cls, lm: np.ndarray) -> "FaceAxes":
        a, b = lm[468].astype(np.float64), lm[473].astype(np.float64)   # iris centres
        x = (b - a) / np.linalg.norm(b - a)
        return cls((a + b) / 2, x, np.array([-x[1], x[0]]), float(np.linalg.norm(b - a)))


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


def _au_field(au: ActionUnit, lm: np.ndarray, axes: FaceAxes, where: _Points, spread: float = 1.0) -> np.ndarray:
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
class Field:
    """A unit expression field on a region of the static frame, and at the landmarks.

    Scaled so the largest landmark displacement is 1 px: ``amplitude * field`` moves
    the moving region's peak landmark by ``amplitude`` px.
    """

    x0: int
    y0: int
    grid: np.ndarray        # (h, w, 2) float32 forward displacement per px of amplitude
    at_landmarks: np.ndarray  # (478, 2)


def build_field(expr: Expression, lm: np.ndarray, axes: FaceAxes, width: int, height: int,
                spread: float = 1.0) -> Field:
    """``expr``'s unit field on the box its anchors reach (4 falloffs around them), inside the frame."""
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
    return Field(x0, y0, grid, at_lm * scale)


def pixel_grid(h: int, w: int) -> np.ndarray:
    """(h, w, 2) float32 pixel coordinates (x, y), a view of a cached grid."""
    return _grid_at_least(-(-h // 64) * 64, -(-w // 64) * 64)[:h, :w]


@lru_cache(maxsize=4)
def _grid_at_least(h: int, w: int) -> np.ndarray:
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([gx, gy], axis=-1)


def invert(d: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Backward field e with e(y) = d(y - e(y)): the exact inverse of a small forward warp."""
    grid = pixel_grid(*d.shape[:2])
    e = d
    for _ in range(iterations):
        e = cv2.remap(d, grid - e, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return e


def apply_expression(image_bgr: np.ndarray, landmarks_xy: np.ndarray, expression: Expression,
                     amplitude_px: float) -> np.ndarray:
    """``image_bgr`` with ``expression`` drawn at its apex: the AU field (built on these
    478x2 landmarks, as in the clips) scaled so the peak landmark moves ``amplitude_px``."""
    h, w = image_bgr.shape[:2]
    lm = np.asarray(landmarks_xy, np.float64)[:, :2]
    f = build_field(expression, lm, FaceAxes.of(lm), w, h)
    e = invert(f.grid * np.float32(amplitude_px), 2)
    ph, pw = e.shape[:2]
    out = image_bgr.copy()
    mp = pixel_grid(ph, pw) + np.float32([f.x0, f.y0]) - e
    out[f.y0:f.y0 + ph, f.x0:f.x0 + pw] = cv2.remap(image_bgr, mp, None, cv2.INTER_LINEAR,
                                                    borderMode=cv2.BORDER_REPLICATE)
    return out
