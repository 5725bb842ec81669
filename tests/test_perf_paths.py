"""The fast paths of the per-frame chain and the classify stage do what the slow ones did.

Face mesh on a schedule (points carried in between, re-run on drift and loss), flow points
of a batch against one crop at a time, the frame ring handing images over without a copy,
the numba TV-L1 against OpenCV's, a fake high-rate camera, an offline 200 fps run that
loses no frame, and the per-frame threads' priority under the classifier's.
"""
import os
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from realtime_me import sources
from realtime_me.alignment import STABLE_POINTS, Aligner
from realtime_me.landmarks import FaceTracker
from realtime_me.pipeline import Pipeline, PipelineConfig
from realtime_me.ringbuffer import FrameRing
from realtime_me.sources import CameraSource, DemoSource
from realtime_me.spotting.flow import FlowPoints
from realtime_me.types import Frame


@pytest.fixture(scope="module")
def frames200():
    """0.25 s of the demo clip at 200 fps (a face with head drift and blinks)."""
    return list(DemoSource(seed=3, fps=200, duration_s=0.25, realtime=False).frames())


def test_mesh_runs_on_a_schedule_and_the_frames_between_carry_its_points(frames200):
    with FaceTracker() as every, FaceTracker(mesh_every_s=0.0) as reference:
        got = [every.process(f) for f in frames200]
        ref = [reference.process(f) for f in frames200]
    assert all(lm is not None for lm in got)
    measured = [lm.measured for lm in got]
    assert measured[0] and not all(measured)
    assert every.mesh_runs == sum(measured) < len(frames200) / 3        # every 6th frame at 200 fps
    assert reference.mesh_runs == len(frames200)
    for lm, r in zip(got, ref):                                          # carried points stay on the face
        err = np.linalg.norm(lm.points[STABLE_POINTS, :2] - r.points[STABLE_POINTS, :2], axis=1)
        assert np.median(err) < 2.0 and lm.index == r.index


def test_mesh_at_30_fps_runs_on_every_frame():
    frames = list(DemoSource(seed=3, fps=30, duration_s=0.3, realtime=False).frames())
    with FaceTracker() as tr:
        assert all(tr.process(f).measured for f in frames) and tr.mesh_runs == len(frames)


def test_mesh_reruns_at_once_when_the_face_jumps(frames200):
    with FaceTracker() as tr:
        tr.process(frames200[0])
        tr.process(frames200[1])
        assert tr.mesh_runs == 1
        f = frames200[2]
        jumped = Frame(f.index, f.t, np.ascontiguousarray(np.roll(f.image, 12, axis=1)))
        lm = tr.process(jumped)
    assert lm.measured and tr.mesh_runs == 2                              # drift: not carried


def test_mesh_reruns_when_the_face_is_lost_and_comes_back(frames200):
    with FaceTracker() as tr:
        tr.process(frames200[0])
        f = frames200[1]
        assert tr.process(Frame(f.index, f.t, np.zeros_like(f.image))) is None   # LK loses it, mesh finds nothing
        back = tr.process(frames200[2])
    assert back is not None and back.measured and tr.mesh_runs == 3


def test_flow_reference_is_only_swapped_on_measured_frames(frames200):
    with FaceTracker() as tr:
        faces = [Aligner().process(f.image, tr.process(f)) for f in frames200[:12]]
    fp = FlowPoints(200.0)
    fp.swap_every = 1
    for face in faces:
        fp.process(face)
        assert (fp._since == 0) == face.measured      # due every frame, taken only when measured


def test_flow_points_of_a_batch_are_those_of_one_crop_at_a_time(frames200):
    """The motion thread's catch-up path (flows on two cores) chains the same points, to the
    bit: a chain starting inside a batch, references swapped inside and between batches."""
    with FaceTracker() as tr:
        faces = [Aligner().process(f.image, tr.process(f)) for f in frames200[:14]]
    one, many = FlowPoints(200.0), FlowPoints(200.0)
    one.swap_every = many.swap_every = 2
    alone = [one.process(f) for f in faces]
    together = [p for i in range(0, len(faces), 4) for p in many.process_many(faces[i:i + 4])]
    many.close()
    assert len(together) == len(alone) == 14
    for a, b in zip(alone, together):
        assert (a.index, a.t, a.eye_aperture) == (b.index, b.t, b.eye_aperture)
        assert np.array_equal(a.points, b.points)
    assert not np.array_equal(alone[1].points, alone[0].points)     # the flow moved them


def test_motion_thread_takes_the_faces_waiting_together_and_keeps_their_order(frames200):
    """Behind a slow motion step, queued faces are flowed as one batch; a face loss queued
    between them still comes in its place."""
    from realtime_me.types import FaceLost

    p = Pipeline(PipelineConfig(classify=False, motion_batch=4))
    batches, order = [], []
    move_many = p.chain.move_many

    def spy(faces):
        if not batches:
            time.sleep(0.5)                  # a slow step: what follows queues up behind it
        batches.append([f.index for f in faces])
        order.extend(f.index for f in faces)
        return move_many(faces)

    p.chain.move_many = spy
    real_lost = p.chain.lost
    p.chain.lost = lambda i, t: (order.append(("lost", i)), real_lost(i, t))[1]
    p.start(200.0, live=False)
    with FaceTracker() as tr:
        faces = [Aligner().process(f.image, tr.process(f)) for f in frames200[:7]]
    for f in faces[:3]:                      # queued before the motion thread can take them
        p._motion_q.put(f)
    p._motion_q.put(FaceLost(3, 0.015))
    for f in faces[4:]:
        p._motion_q.put(f)
    p.close_input()
    p.wait(30)
    assert order == [0, 1, 2, ("lost", 3), 4, 5, 6]
    assert any(len(b) > 1 for b in batches)


def test_pipeline_sets_opencvs_pool_to_its_config():
    """OpenCV's own pool only spins beside the pipeline's threads: one thread unless told
    to leave it (an embedding application may own that setting)."""
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        p = Pipeline(PipelineConfig(classify=False, opencv_threads=None))
        p.start(30.0, live=False)
        p.stop()
        assert cv2.getNumThreads() == 2
        p = Pipeline(PipelineConfig(classify=False))
        p.start(30.0, live=False)
        p.stop()
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(before)


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def _tasks() -> set[int]:
    return {int(t) for t in os.listdir("/proc/self/task")}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice is per thread on Linux only")
@pytest.mark.parametrize("by", [5, 0])
def test_the_per_frame_threads_and_mediapipes_run_nicer_than_the_classifier(by):
    """At 200 fps on two cores the per-frame path takes most of the idle time; a
    classification must not starve beside it. Its threads and the graph threads MediaPipe
    starts are ``frame_nice`` nicer; the classifier's and the caller's are not."""
    base = _nice(threading.get_native_id())
    nicer = min(base + by, 19)  # Linux's ceiling
    before = _tasks()
    p = Pipeline(PipelineConfig(classify=False, frame_nice=by))
    made = _tasks() - before
    try:
        assert len(made) >= 2 and {_nice(t) for t in made} == {nicer}  # MediaPipe's graphs
        assert _nice(threading.get_native_id()) == base
    finally:
        p.close()
    p = Pipeline(PipelineConfig(frame_nice=by))
    try:
        p.start(30.0, live=False)
        threads = {t.name: t.native_id for t in threading.enumerate() if t.name.startswith("rtme-")}
        assert _nice(threads["rtme-process"]) == _nice(threads["rtme-motion"]) == nicer
        assert _nice(threads["rtme-classify"]) == base
        p.stop()
    finally:
        p.close()


def test_ring_hands_images_over_without_a_copy_when_asked():
    ring = FrameRing(4)
    img = np.full((4, 6, 3), 7, np.uint8)
    ring.put(Frame(0, 0.0, img), copy=False)
    ring.put(Frame(1, 0.1, img))
    assert ring.get(timeout=0).image is img
    copied = ring.get(timeout=0).image
    assert copied is not img and np.array_equal(copied, img)


def test_pipeline_processes_the_sources_own_images(frames200):
    p = Pipeline(PipelineConfig(classify=False))
    seen, original = [], p.chain.tracker.process

    def spy(frame):
        seen.append(frame.image)
        return original(frame)

    p.chain.tracker.process = spy

    class Few(sources.Source):
        info = sources.SourceInfo("few", 200.0, 640, 480, live=False, n_frames=6)

        def frames(self):
            yield from frames200[:6]

    p.run(Few())
    assert len(seen) == 6 and all(a is f.image for a, f in zip(seen, frames200))


def test_numba_tvl1_is_opencvs_flow():
    from realtime_me.preprocess import TVL1, tvl1_flow
    from realtime_me.tvl1 import opencv_tvl1

    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (112, 112), dtype=np.uint8), (0, 0), 2)
    yy, xx = np.mgrid[0:112, 0:112].astype(np.float32)
    bump = np.exp(-((xx - 60) ** 2 + (yy - 50) ** 2) / 300.0).astype(np.float32)
    moved = cv2.remap(base, xx - 1.5 * bump, yy + 0.8 * bump, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    ref = opencv_tvl1(base, moved, **TVL1)
    ours = tvl1_flow(base, moved)
    assert ours.shape == ref.shape == (112, 112, 2) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 1e-4
    assert ours[50, 60, 0] > 0.5                        # it measured the movement, not zeros


def test_median5_is_opencvs_median_blur():
    """TV-L1's 5x5 median (``_median5``) is cv2.medianBlur bit for bit: sizes TV-L1's pyramid
    makes, ties, the replicated border, a constant image."""
    from realtime_me._median5 import median5

    rng = np.random.default_rng(3)
    for shape in [(112, 112), (89, 89), (71, 71), (16, 16), (20, 33)]:
        img = (rng.normal(size=shape) * 3).astype(np.float32)
        img[::5] = 1.25                                  # many ties
        img[:, -1] = -7.0                                # an extreme border column
        assert np.array_equal(median5(img), cv2.medianBlur(img, 5)), shape
    flat = np.full((24, 24), 0.5, np.float32)
    assert np.array_equal(median5(flat), flat)


def _batcher(n: int) -> list[tuple[int, int]]:
    """Comparators of Batcher's odd-even merge sort on n (a power of two) slots."""
    pairs, p = [], 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


def _median_network(n_real: int = 25, n: int = 32, out: int = 12) -> tuple[list[str], str]:
    """The min/max lines the median of n_real values needs (slots past n_real are +inf)."""
    slot: list[str | None] = [f"v{i}" if i < n_real else None for i in range(n)]
    ops = []
    for i, j in _batcher(n):
        a, b = slot[i], slot[j]
        if b is None:
            continue
        if a is None:
            slot[i], slot[j] = b, None
            continue
        lo, hi = f"t{len(ops) + 1}a", f"t{len(ops) + 1}b"
        ops.append((lo, hi, a, b))
        slot[i], slot[j] = lo, hi
    need, lines = {slot[out]}, []
    for lo, hi, a, b in reversed(ops):
        if lo in need or hi in need:
            lines[:0] = ([f"{lo} = min({a}, {b})"] if lo in need else []) + \
                        ([f"{hi} = max({a}, {b})"] if hi in need else [])
            need |= {a, b}
    return lines, slot[out]


def test_median5_body_is_the_generated_sorting_network():
    import inspect

    from realtime_me import _median5

    src = [ln.strip() for ln in inspect.getsource(_median5._median5_padded.py_func).splitlines()]
    body = [ln for ln in src if ln.startswith("t") and " = m" in ln]
    lines, result = _median_network()
    assert body == lines and len(body) == 202 and f"out[y, x] = {result}" in src


def test_tvl1_compiles_one_inner_specialisation():
    """The inner loop is called with a float32 stopping error every time (a float64 one would
    compile and dispatch a second specialisation on the first real classification)."""
    from realtime_me.preprocess import tvl1_flow
    from realtime_me.tvl1 import _inner, warmup

    warmup()
    img = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 255, (112, 112), dtype=np.uint8), (0, 0), 2)
    tvl1_flow(img, np.roll(img, 1, axis=1))
    assert len(_inner.signatures) == 1


class HighRateCam:
    """A camera that is asked for a rate and delivers ``rate`` fps, with driver timestamps."""

    def __init__(self, rate: float, claims: float | None = None, n: int = 400):
        self.rate, self.claims, self.left, self.i = rate, claims, n, 0
        self.props: dict = {}

    def isOpened(self):
        return True

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        if prop == cv2.CAP_PROP_POS_MSEC:
            return 1000.0 * self.i / self.rate
        if prop == cv2.CAP_PROP_FPS:
            return self.claims if self.claims is not None else self.props.get(cv2.CAP_PROP_FPS, 30.0)
        return 0.0

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        self.i += 1
        return True, np.zeros((480, 640, 3), np.uint8)

    def release(self):
        pass


@pytest.fixture
def no_sleep(monkeypatch):
    monkeypatch.setattr(sources.time, "sleep", lambda s: None)
    monkeypatch.setattr(CameraSource, "MAX_FAILED_READS", 2)


@pytest.mark.parametrize("asked", [120, 200])
def test_camera_is_asked_for_the_rate_and_mjpg(no_sleep, asked):
    cam = HighRateCam(asked)
    src = CameraSource(0, 640, 480, asked, capture=cam)
    assert cam.props[cv2.CAP_PROP_FPS] == asked
    assert cam.props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter_fourcc(*"MJPG")
    assert src.info.fps == pytest.approx(asked, rel=0.01) and not src.info.notes


def test_camera_reports_the_rate_it_delivers_not_what_its_driver_claims(no_sleep):
    src = CameraSource(0, 640, 480, 200, capture=HighRateCam(120, claims=200))
    assert src.info.fps == pytest.approx(120, rel=0.01)                 # buffers and spotter sized by this
    assert any("camera delivers 640x480@120.0 (driver says 200)" in n for n in src.info.notes)
    frames = list(src.frames())
    assert [f.index for f in frames] == list(range(400))                # the probe frames are not lost
    assert any("at 120.0 fps (requested 200)" in n for n in src.end_notes)


def test_offline_200fps_sequence_loses_no_frame(tmp_path):
    src = DemoSource(seed=5, fps=200, duration_s=1.0, realtime=False)
    for f in src.frames():
        cv2.imwrite(str(tmp_path / f"{f.index:05d}.png"), f.image)
    result = Pipeline(PipelineConfig(classify=False)).run(sources.FrameFolderSource(tmp_path, 200.0))
    s = result.stats
    assert s.frames_processed == s.frames_in == 200 and s.frames_dropped == 0
    assert s.frames_with_face == 200 and 0 < s.mesh_runs < 200 / 3
