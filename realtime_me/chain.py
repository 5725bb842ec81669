"""The one stage chain: frame -> face mesh -> alignment -> flow points -> spotter.

Every caller drives these stages through ``FaceChain``: the pipeline (its two halves in
two threads: ``locate`` in the processing thread, ``move`` in the motion thread),
``spot-eval`` and ``recognise`` (``process`` per frame, without the spotter when they
only want the flow points), the tests and the benchmarks. So what they measure is the
product, not a copy of it.

A clip short enough to be a pre-segmented sample (``Spotter.holds``) has its first
frame held still before it and its last after it (``SpotStream``): the chain decides
that once, from ``n_frames``, for every caller alike.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .alignment import Aligner
from .landmarks import FaceTracker
from .types import AlignedFace, CropPoints, FaceLandmarks, Frame, MotionSample, Window

if TYPE_CHECKING:
    from .spotting import Spotter
    from .spotting.flow import FlowConfig
    from .stats import Stats


@dataclass(frozen=True)
class ChainConfig:
    """Settings of every stage; the defaults are the product's."""

    mesh_every_s: float = 0.03        # face mesh at most this often, its points carried between (0: every frame)
    align_size: int = 224
    flow: "FlowConfig | None" = None  # flow-points settings; None: FlowConfig()
    spot: bool = True                 # False: stop at the flow points (tracks spotted later, e.g. cached)
    sensitivity: float | None = None  # the spotter's one knob; None: its default


@dataclass(slots=True)
class Located:
    """The processing half's output for one frame: landmarks in frame pixels and the
    aligned face, both None without a face."""

    frame: Frame
    landmarks: FaceLandmarks | None
    face: AlignedFace | None


@dataclass(slots=True)
class Moved:
    """The motion half's output for one face: its flow points and, with a spotter, the
    centre frame's motion sample and the windows confirmed at this frame."""

    points: CropPoints
    sample: MotionSample | None = None
    windows: list[Window] = field(default_factory=list)


class SpotStream:
    """The spotter over one stream of flow points: a sample's first frame held before it
    and its last after it (when ``holds``), a movement flushed when the face is lost or
    the stream ends. The chain's motion half, and the whole of it for cached tracks."""

    def __init__(self, spotter: "Spotter", holds: bool = False) -> None:
        self.spotter, self.holds = spotter, holds
        self._held: CropPoints | None = None     # a sample's newest flow points, held after its end
        self._started = False

    def update(self, points: CropPoints) -> tuple[MotionSample, list[Window]]:
        if self.holds and not self._started:
            self.spotter.hold_start(points)       # a sample may begin at its ME's onset
        self._started = True
        if self.holds:
            self._held = points
        return self.spotter.update(points)

    def lost(self, index: int, t: float) -> list[Window]:
        """No face from frame ``index`` on: report a movement complete enough to judge."""
        self._held = None
        return self.spotter.face_lost(index, t)

    def finish(self, index: int, t: float) -> list[Window]:
        """The stream ended after frame ``index``: flush a movement still open (a
        sample's last frame held still for the look-ahead)."""
        if self._held is not None:
            return self.spotter.hold_end(self._held)
        return self.spotter.face_lost(index + 1, t)


@dataclass(slots=True)
class Step:
    located: Located
    moved: Moved | None


class FaceChain:
    """tracker -> aligner -> flow points -> spotter.

    The tracker and aligner live as long as the chain; ``start`` begins a stream of
    ``fps`` frames (a fresh flow chain and spotter). ``n_frames``: an offline clip's
    length (None: live or unknown), which decides whether it is held as a pre-segmented
    sample. ``stats``: per-stage times are recorded there.
    """

    def __init__(self, config: ChainConfig | None = None) -> None:
        self.config = config or ChainConfig()
        self.tracker = FaceTracker(mesh_every_s=self.config.mesh_every_s)
        self.aligner = Aligner(self.config.align_size)
        self.fps = 0.0
        self.stats: "Stats | None" = None
        self.flow = None
        self.spotter: "Spotter | None" = None
        self.spotting: SpotStream | None = None

    def start(self, fps: float, n_frames: int | None = None, stats: "Stats | None" = None,
              sensitivity: float | None = None) -> "FaceChain":
        """``sensitivity``: the spotter's knob for this stream (None: the config's)."""
        from .spotting.flow import FlowPoints

        self.fps, self.stats = float(fps), stats
        if self.flow is not None:
            self.flow.close()
        self.flow = FlowPoints(self.fps, self.config.flow)
        self.spotter = self._make_spotter(sensitivity) if self.config.spot else None
        self.spotting = None if self.spotter is None else SpotStream(self.spotter, self.spotter.holds(n_frames))
        return self

    def _make_spotter(self, sensitivity: float | None) -> "Spotter":
        from .spotting import Spotter

        sensitivity = self.config.sensitivity if sensitivity is None else sensitivity
        spotter = Spotter(fps=self.fps, **({} if sensitivity is None else {"sensitivity": sensitivity}))
        spotter.warmup()  # numba compiles now, not on the first live frame
        return spotter

    def _timed(self, stage: str):
        return self.stats.timed(stage) if self.stats is not None else nullcontext()

    # ------------------------------------------------------------- the halves
    def locate(self, frame: Frame) -> Located:
        """Face mesh (or its carried points) and alignment. Times "landmarks" on every
        frame and "mesh" on the frames the face mesh ran on."""
        t0 = time.perf_counter()
        lm = self.tracker.process(frame)
        if self.stats is not None:
            dt = time.perf_counter() - t0
            self.stats.add("landmarks", dt)
            if lm is None or lm.measured:
                self.stats.add("mesh", dt)
                self.stats.mesh_runs += 1
        if lm is None:
            return Located(frame, None, None)
        with self._timed("align"):
            face = self.aligner.process(frame.image, lm)
        face.arrival = frame.arrival
        return Located(frame, lm, face)

    def move(self, face: AlignedFace) -> Moved:
        """Flow points on the aligned crop, then (with a spotter) one spotter step."""
        return self.move_many([face])[0]

    def move_many(self, faces: list[AlignedFace]) -> list[Moved]:
        """``move`` on each face in turn, their flows computed together (on two cores when
        there are several: a motion thread that has fallen behind catches up). "flow" is
        timed per face, as the batch's time over its size."""
        t0 = time.perf_counter()
        points = self.flow.process_many(faces)
        if self.stats is not None:
            dt = (time.perf_counter() - t0) / len(faces)
            for _ in faces:
                self.stats.add("flow", dt)
        if self.spotting is None:
            return [Moved(p) for p in points]
        out = []
        for p in points:
            with self._timed("spot"):
                sample, windows = self.spotting.update(p)
            out.append(Moved(p, sample, windows))
        return out

    def lost(self, index: int, t: float) -> list[Window]:
        """No face from frame ``index`` on: the flow starts a new chain, the spotter
        reports a movement complete enough to judge."""
        self.flow.reset()
        return self.spotting.lost(index, t) if self.spotting is not None else []

    def finish(self, index: int, t: float) -> list[Window]:
        """The stream ended after frame ``index``: flush what is still open."""
        return self.spotting.finish(index, t) if self.spotting is not None else []

    # -------------------------------------------------------------- one thread
    def process(self, frame: Frame) -> Step:
        """Both halves on one frame. A frame without a face only locates: whether that
        ends the flow chain (``lost``) is the caller's choice (a short sample may skip it)."""
        located = self.locate(frame)
        return Step(located, None if located.face is None else self.move(located.face))

    def close(self) -> None:
        self.tracker.close()
        if self.flow is not None:
            self.flow.close()

    def __enter__(self) -> "FaceChain":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
