"""Landmark tracks with known movements, for tests and kernel benchmarks.

These skip rendering and face tracking: a neutral face mesh (the alignment
template), tracker-like jitter, and movements written straight into the points,
so a test knows exactly what moved, when and how much. ``spot_eval`` measures
the spotter on rendered clips through the real tracker instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from realtime_me.alignment import template
from realtime_me.spotting.regions import EYE_CORNERS, LID_PAIRS, REGIONS


@dataclass
class Track:
    """(n, 478, 3) float32 landmarks at ``fps`` plus the movements put into them, and the
    face mesh's eye aperture per frame (``CropPoints.eye_aperture``; None: not given)."""

    fps: float
    points: np.ndarray
    events: list[dict] = field(default_factory=list)
    apertures: np.ndarray | None = None

    def crop_points(self, i: int, index0: int = 0):
        """Frame i as the spotter's input."""
        from realtime_me.types import CropPoints

        ap = float("nan") if self.apertures is None else float(self.apertures[i])
        return CropPoints(index0 + i, (index0 + i) / self.fps, self.points[i], ap)

    @property
    def n(self) -> int:
        return len(self.points)


def neutral_face(iod_px: float = 70.0, center=(320.0, 240.0)) -> np.ndarray:
    """(478, 3) float64 frontal face with the given inter-ocular distance, z = 0."""
    t = template().astype(np.float64)
    eyes_r = (t[33] + t[133]) / 2
    eyes_l = (t[263] + t[362]) / 2
    s = iod_px / np.linalg.norm(eyes_l - eyes_r)
    out = np.zeros((478, 3))
    out[:, :2] = (t - t.mean(axis=0)) * s + np.asarray(center)
    return out


def raised_cosine(n: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """0 outside [onset, offset], 1 at apex, half-cosine ramps either side."""
    p = np.zeros(n)
    f = np.arange(n)
    up = (f >= onset) & (f <= apex)
    dn = (f > apex) & (f <= offset)
    p[up] = 0.5 - 0.5 * np.cos(np.pi * (f[up] - onset) / max(1, apex - onset))
    p[dn] = 0.5 + 0.5 * np.cos(np.pi * (f[dn] - apex) / max(1, offset - apex))
    return p


def plateau(n: int, onset: int, rise: int, hold: int, fall: int) -> np.ndarray:
    """A long movement: rise, hold, fall (macro-expression shape)."""
    p = np.zeros(n)
    f = np.arange(n)
    a, b, c, d = onset, onset + rise, onset + rise + hold, onset + rise + hold + fall
    r = (f >= a) & (f < b)
    p[r] = 0.5 - 0.5 * np.cos(np.pi * (f[r] - a) / rise)
    p[(f >= b) & (f <= c)] = 1.0
    r = (f > c) & (f <= d)
    p[r] = 0.5 + 0.5 * np.cos(np.pi * (f[r] - c) / fall)
    return p


class TrackBuilder:
    """Neutral face + jitter; ``add_*`` put movements in; ``head_motion`` moves the whole
    head by a drifting similarity; ``build`` returns the Track."""

    #: displacement direction (unit, image axes, y down) per named movement
    MOVES = {
        "lip_corner_up": ({"mouth_r": (-0.4, -1.0), "mouth_l": (0.4, -1.0)}),
        "brow_raise": ({"brow_r": (0.0, -1.0), "brow_l": (0.0, -1.0)}),
        "brow_lower": ({"brow_r": (0.3, 1.0), "brow_l": (-0.3, 1.0)}),
        "lip_corner_down": ({"mouth_r": (0.0, 1.0), "mouth_l": (0.0, 1.0)}),
        "chin_raise": ({"chin": (0.0, -1.0), "lip_lower": (0.0, -0.6)}),
    }

    def __init__(self, fps: float, seconds: float, seed: int = 0, jitter_px: float = 0.1, iod_px: float = 70.0):
        # jitter: the flow points the spotter gets (flow.py) jitter about 6x less than raw
        # face-mesh landmarks (0.25-0.5 px); 0.1 px keeps a 2x margin over what they show.
        self.fps = fps
        self.n = int(round(seconds * fps))
        self.rng = np.random.default_rng(seed)
        self.iod = iod_px
        self.face = neutral_face(iod_px)
        self.disp = np.zeros((self.n, 478, 3))
        self.jitter = jitter_px
        self.events: list[dict] = []
        self._head: np.ndarray | None = None
        self._open = np.ones(self.n)       # the face mesh's eye aperture, relative to open

    def _frame(self, s: float) -> int:
        return int(round(s * self.fps))

    def add_movement(self, name: str, apex_s: float, duration_s: float, amplitude_iod: float,
                     kind: str = "micro") -> "TrackBuilder":
        """A raised-cosine movement (onset -> apex in the first 40% of it)."""
        on = self._frame(apex_s - 0.4 * duration_s)
        ap = self._frame(apex_s)
        off = self._frame(apex_s + 0.6 * duration_s)
        prof = raised_cosine(self.n, on, ap, off)
        self._apply(name, prof, amplitude_iod)
        self.events.append({"kind": kind, "name": name, "onset_frame": on, "apex_frame": ap, "offset_frame": off})
        return self

    def add_macro(self, name: str, onset_s: float, rise_s: float, hold_s: float, fall_s: float,
                  amplitude_iod: float) -> "TrackBuilder":
        on = self._frame(onset_s)
        r, h, f = self._frame(rise_s), self._frame(hold_s), self._frame(fall_s)
        self._apply(name, plateau(self.n, on, r, h, f), amplitude_iod)
        self.events.append({"kind": "macro", "name": name, "onset_frame": on, "apex_frame": on + r,
                            "offset_frame": on + r + h + f})
        return self

    def add_residual(self, name: str, apex_s: float, rise_s: float, fall_s: float, residual: float,
                     amplitude_iod: float) -> "TrackBuilder":
        """A movement that does not come all the way back, as real MEs often do: it rises to
        its apex, falls to ``residual`` of it and stays there. Coded offset: where it stopped."""
        ap, on = self._frame(apex_s), self._frame(apex_s - rise_s)
        off = ap + max(1, self._frame(fall_s))
        prof = raised_cosine(self.n, on, ap, off)
        prof[ap:off + 1] = residual + (1.0 - residual) * prof[ap:off + 1]
        prof[off + 1:] = residual
        self._apply(name, prof, amplitude_iod)
        self.events.append({"kind": "micro", "name": name, "onset_frame": on, "apex_frame": ap, "offset_frame": off})
        return self

    def _apply(self, name: str, prof: np.ndarray, amp: float) -> None:
        for region, (dx, dy) in self.MOVES[name].items():
            idx = list(REGIONS[region])
            d = np.array([dx, dy]) / np.hypot(dx, dy) * amp * self.iod
            self.disp[:, idx, :2] += prof[:, None, None] * d

    def add_blink(self, t_s: float, close_s: float = 0.08, open_s: float = 0.14,
                  lids_followed: float = 1.0) -> "TrackBuilder":
        """Both upper lids drop onto the lower lids (lower lids rise a little). The face
        mesh's aperture closes fully; the flow points' lids follow ``lids_followed`` of it
        (flow loses lids that close over the eye: 0.2 is what some faces show)."""
        on = self._frame(t_s)
        ap = on + max(1, self._frame(close_s))
        off = ap + max(1, self._frame(open_s))
        prof = raised_cosine(self.n, on, ap, off)
        self._open *= 1.0 - 0.9 * prof
        prof = lids_followed * prof
        for eye in ("r", "l"):
            gap = np.mean([self.face[lo, :2] - self.face[up, :2] for up, lo in LID_PAIRS[eye]], axis=0)
            mid_y = self.face[list(EYE_CORNERS[eye]), 1].mean()
            for p in REGIONS[f"eye_{eye}"]:
                scale = 0.85 if self.face[p, 1] < mid_y else -0.1   # upper lid closes, lower rises a little
                self.disp[:, p, :2] += prof[:, None] * scale * gap
        self.events.append({"kind": "blink", "onset_frame": on, "apex_frame": ap, "offset_frame": off})
        return self

    def head_motion(self, rot_deg: float = 8.0, scale: float = 0.08, shift_px: float = 40.0,
                    period_s: float = 6.0) -> "TrackBuilder":
        """Slow similarity drift of the whole head (smooth, a few degrees per second)."""
        tt = np.arange(self.n) / self.fps
        ph = self.rng.uniform(0, 2 * np.pi, 4)
        w = 2 * np.pi / period_s
        self._head = np.stack([
            np.deg2rad(rot_deg) * np.sin(w * tt + ph[0]),
            1.0 + scale * np.sin(0.7 * w * tt + ph[1]),
            shift_px * np.sin(0.5 * w * tt + ph[2]),
            shift_px * np.sin(0.9 * w * tt + ph[3]),
        ], axis=1)
        return self

    def build(self) -> Track:
        pts = self.face[None] + self.disp
        pts = pts + self.rng.normal(0.0, self.jitter, pts.shape) * np.array([1.0, 1.0, 0.0])
        if self._head is not None:
            c = self.face[:, :2].mean(axis=0)
            for i, (a, s, tx, ty) in enumerate(self._head):
                rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
                pts[i, :, :2] = (pts[i, :, :2] - c) @ rot.T + c + (tx, ty)
                pts[i, :, 2] *= s
        from realtime_me.spotting.flow import eye_aperture

        apertures = eye_aperture(self.face) * self._open * (1.0 + self.rng.normal(0.0, 0.02, self.n))
        return Track(self.fps, pts.astype(np.float32), list(self.events), apertures.astype(np.float32))
