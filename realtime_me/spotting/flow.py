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

Several crops at once (``process_many``, when the motion thread has fallen behind): each
crop's flow is from the reference, never from the crop before it, and which crop is the
reference is decided by the crops' eye apertures before any flow is computed. So the flows
are independent and two DIS instances compute them on two cores (OpenCV releases the GIL);
the points are then chained in order, the same as one crop at a time, to the bit.

Blinks: flow across closing lids is ill-defined, so a reference taken mid-blink would
bake a few pixels of error into the eye points for good (seen as 4 s false "macro"
movements of the eyes). The swap waits while the face-mesh eye aperture is more than
``blink_drop`` below its recent open value; errors during the blink itself are
transient and the spotter's own blink check discards them.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
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


@dataclass(slots=True)
class _Planned:
    """One crop of a batch before its flow."""

    face: AlignedFace
    gray: np.ndarray
    ref: np.ndarray | None   # the reference its flow is from; None: it starts a chain
    swap: bool               # it becomes the reference for the crops after it
    aperture: float


class FlowPoints:
    """Pipeline stage: AlignedFace -> CropPoints, the landmarks refined by flow."""

    def __init__(self, fps: float, config: FlowConfig | None = None) -> None:
        self.config = config or FlowConfig()
        self.swap_every = max(1, int(round(self.config.swap_s * fps)))
        self._apertures: deque[float] = deque(maxlen=max(2, int(round(self.config.open_window_s * fps))))
        self._dis = self._new_dis()
        self._dis2 = None                  # the helper's own DIS (an instance is not thread-safe)
        self._helper: ThreadPoolExecutor | None = None
        self.reset()

    def _new_dis(self):
        dis = cv2.DISOpticalFlow_create(self.config.preset)
        dis.setVariationalRefinementIterations(self.config.refinement_iterations)
        if self.config.patch_stride is not None:
            dis.setPatchStride(self.config.patch_stride)
        if self.config.descent_iterations is not None:
            dis.setGradientDescentIterations(self.config.descent_iterations)
        return dis

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
        return self.process_many([face])[0]

    def process_many(self, faces: list[AlignedFace]) -> list[CropPoints]:
        """Crops in frame order -> their points, as ``process`` on each in turn would give;
        with two or more to flow, on two cores."""
        plan = [self._plan(face) for face in faces]
        flows = self._flows([(p.ref, p.gray) for p in plan if p.ref is not None])
        out = []
        for p in plan:
            if p.ref is None:                     # a new chain starts at this crop
                self._ref_pts = p.face.points.astype(np.float32)
                pts = self._ref_pts
            else:
                pts = (self._ref_pts + sample_bilinear(next(flows), self._ref_pts)).astype(np.float32)
                if p.swap:
                    self._ref_pts = pts
            chans = np.zeros((len(pts), 3), np.float32)
            chans[:, :2] = pts
            out.append(CropPoints(p.face.index, p.face.t, chans, p.aperture))
        return out

    def _plan(self, face: AlignedFace) -> "_Planned":
        """A crop's part that needs no flow: which reference, and whether it becomes one."""
        gray = to_gray(face.crop)
        aperture = eye_aperture(face.points)
        self._apertures.append(aperture)
        if self._ref is None or self._ref.shape != gray.shape:
            self._ref, self._since = gray, 0
            return _Planned(face, gray, None, True, aperture)
        ref = self._ref
        self._since += 1
        swap = self._may_swap(aperture, face.measured)
        if swap:
            self._ref, self._since = gray, 0
        return _Planned(face, gray, ref, swap, aperture)

    def _flows(self, pairs: list[tuple[np.ndarray, np.ndarray]]):
        """DIS flow of each (reference, crop) pair, in order; every other one on the helper."""
        if len(pairs) < 2:
            return iter([self._dis.calc(ref, gray, None) for ref, gray in pairs])
        if self._helper is None:
            self._helper = ThreadPoolExecutor(1, thread_name_prefix="rtme-flow")
            self._dis2 = self._new_dis()
        second = self._helper.submit(lambda: [self._dis2.calc(r, g, None) for r, g in pairs[1::2]])
        first = [self._dis.calc(r, g, None) for r, g in pairs[::2]]
        flows = [None] * len(pairs)
        flows[::2], flows[1::2] = first, second.result()
        return iter(flows)

    def close(self) -> None:
        """Stop the helper thread (it is also stopped with the interpreter)."""
        if self._helper is not None:
            self._helper.shutdown()
            self._helper = None
