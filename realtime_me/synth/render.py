"""The clip renderer: one still face, moved per frame by the planned events.

Rendering is random-access and deterministic for a seed. Per frame: one affine warp
of the still face for the head drift, and only while an event is drawn, a scaled copy
of its precomputed field, a fixed-point inverse and a ``cv2.remap`` of that region;
then flicker and noise.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..errors import UserError
from .eyes import build_eyes
from .facs import EXPRESSIONS
from .fields import FaceAxes, Field, build_field, invert, pixel_grid
from .plan import REF_FACE_WIDTH_PX, Event, SynthConfig, plan_events, rng


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
    from ..landmarks import landmarks_of_image

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
        self.events = plan_events(cfg, self.n_frames, self.scale)
        self._active = np.full(self.n_frames, -1, dtype=np.int64)
        for k, ev in enumerate(self.events):
            self._active[ev.onset + 1:ev.offset] = k
        self._fields: dict[tuple[int, float], Field] = {}     # built when first drawn
        self._eyes = build_eyes(self.lm, self.width, self.height) \
            if any(e.kind == "blink" for e in self.events) else []
        self._setup_motion()
        self.truth = self._truth()

    # ----- set-up

    def _setup_face(self) -> None:
        """Scale the photo so the face is webcam-sized and centre it; keep a margin for head drift."""
        photo, lm = _face_photo(self.cfg.face)
        axes = FaceAxes.of(lm)
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
        self.axes = FaceAxes.of(self.lm)
        self.face_width_px = face_w * s
        self.scale = self.face_width_px / REF_FACE_WIDTH_PX   # amplitudes are given at 640x480

    def _setup_motion(self) -> None:
        """Head drift, flicker and noise parameters, each from its own random stream."""
        m = self.margin
        self._still = np.ascontiguousarray(self.canvas[m:m + self.height, m:m + self.width])
        r = rng(self.cfg.seed, 3)
        # (amplitude, [(period s, phase)]) for tx px, ty px, rotation deg, log scale
        amps = (3.0 * self.scale, 2.0 * self.scale, 1.5, 0.01)
        self._drift = [(a, [(r.uniform(4, 12), r.uniform(0, 2 * np.pi)) for _ in range(2)]) for a in amps]
        r = rng(self.cfg.seed, 4)
        self._flicker = (r.uniform(2, 6), r.uniform(0, 2 * np.pi), r.uniform(0, 2 * np.pi))
        self._noise: tuple[np.ndarray, np.ndarray] | None = None   # made when first drawn

    def _field(self, ev: Event) -> Field:
        key = (ev.expression, ev.spread)
        if key not in self._fields:
            self._fields[key] = build_field(EXPRESSIONS[ev.expression], self.lm, self.axes,
                                            self.width, self.height, ev.spread)
        return self._fields[key]

    def _noise_bank(self) -> tuple[np.ndarray, np.ndarray]:
        """A few frames of Gaussian noise as (positive, negative) uint8 parts, for saturating add/subtract."""
        if self._noise is None:
            r = rng(self.cfg.seed, 5)
            shape = (self.NOISE_BANK, self.height + 32, self.width + 32, 3)
            n = np.round(r.standard_normal(shape, dtype=np.float32) * self.NOISE_SIGMA)
            self._noise = (np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8))
        return self._noise

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
        return [(f.x0, f.y0, invert(f.grid * np.float32(w * ev.amplitude_px), steps))]

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
            r = rng(self.cfg.seed, 6, i)
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
        mp = cv2.transform(pixel_grid(int(oy1 - oy0), int(ox1 - ox0)), a_box) - e
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
