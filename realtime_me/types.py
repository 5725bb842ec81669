"""Typed, timestamped data that flows between pipeline stages.

Every stage takes and returns one of these, so a stage can be run, tested and
benchmarked on its own (the way MediaPipe packets carry their timestamp).
Times are seconds: capture time from ``time.perf_counter()`` for live sources,
media time (index / fps) for files and image sequences.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

#: Default class set (MEGC2019 composite protocol).
EMOTIONS: tuple[str, ...] = ("negative", "positive", "surprise")


@dataclass(slots=True)
class Frame:
    """One captured image. ``image`` is HxWx3 uint8 BGR (OpenCV order)."""

    index: int
    t: float
    image: np.ndarray
    #: perf_counter() when the frame entered the pipeline (set by the ring): latency
    #: is measured from here, in one clock, whether ``t`` is capture or media time.
    arrival: float = 0.0


@dataclass(slots=True)
class FaceLandmarks:
    """MediaPipe face mesh of the followed face in one frame.

    ``points`` is (478, 3) float32: x, y in pixels of the full frame, z in the
    same pixel scale (MediaPipe's relative depth times the frame width).
    ``n_faces`` is how many faces the tracker saw (it follows the largest).
    ``measured`` is False for points the tracker carried from its last mesh run
    (the mesh need not run on every frame of a fast source).
    """

    index: int
    t: float
    points: np.ndarray
    n_faces: int = 1
    measured: bool = True

    @property
    def box(self) -> tuple[float, float, float, float]:
        """x0, y0, x1, y1 of the landmarks."""
        xy = self.points[:, :2]
        x0, y0 = xy.min(axis=0)
        x1, y1 = xy.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)


@dataclass(slots=True)
class AlignedFace:
    """Face warped by a similarity transform onto the canonical template.

    ``crop`` is SxSx3 uint8 BGR; ``matrix`` the 2x3 frame->crop transform;
    ``points`` the landmarks (478, 2) in crop pixels; ``measured`` as in
    ``FaceLandmarks`` (False: carried, not re-measured on this frame);
    ``arrival`` the frame's (``Frame.arrival``), carried so latency can be timed from it.
    """

    index: int
    t: float
    crop: np.ndarray
    matrix: np.ndarray
    points: np.ndarray
    measured: bool = True
    arrival: float = 0.0


@dataclass(slots=True)
class CropPoints:
    """The 478 landmarks in aligned-crop pixels, carried by optical flow from a reference
    crop (``spotting.flow``): what the spotter reads. ``points`` is (478, 3) float32,
    x, y in crop pixels and z zero (the flow is 2-D). ``eye_aperture``: the face mesh's
    own lid gap over eye width on this frame (NaN: unknown), the spotter's blink cue: flow
    cannot follow lids that close over the eye, the mesh re-measures them."""

    index: int
    t: float
    points: np.ndarray
    eye_aperture: float = float("nan")


@dataclass(slots=True)
class FaceLost:
    """No face in frame ``index`` (the first of a run of such frames)."""

    index: int
    t: float


@dataclass(slots=True)
class MotionSample:
    """Spotter state after one frame: per-region motion and their max, in thresholds
    (1.0 is at threshold in every region)."""

    index: int
    t: float
    regions: np.ndarray
    value: float


@dataclass(slots=True)
class Window:
    """A spotted movement: onset, apex and offset of one candidate.

    ``kind`` is "micro" for movements of ``SpotterConfig.min_micro_s`` to ``max_micro_s``
    (the one place the bounds are stated), "macro" for longer ones.
    ``confirmed_t`` is when the detector committed to it, so
    ``confirmed_t - apex_t`` is the spotting delay.
    """

    onset_index: int
    apex_index: int
    offset_index: int
    onset_t: float
    apex_t: float
    offset_t: float
    kind: Literal["micro", "macro"] = "micro"
    peak: float = 0.0
    confirmed_t: float = 0.0
    #: per facial region (``spotting.regions.REGIONS``), its motion at the apex
    regions: dict[str, float] = field(default_factory=dict)
    #: AU-like landmark cues of the movement, baseline to apex (``spotting.regions.cues``)
    cues: dict[str, float] = field(default_factory=dict)
    #: the candidate touched frames next to a blink
    near_blink: bool = False

    @property
    def duration(self) -> float:
        return self.offset_t - self.onset_t


@dataclass(slots=True)
class Event:
    """What the product reports for one spotted movement.

    ``emotion`` is None ("unclassified") when no classifier ran on it, e.g. for
    macro-expressions or when the pipeline runs without a model.
    """

    window: Window
    emotion: str | None = None
    confidence: float = 0.0
    probs: dict[str, float] = field(default_factory=dict)
    aus: dict[str, float] = field(default_factory=dict)
    #: seconds from the apex frame entering the pipeline to this decision
    #: (spotting look-ahead + classification); filled in by the pipeline
    latency_s: float = 0.0
    source: str = ""


__all__ = ["EMOTIONS", "Frame", "FaceLandmarks", "AlignedFace", "CropPoints", "FaceLost", "MotionSample", "Window", "Event", "asdict"]
