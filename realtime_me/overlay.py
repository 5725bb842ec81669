"""Drawing for the OpenCV window and the browser: landmarks, motion value, last event."""
from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from .types import Event, FaceLandmarks

if TYPE_CHECKING:
    from .pipeline import Snapshot

EMOTION_COLOURS = {"negative": (60, 60, 230), "positive": (60, 200, 60), "surprise": (230, 160, 40)}


def draw_overlay(image: np.ndarray, landmarks: FaceLandmarks | None, motion: float | None = None,
                 event: Event | None = None, fps: float | None = None) -> np.ndarray:
    """A copy of ``image`` with the face mesh points, the live motion bar (``motion`` in
    thresholds: the spotter's 1.0 at half the bar) and the last event."""
    out = image.copy()
    if landmarks is not None:
        for x, y in landmarks.points[:, :2].astype(np.int32):
            cv2.circle(out, (int(x), int(y)), 1, (0, 255, 255), -1, cv2.LINE_AA)
    else:
        cv2.putText(out, "no face", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 255), 2, cv2.LINE_AA)
    h, w = out.shape[:2]
    if motion is not None:
        frac = min(1.0, motion / 2)
        cv2.rectangle(out, (10, h - 20), (10 + int(200 * frac), h - 10), (0, 200, 255), -1)
        cv2.line(out, (110, h - 24), (110, h - 6), (255, 255, 255), 1)  # threshold at half the bar
    if event is not None:
        label = event.emotion or "unclassified"
        text = f"{event.window.kind} {label}" + (f" {event.confidence:.0%}" if event.emotion else "")
        cv2.putText(out, text, (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 0.8, EMOTION_COLOURS.get(label, (200, 200, 200)), 2, cv2.LINE_AA)
    if fps is not None:
        cv2.putText(out, f"{fps:.0f} fps", (w - 110, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def draw_snapshot(snap: "Snapshot", fps: float | None = None) -> np.ndarray:
    """``draw_overlay`` of a ``Pipeline.snapshot()`` (which must hold a frame): its newest
    motion value (in thresholds) and its last event."""
    value = float(snap.value[-1]) if len(snap.value) else None
    last = snap.events[-1] if snap.events else None
    return draw_overlay(snap.frame.image, snap.landmarks, value, last, fps)
