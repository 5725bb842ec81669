"""A preallocated frame ring between the capture thread and the processing thread.

Live sources must never wait for processing: when the ring is full the oldest
unread frame is overwritten and counted as dropped, so memory stays fixed and the
pipeline always works on recent frames. File sources analysed offline ask for
back-pressure instead (``put(..., block=True)``) and lose nothing.

Slots are written and read under one lock, so a reader never sees a
half-written frame; a 640x480 copy takes ~0.1 ms, well below a frame period.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from .types import Frame


class FrameRing:
    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ValueError("ring capacity must be at least 2 frames")
        self.capacity = capacity
        self._images: np.ndarray | None = None
        self._index = np.zeros(capacity, dtype=np.int64)
        self._t = np.zeros(capacity, dtype=np.float64)
        self._arrival = np.zeros(capacity, dtype=np.float64)
        self._head = 0  # next slot to write (monotonic count)
        self._tail = 0  # next slot to read (monotonic count)
        self._closed = False
        self._cond = threading.Condition()
        self.written = 0
        self.dropped = 0

    @classmethod
    def for_seconds(cls, seconds: float, fps: float) -> "FrameRing":
        return cls(max(2, int(np.ceil(seconds * fps))))

    def __len__(self) -> int:
        with self._cond:
            return self._head - self._tail

    @property
    def closed(self) -> bool:
        return self._closed

    def _ensure_storage(self, image: np.ndarray) -> None:
        if self._images is None or self._images.shape[1:] != image.shape:
            # First frame, or the source changed resolution: unread frames of the old
            # size are dropped (and counted) rather than resized behind the reader's back.
            self.dropped += self._head - self._tail
            self._tail = self._head
            self._images = np.empty((self.capacity, *image.shape), dtype=image.dtype)

    def put(self, frame: Frame, block: bool = False, timeout: float | None = None) -> bool:
        """Store a copy of ``frame``. Returns False if the ring is closed (or timed out)."""
        with self._cond:
            if block:
                ok = self._cond.wait_for(lambda: self._closed or self._head - self._tail < self.capacity, timeout)
                if not ok:
                    return False
            if self._closed:
                return False
            self._ensure_storage(frame.image)
            if self._head - self._tail >= self.capacity:
                self._tail += 1
                self.dropped += 1
            slot = self._head % self.capacity
            self._images[slot] = frame.image
            self._index[slot] = frame.index
            self._t[slot] = frame.t
            self._arrival[slot] = frame.arrival or time.perf_counter()
            self._head += 1
            self.written += 1
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> Frame | None:
        """Next unread frame (a copy), oldest first; None when closed and drained, or on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or self._head > self._tail, timeout):
                return None
            if self._head == self._tail:
                return None
            slot = self._tail % self.capacity
            frame = Frame(int(self._index[slot]), float(self._t[slot]), self._images[slot].copy(), float(self._arrival[slot]))
            self._tail += 1
            self._cond.notify_all()
            return frame

    def close(self) -> None:
        """No more frames: readers drain what is left, then get None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
