"""The one pipeline object behind the CLI, the browser demo and the benchmarks: the stage
chain (``chain.FaceChain``) split over threads.

    capture thread --> FrameRing --> processing thread --> motion thread ----------> classifier thread --> sinks
    (source.frames()   (fixed size,   chain.locate:          chain.move:             (engine on onset/apex
     or push())         drops oldest   landmarks -> align     flow points -> spot      aligned crops)
                        when live)     Frame -> AlignedFace   -> Window  |
                                                                         +-- macro / unclassified events --> sinks

Face mesh and flow each take about 5 ms a frame; in two threads they overlap on two cores
(OpenCV and MediaPipe release the GIL), so throughput is set by the slower one, not the sum.
On a fast source the mesh runs only every ``ChainConfig.mesh_every_s`` (its points carried
in between), so the flow points set the pace. A frame's pixels are never copied between
threads: a source's fresh image is handed to the ring, and the motion thread gets the
aligned crop, not the frame.

The pipeline's threads are its parallelism, so OpenCV's own thread pool is set to one
thread (``PipelineConfig.opencv_threads``, process-wide): on top of them its workers mostly
wait busily (a few ms of CPU a frame at 30 fps live), for no throughput. When the motion
thread falls behind, it takes the faces queued for it together and their flows run on two
cores (``FlowPoints.process_many``). Flat out, that leaves no idle core, so a classification
then shares them and takes longer (benchmarks/README.md). A source that keeps up leaves idle
time, but at 200 fps on two cores the per-frame path still takes most of it; so its threads,
and MediaPipe's, run a little nicer than the classifier's (``PipelineConfig.frame_nice``): a
classification is not starved, and the per-frame path, which has slack, catches up after it.

Every queue is bounded: a live source that outruns processing loses its oldest
frames (counted), a slow classifier loses classifications (counted, the event is
still reported as unclassified), and memory never grows. File sources are read
with back-pressure instead and lose nothing (``Pipeline._hand_over``, the one rule).
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from .chain import ChainConfig, FaceChain
from .engines import DEFAULT_WEIGHTS
from .ringbuffer import FrameRing
from .sources import Source, SourceInfo
from .stats import Stats
from .types import AlignedFace, Event, FaceLandmarks, FaceLost, Frame, MotionSample, Window

if TYPE_CHECKING:
    from .spotting.flow import FlowConfig

log = logging.getLogger(__name__)

EventSink = Callable[[Event], None]


@dataclass(slots=True)
class ClassifyJob:
    """A micro window for the classifier thread, with the faces it needs (the window's
    faces onset..offset only for the sequence models)."""

    window: Window
    onset: AlignedFace
    apex: AlignedFace
    faces: list[AlignedFace] | None = None


@dataclass
class PipelineConfig:
    buffer_seconds: float = 2.0      # frame ring capacity
    buffer_max_mb: int = 256         # ... capped in memory, so a 1000 fps source cannot take gigabytes
    history_seconds: float = 2.0     # aligned faces kept for classifying a window after its offset
    motion_seconds: float = 10.0     # motion samples kept for live plots
    align_size: int = 224
    classify: bool = True            # False: every event is reported "unclassified"
    weights: str | None = None       # None: the shipped models/medn
    backend: str = "auto"
    cache_dir: str | None = None     # engine cache (ONNX, TensorRT plans); None: engines.default_cache_dir()
    sensitivity: float | None = None  # the spotter's one knob; None: its default
    classify_queue: int = 16
    motion_queue: int = 8            # aligned faces waiting for the motion thread
    motion_batch: int = 4            # ... of which it takes up to this many at once when behind (flows on two cores)
    opencv_threads: int | None = 1   # cv2.setNumThreads at start (process-wide); None: leave OpenCV's setting
    frame_nice: int = 5              # the per-frame threads (and MediaPipe's) this much nicer than the classifier's (Linux)
    mesh_every_s: float = 0.03       # face mesh at most this often, its points carried between (0: every frame)
    flow: "FlowConfig | None" = None  # flow-points settings; None: FlowConfig()


@dataclass
class Snapshot:
    """What a UI shows at one moment: the newest frame and its landmarks (None without a
    face), the motion history (per-region motion and its max, in thresholds: 1.0 is at
    threshold), recent windows and events, and stats (None when not asked for)."""

    frame: Frame | None
    landmarks: FaceLandmarks | None
    t: np.ndarray                   # (n,) seconds
    value: np.ndarray               # (n,) max over regions
    regions: np.ndarray             # (n, R)
    region_names: tuple[str, ...]
    windows: list[Window]
    events: list[Event]
    stats: dict | None = None


@dataclass
class RunResult:
    events: list[Event]
    stats: Stats
    source: SourceInfo | None
    end_reason: str


class Pipeline:
    """Frames in, micro-expression events out. ``start`` + ``push`` for frames that
    arrive from elsewhere (the browser), ``run(source)`` for a source of our own."""

    def __init__(self, config: PipelineConfig | None = None, sinks: list[EventSink] | tuple = ()) -> None:
        self.config = config or PipelineConfig()
        self.sinks: list[EventSink] = list(sinks)
        c = self.config
        self.chain = _made_nicer(c.frame_nice, lambda: FaceChain(ChainConfig(
            mesh_every_s=c.mesh_every_s, align_size=c.align_size, flow=c.flow, sensitivity=c.sensitivity)))
        self.classifier = self._load_classifier() if self.config.classify else None
        self.events: list[Event] = []
        self.stats = Stats()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._ring: FrameRing | None = None
        self._classify_q: queue.Queue | None = None
        self._motion_q: queue.Queue | None = None
        self._live = True
        self._fps = 30.0
        self._history: deque[AlignedFace] = deque()
        self._motion: deque[MotionSample] = deque()
        self._windows: deque[Window] = deque(maxlen=200)
        self._last: tuple[Frame, FaceLandmarks | None] | None = None
        self._lost_since: tuple[int, float] | None = None
        self._next_index = 0
        self._stop = threading.Event()
        self._failed_sinks: set[int] = set()
        self.error: BaseException | None = None

    # ----------------------------------------------------------------- set-up
    def _load_classifier(self):
        from .classify import make_classifier
        from .engines import load_engine

        weights = Path(self.config.weights) if self.config.weights else DEFAULT_WEIGHTS
        engine = load_engine(weights, backend=self.config.backend, cache_dir=self.config.cache_dir)
        return make_classifier(engine)

    @property
    def spotter(self):
        """The running stream's spotter (None before ``start``)."""
        return self.chain.spotter

    def close(self) -> None:
        """Release the face tracker (MediaPipe graphs) once the pipeline is no longer needed."""
        self.chain.close()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self, fps: float, live: bool = True, n_frames: int | None = None,
              sensitivity: float | None = None) -> None:
        """Start the processing and classifier threads for frames of about ``fps`` (an
        offline clip of ``n_frames`` may be a pre-segmented sample: ``Spotter.holds``).
        ``sensitivity``: the spotter's knob for this run (None: the config's), so a UI
        changes it between runs without rebuilding the pipeline or touching a running one."""
        if self.running:
            raise RuntimeError("pipeline already running")
        self._fps, self._live = float(fps), live
        if self.config.opencv_threads is not None:
            import cv2

            cv2.setNumThreads(self.config.opencv_threads)
        self.stats = Stats()
        self.chain.start(self._fps, None if live else n_frames, self.stats, sensitivity)
        if self.classifier is not None:
            from .tvl1 import warmup

            warmup()  # numba compiles (or loads its cache) now, not on the first spotted ME
        self.events = []
        self._stop.clear()
        self._ring = FrameRing.for_seconds(self.config.buffer_seconds, self._fps, self.config.buffer_max_mb << 20)
        self._classify_q = queue.Queue(maxsize=self.config.classify_queue)
        self._motion_q = queue.Queue(maxsize=self.config.motion_queue)
        self._history = deque(maxlen=max(2, int(self.config.history_seconds * self._fps)))
        self._motion = deque(maxlen=max(2, int(self.config.motion_seconds * self._fps)))
        self._windows.clear()
        self._lost_since, self._last, self._next_index = None, None, 0
        nice = self.config.frame_nice
        self._threads = [threading.Thread(target=self._guard, args=(self._process_loop, nice), name="rtme-process", daemon=True),
                         threading.Thread(target=self._guard, args=(self._motion_loop, nice), name="rtme-motion", daemon=True)]
        if self.classifier is not None:
            self._threads.append(threading.Thread(target=self._guard, args=(self._classify_loop,), name="rtme-classify", daemon=True))
        for t in self._threads:
            t.start()

    def _guard(self, loop, nice: int = 0) -> None:
        """A crash in a worker stops the run cleanly and is re-raised by ``wait``."""
        _nicer(nice)
        try:
            loop()
            self.stats.thread_cpu_s[threading.current_thread().name] = time.thread_time()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            log.exception("pipeline thread failed")
            self.error = e
            self._stop.set()
            if self._ring is not None:
                self._ring.close()
            for q in (self._motion_q, self._classify_q):
                if q is not None:
                    _put_sentinel(q, patience_s=1.0)

    # ------------------------------------------------------------------ input
    def push(self, image: np.ndarray, t: float | None = None, index: int | None = None, copy: bool = True) -> bool:
        """Feed one BGR frame. Live: never blocks, the ring drops its oldest frame when full.
        ``copy=False`` hands ``image`` over (the caller must not write to it afterwards)."""
        if self._ring is None:
            raise RuntimeError("call start() before push()")
        if index is None:
            index = self._next_index
        self._next_index = index + 1
        frame = Frame(index, time.perf_counter() if t is None else t, image, time.perf_counter())
        ok = self._ring.put(frame, block=not self._live, copy=copy)
        if ok:
            self.stats.frames_in += 1
        self.stats.frames_dropped = self._ring.dropped
        return ok

    def close_input(self) -> None:
        """No more frames: processing drains the ring, flushes the spotter, then stops."""
        if self._ring is not None:
            self._ring.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the threads to finish; True when they have. Re-raises a worker's crash."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.perf_counter()))
        done = not self.running
        if done:
            self.stats.finished = self.stats.finished or time.perf_counter()
            if self.error is not None:
                err, self.error = self.error, None
                raise err
        return done

    def stop(self, timeout: float = 10.0) -> Stats:
        """Stop soon: frames already queued are still processed and events flushed."""
        self.close_input()
        self.wait(timeout)
        return self.stats

    def run(self, source: Source, progress: Callable[[int], None] | None = None,
            tick: Callable[[], bool] | None = None, tick_every: float = 0.1,
            sensitivity: float | None = None) -> RunResult:
        """Run ``source`` to its end (or until ``stop``/Ctrl-C) and return the events.

        The caller's thread only waits (calling ``tick`` every ``tick_every`` s, e.g. to
        draw a window; ``tick`` returning False stops the run), so Ctrl-C lands here
        and shuts down cleanly."""
        self.start(source.info.fps, live=source.info.live, n_frames=source.info.n_frames, sensitivity=sensitivity)
        feeder = threading.Thread(target=self._feed, args=(source, progress), name="rtme-capture", daemon=True)
        feeder.start()
        try:
            while feeder.is_alive() or self.running:
                feeder.join(tick_every)
                if not feeder.is_alive():
                    self.wait(tick_every)
                if tick is not None and not tick():
                    self._stop.set()
                    source.end_reason = "stopped by the user"
        except KeyboardInterrupt:
            self._stop.set()
            source.end_reason = "interrupted"
            feeder.join(5.0)
            self.stop()
            raise
        finally:
            self.close_input()
        self.wait()
        return RunResult(list(self.events), self.stats, source.info, source.end_reason)

    def _feed(self, source: Source, progress) -> None:
        _nicer(self.config.frame_nice)
        frames = source.frames()
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    break
                if not source.info.live:  # a live source's wait for the next frame is not decode time
                    self.stats.add("decode", time.perf_counter() - t0)
                if not self.push(frame.image, frame.t, frame.index, copy=False):  # sources yield new arrays
                    break
                if progress is not None:
                    progress(frame.index + 1)
        except Exception as e:  # noqa: BLE001 - a failing source ends the run, it doesn't crash it
            log.error("source failed: %s", e)
            source.end_reason = f"source failed: {e}"
        finally:
            self.stats.thread_cpu_s[threading.current_thread().name] = time.thread_time()
            self.close_input()

    # ------------------------------------------------------------- processing
    def _process_loop(self) -> None:
        ring = self._ring
        while True:
            frame = ring.get(timeout=0.1)
            if frame is None:
                if ring.closed and len(ring) == 0:
                    break
                continue
            self._process(frame)
        if self._lost_since is not None:
            self._close_lost_span(self._last[0].t if self._last else 0.0)
        self._to_motion(None)

    def _hand_over(self, q: queue.Queue, item, may_drop: bool = False) -> bool:
        """The one back-pressure rule between threads: wait while the next stage is busy
        (so a file loses nothing and a live source's ring drops its oldest frames instead),
        unless ``may_drop`` (a live classifier that falls behind); never wait on a crashed
        worker. False: not handed over."""
        if may_drop:
            try:
                q.put_nowait(item)
                return True
            except queue.Full:
                return False
        while True:
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                if self._stop.is_set() and self.error is not None:
                    return False

    def _to_motion(self, item: AlignedFace | FaceLost | None) -> None:
        self._hand_over(self._motion_q, item)

    def _process(self, frame: Frame) -> None:
        st = self.stats
        located = self.chain.locate(frame)
        lm, face = located.landmarks, located.face
        st.frames_processed += 1
        if face is None:
            if self._lost_since is None:
                self._lost_since = (frame.index, frame.t)
                self._to_motion(FaceLost(frame.index, frame.t))
            with self._lock:
                self._last = (frame, None)
            return
        st.frames_with_face += 1
        st.max_faces_seen = max(st.max_faces_seen, lm.n_faces)
        if self._lost_since is not None:
            self._close_lost_span(frame.t)
        with self._lock:
            self._last = (frame, lm)
        self._to_motion(face)

    def _close_lost_span(self, t_end: float) -> None:
        index, t0 = self._lost_since
        self.stats.face_lost_spans.append({"start_frame": index, "start_s": round(t0, 3), "end_s": round(t_end, 3)})
        self._lost_since = None

    # ----------------------------------------------------------------- motion
    def _motion_loop(self) -> None:
        last = (0, 0.0)   # index and time of the newest frame seen
        item: AlignedFace | FaceLost | None = self._motion_q.get()
        while item is not None:
            taken = _NOT_TAKEN
            if isinstance(item, FaceLost):
                last = (item.index, item.t)
                windows = self.chain.lost(item.index, item.t)
            else:
                faces, taken = self._waiting_faces(item)
                last = (faces[-1].index, faces[-1].t)
                windows = self._spot(faces)
            for w in windows:
                self._dispatch(w)
            item = self._motion_q.get() if taken is _NOT_TAKEN else taken
        for w in self.chain.finish(*last):
            self._dispatch(w)
        if self._classify_q is not None:
            _put_sentinel(self._classify_q)

    def _waiting_faces(self, first: AlignedFace) -> tuple[list[AlignedFace], object]:
        """``first`` and the faces queued behind it (up to ``motion_batch``), so a motion
        thread that fell behind flows them together; and the item after them if it was
        taken off the queue (a FaceLost or the end), else ``_NOT_TAKEN``."""
        faces = [first]
        while len(faces) < self.config.motion_batch:
            try:
                item = self._motion_q.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, AlignedFace):
                return faces, item
            faces.append(item)
        return faces, _NOT_TAKEN

    def _spot(self, faces: list[AlignedFace]) -> list[Window]:
        self._history.extend(faces)
        moved = self.chain.move_many(faces)
        with self._lock:
            self._motion.extend(m.sample for m in moved)
        return [w for m in moved for w in m.windows]

    def _dispatch(self, w: Window) -> None:
        with self._lock:
            self._windows.append(w)
        faces = {f.index: f for f in self._history}
        onset, apex = faces.get(w.onset_index), faces.get(w.apex_index)
        apex_arrival = apex.arrival if apex else time.perf_counter()
        if self.classifier is None or w.kind != "micro" or onset is None or apex is None:
            # Only windows the spotter accepted as micro-expressions reach the classifier:
            # per-image flow scaling would turn the noise of anything else into confident nonsense.
            self._emit(Event(window=w), apex_arrival)
            return
        # sequence models (FDP, point cloud) also get the window's faces onset..offset from the history
        seq = [faces[i] for i in range(w.onset_index, w.offset_index + 1) if i in faces] \
            if getattr(self.classifier, "needs_window", False) else None
        if not self._hand_over(self._classify_q, ClassifyJob(w, onset, apex, seq), may_drop=self._live):
            self.stats.classifications_dropped += 1
            self._emit(Event(window=w), apex_arrival)

    def _classify_loop(self) -> None:
        while True:
            job: ClassifyJob | None = self._classify_q.get()
            if job is None:
                break
            with self.stats.timed("classify"):
                event = self.classifier.classify(job.window, job.onset, job.apex,
                                                 **({"faces": job.faces} if job.faces else {}))
            self._emit(event, job.apex.arrival)

    def _emit(self, event: Event, apex_arrival: float) -> None:
        event.latency_s = time.perf_counter() - apex_arrival
        with self._lock:
            self.events.append(event)
        for sink in self.sinks:
            try:
                sink(event)
            except Exception as e:  # noqa: BLE001 - a broken sink must not stop the pipeline
                self._sink_failed(sink, e)

    def _sink_failed(self, sink: EventSink, e: Exception) -> None:
        """Said once per sink, in one line: a full disk must not print a traceback per event."""
        if id(sink) not in self._failed_sinks:
            self._failed_sinks.add(id(sink))
            log.error("event sink %r failed (reported once; the run goes on): %s", sink, e)

    # --------------------------------------------------------------- for UIs
    def snapshot(self, stats: bool = True) -> "Snapshot":
        """A consistent copy of what a UI shows (``stats=False``: latency percentiles cost
        milliseconds, too much for a per-frame overlay)."""
        with self._lock:
            last = self._last
            motion = list(self._motion)
            windows = list(self._windows)
            events = list(self.events[-50:])
        spotter = self.spotter
        return Snapshot(
            frame=None if last is None else last[0],
            landmarks=None if last is None else last[1],
            t=np.array([m.t for m in motion]),
            value=np.array([m.value for m in motion]),
            regions=np.stack([m.regions for m in motion]) if motion else np.zeros((0, 0)),
            region_names=tuple(spotter.region_names) if spotter is not None else (),
            windows=windows, events=events, stats=self.stats.to_dict() if stats else None)


_NOT_TAKEN = object()   # ``_waiting_faces``: it took nothing beyond the faces


def _put_sentinel(q: queue.Queue, patience_s: float = 30.0) -> None:
    """Tell the classifier thread to finish after what is queued; gives up (rather than
    hang) if nobody drains the queue for ``patience_s``."""
    try:
        q.put(None, timeout=patience_s)
    except queue.Full:
        log.error("classifier did not drain its queue; dropping %d pending classifications", q.qsize())


def _nicer(by: int) -> None:
    """Make the calling thread ``by`` nicer. Linux keeps nice per thread and a new thread
    inherits its maker's; elsewhere nice is the whole process's, so nothing is done."""
    if by <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + by)


def _made_nicer(by: int, make: Callable):
    """``make()`` in a short-lived thread ``by`` nicer, so the threads it starts (MediaPipe's
    graphs start theirs when made) run that nice too; the caller's thread is left as it is."""
    if by <= 0:
        return make()
    with ThreadPoolExecutor(1, "rtme-make", initializer=_nicer, initargs=(by,)) as maker:
        return maker.submit(make).result()
