"""Sub-pixel landmark motion: face-mesh points carried by dense optical flow on aligned crops.

Why: a micro-expression moves the skin by 0.5-3 px, about what MediaPipe's landmarks
jitter from frame to frame (their regression is re-run on every frame and never sees the
previous one). Dense optical flow between two aligned crops measures the same skin
displacement from the texture itself, to a fraction of a pixel. On the generated clips
this cut the landmark noise floor about five-fold and lifted spotting F1 at 30 fps from
0.61 to about 0.9 with no false alarms on distractor-only clips (see ``spot_eval.py``).

How: keep a reference crop and its points; each new crop gets OpenCV's DIS flow from the
reference, sampled bilinearly at the reference points. Every ``swap_s`` seconds the
current crop and its flowed points become the reference, so the chain stays continuous
(no jump when the reference changes) while flow never spans large changes. Points come
out in crop pixels: the similarity alignment already removed most head motion, and the
spotter removes the rest on its stable points.

Blinks: flow across closing lids is ill-defined, so a reference taken mid-blink would
bake a few pixels of error into the eye points for good (seen as 4 s false "macro"
movements of the eyes). The swap waits while the face-mesh eye aperture is more than
``blink_drop`` below its recent open value; errors during the blink itself are
transient and the spotter's own blink check discards them.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from ..preprocess import gray as to_gray
from ..types import AlignedFace, CropPoints
from .reference import aperture
from .regions import eye_tables


@dataclass(frozen=True)
class FlowConfig:
    """DIS settings: the MEDIUM preset with fewer variational refinement steps and 12
    gradient-descent steps per patch instead of 25: flow points are the per-frame path's
    costliest stage, and these cost about half of the preset's with the same spotting F1
    (benchmarks/results/pipeline.json and spot_eval.json)."""

    swap_s: float = 1.0                 # reference crop replaced this often
    preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
    refinement_iterations: int = 2
    patch_stride: int | None = None     # None: the preset's
    descent_iterations: int | None = 12  # None: the preset's (25)
    blink_drop: float = 0.15            # no swap while the eyes are this much less open than usual
    open_window_s: float = 2.0          # "usual": the 90th percentile of the aperture over this long
    max_hold: int = 3                   # ... but swap anyway after this many swap intervals


def sample_bilinear(field: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Values of an (H, W, C) field at float (x, y) points, clamped to the image."""
    h, w = field.shape[:2]
    x = np.clip(pts[:, 0], 0, w - 1.001)
    y = np.clip(pts[:, 1], 0, h - 1.001)
    x0, y0 = x.astype(np.intp), y.astype(np.intp)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = field[y0, x0] * (1 - fx) + field[y0, x0 + 1] * fx
    bottom = field[y0 + 1, x0] * (1 - fx) + field[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


_LIDS, _CORNERS = eye_tables()


def eye_aperture(pts: np.ndarray) -> float:
    """Mean lid gap over eye width of both eyes (about 0.3 open, near 0 shut): the
    spotter's own measure, on the face mesh's points."""
    return aperture(pts[:, :2], _LIDS, _CORNERS)


class FlowPoints:
    """Pipeline stage: AlignedFace -> CropPoints, the landmarks refined by flow."""

    def __init__(self, fps: float, config: FlowConfig | None = None) -> None:
        self.config = config or FlowConfig()
        self.swap_every = max(1, int(round(self.config.swap_s * fps)))
        self._apertures: deque[float] = deque(maxlen=max(2, int(round(self.config.open_window_s * fps))))
        self._dis = cv2.DISOpticalFlow_create(self.config.preset)
        self._dis.setVariationalRefinementIterations(self.config.refinement_iterations)
        if self.config.patch_stride is not None:
            self._dis.setPatchStride(self.config.patch_stride)
        if self.config.descent_iterations is not None:
            self._dis.setGradientDescentIterations(self.config.descent_iterations)
        self.reset()

    def reset(self) -> None:
        """Forget the reference (the face was lost): the next crop starts a new chain."""
        self._ref: np.ndarray | None = None
        self._ref_pts: np.ndarray | None = None
        self._since = 0
        self._apertures.clear()

    def _may_swap(self, aperture: float, measured: bool) -> bool:
        if self._since < self.swap_every or not measured:  # carried lids: a blink may have begun unseen
            return False
        if self._since >= self.config.max_hold * self.swap_every:
            return True
        return aperture >= (1 - self.config.blink_drop) * float(np.percentile(self._apertures, 90))

    def process(self, face: AlignedFace) -> CropPoints:
        gray = to_gray(face.crop)
        aperture = eye_aperture(face.points)
        self._apertures.append(aperture)
        if self._ref is None or self._ref.shape != gray.shape:
            self._ref, self._ref_pts, self._since = gray, face.points.astype(np.float32), 0
            pts = self._ref_pts
        else:
            flow = self._dis.calc(self._ref, gray, None)
            pts = (self._ref_pts + sample_bilinear(flow, self._ref_pts)).astype(np.float32)
            self._since += 1
            if self._may_swap(aperture, face.measured):
                self._ref, self._ref_pts, self._since = gray, pts, 0
        out = np.zeros((len(pts), 3), np.float32)
        out[:, :2] = pts
        return CropPoints(face.index, face.t, out, aperture)
