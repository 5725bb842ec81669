"""A bounded frame ring between the capture thread and the processing thread.

Live sources must never wait for processing: when the ring is full the oldest
unread frame is overwritten and counted as dropped, so memory stays fixed and the
pipeline always works on recent frames. File sources analysed offline ask for
back-pressure instead (``put(..., block=True)``) and lose nothing, even when the
frame size changes (the writer waits for the ring to drain before taking the new size).

Capacity is seconds x fps, capped by ``max_bytes`` once the frame size is known, so a
1000 fps source cannot make the ring take gigabytes.

Slots hold frames, not pixels copied into shared storage: a writer that hands its
image over (``copy=False``, e.g. a source that decodes every frame into a new array)
costs no copy at all, and a reader gets the very frame that was put, so it can never
see a half-written one. ``copy=True`` (the default) stores a private copy, for callers
that reuse their buffer.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from .types import Frame


#: default memory cap of the ring's image storage
MAX_BYTES = 256 * 1024 * 1024


class FrameRing:
    def __init__(self, capacity: int, max_bytes: int | None = MAX_BYTES) -> None:
        if capacity < 2:
            raise ValueError("ring capacity must be at least 2 frames")
        self.requested = capacity
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._slots: list[Frame | None] = [None] * capacity
        self._kind: tuple | None = None  # (shape, dtype) of the frames stored now
        self._head = 0  # next slot to write (monotonic count)
        self._tail = 0  # next slot to read (monotonic count)
        self._closed = False
        self._cond = threading.Condition()
        self.written = 0
        self.dropped = 0

    @classmethod
    def for_seconds(cls, seconds: float, fps: float, max_bytes: int | None = MAX_BYTES) -> "FrameRing":
        return cls(max(2, int(np.ceil(seconds * fps))), max_bytes)

    def __len__(self) -> int:
        with self._cond:
            return self._head - self._tail

    @property
    def closed(self) -> bool:
        return self._closed

    def _fits(self, image: np.ndarray) -> bool:
        return self._kind == (image.shape, image.dtype)

    def _room_for(self, image: np.ndarray) -> bool:
        """Blocking writers wait for this: a free slot, or (new frame size) an empty ring."""
        if self._fits(image):
            return self._head - self._tail < self.capacity
        return self._head == self._tail

    def _ensure_storage(self, image: np.ndarray) -> None:
        if self._fits(image):
            return
        # First frame, or the source changed resolution. A blocking writer gets here with
        # the ring drained; a live one drops (and counts) the unread frames of the old size.
        self.dropped += self._head - self._tail
        self._tail = self._head
        slots = self.requested
        if self.max_bytes is not None:
            slots = min(slots, max(2, self.max_bytes // max(1, image.nbytes)))
        self._slots = [None] * slots
        self.capacity = slots
        self._kind = (image.shape, image.dtype)

    def put(self, frame: Frame, block: bool = False, timeout: float | None = None, copy: bool = True) -> bool:
        """Store ``frame`` (its image copied unless ``copy=False`` hands it over).
        Returns False if the ring is closed (or timed out)."""
        with self._cond:
            if block:
                ok = self._cond.wait_for(lambda: self._closed or self._room_for(frame.image), timeout)
                if not ok:
                    return False
            if self._closed:
                return False
            self._ensure_storage(frame.image)
            if self._head - self._tail >= self.capacity:
                self._slots[self._tail % self.capacity] = None
                self._tail += 1
                self.dropped += 1
            image = frame.image.copy() if copy else frame.image
            self._slots[self._head % self.capacity] = Frame(frame.index, frame.t, image,
                                                            frame.arrival or time.perf_counter())
            self._head += 1
            self.written += 1
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> Frame | None:
        """Next unread frame, oldest first; None when closed and drained, or on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or self._head > self._tail, timeout):
                return None
            if self._head == self._tail:
                return None
            slot = self._tail % self.capacity
            frame, self._slots[slot] = self._slots[slot], None
            self._tail += 1
            self._cond.notify_all()
            return frame

    def close(self) -> None:
        """No more frames: readers drain what is left, then get None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
