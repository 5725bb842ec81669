"""Blink (AU45) geometry: the upper lid comes down over the eye, lid on lid.

A blink is not a smooth pull like the other action units: the lashes sweep over the
eye and the skin above them stretches, so it gets its own per-eye backward field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .facs import BLINK_EYES


@dataclass
class Eye:
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


def build_eyes(lm: np.ndarray, width: int, height: int) -> list[Eye]:
    """Both eyes of the face whose landmarks (frame px) are ``lm``."""
    return [_build_eye(*eye, lm, width, height) for eye in BLINK_EYES]


def _build_eye(corners, upper, lower, lm: np.ndarray, width: int, height: int) -> Eye:
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
    return Eye(x0, y0, v_axis, v, np.interp(u, uu, vu), gap(u), skin, lid_idx, gap(lu),
               band, depth[band], gap(au[band]))
