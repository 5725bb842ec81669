import threading

import numpy as np
import pytest

from realtime_me.ringbuffer import FrameRing
from realtime_me.types import Frame


def frame(i, shape=(4, 6, 3)):
    return Frame(i, i / 30, np.full(shape, i % 256, dtype=np.uint8))


def test_fifo_order_and_copy():
    ring = FrameRing(4)
    src = frame(1)
    ring.put(src)
    src.image[:] = 99  # the ring holds its own copy
    got = ring.get(timeout=0)
    assert got.index == 1 and got.t == pytest.approx(1 / 30) and int(got.image[0, 0, 0]) == 1
    assert got.arrival > 0
    assert ring.get(timeout=0) is None


def test_wraparound_overwrites_oldest_and_counts_drops():
    ring = FrameRing(3)
    for i in range(10):
        ring.put(frame(i))
    assert ring.dropped == 7 and ring.written == 10 and len(ring) == 3
    assert [ring.get(timeout=0).index for _ in range(3)] == [7, 8, 9]
    # keeps working after many laps
    for i in range(10, 13):
        ring.put(frame(i))
    assert [ring.get(timeout=0).index for _ in range(3)] == [10, 11, 12]
    assert ring.dropped == 7


def test_blocking_put_loses_nothing():
    ring = FrameRing(2)
    got = []

    def reader():
        while (f := ring.get(timeout=2)) is not None:
            got.append(f.index)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(200):
        assert ring.put(frame(i), block=True, timeout=2)
    ring.close()
    t.join(5)
    assert got == list(range(200)) and ring.dropped == 0


def test_concurrent_reader_never_sees_half_written_frame():
    """Each frame is filled with one value; a torn read would mix two values."""
    ring = FrameRing(4)
    shape = (120, 160, 3)
    torn, seen = [], []
    done = threading.Event()

    def reader():
        while not done.is_set() or len(ring):
            f = ring.get(timeout=0.05)
            if f is None:
                continue
            seen.append(f.index)
            if f.image.min() != f.image.max() or int(f.image[0, 0, 0]) != f.index % 256:
                torn.append(f.index)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(3000):
        ring.put(frame(i, shape))
    done.set()
    t.join(5)
    assert not torn
    assert seen == sorted(seen)  # order kept even when frames are dropped
    assert len(seen) + ring.dropped == 3000


def test_resolution_change_drops_unread_frames():
    ring = FrameRing(4)
    ring.put(frame(0))
    ring.put(frame(1, (8, 8, 3)))
    assert ring.dropped == 1
    assert ring.get(timeout=0).image.shape == (8, 8, 3)


def test_close_wakes_reader_and_refuses_writes():
    ring = FrameRing(2)
    ring.close()
    assert ring.get(timeout=1) is None
    assert ring.put(frame(0)) is False


def test_capacity_in_seconds():
    assert FrameRing.for_seconds(2.0, 200).capacity == 400
    with pytest.raises(ValueError):
        FrameRing(1)
