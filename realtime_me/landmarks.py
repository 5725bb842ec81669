"""Face-mesh landmarks with MediaPipe (478 points with refined irises).

MediaPipe's face mesh in tracking mode is cheapest with ``max_num_faces=1``
(about 5 ms a frame here; with 2 faces allowed it re-runs the detector every
frame while only one is visible). So the tracker runs the mesh for one face and
a cheap face detector now and then (``check_every_s``) to count faces; when it
sees several, it runs the mesh on a crop around the largest, which is the face
it follows.
"""
from __future__ import annotations

import contextlib
import logging
import os

import cv2
import numpy as np

from .types import FaceLandmarks, Frame

log = logging.getLogger(__name__)

N_LANDMARKS = 478


def _quiet_mediapipe() -> None:
    """MediaPipe's C++ side logs to stderr at start-up; keep the console for events."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class FaceTracker:
    """Frame -> FaceLandmarks of the largest face, or None when no face is seen."""

    def __init__(
        self,
        static_images: bool = False,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        check_every_s: float = 0.5,
        crop_scale: float = 2.0,
    ) -> None:
        _quiet_mediapipe()
        import mediapipe as mp

        self._mp = mp
        self.static_images = static_images
        self.min_detection_confidence = min_detection_confidence
        self.min_tracking_confidence = min_tracking_confidence
        self.check_every_s = check_every_s
        self.crop_scale = crop_scale
        self._mesh = self._new_mesh()
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_detection_confidence
        )
        self._roi: tuple[int, int, int, int] | None = None  # crop used when several faces
        self._n_faces = 1
        self._last_check_t: float | None = None
        self._lost = True

    def _new_mesh(self):
        return self._mp.solutions.face_mesh.FaceMesh(
            static_image_mode=self.static_images,
            max_num_faces=1,
            refine_landmarks=True,
            min_detection_confidence=self.min_detection_confidence,
            min_tracking_confidence=self.min_tracking_confidence,
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._mesh.close()
            self._detector.close()

    def __enter__(self) -> "FaceTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detect_faces(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        """All face boxes (x0, y0, x1, y1) in pixels, largest first."""
        h, w = rgb.shape[:2]
        res = self._detector.process(rgb)
        boxes = []
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            x0, y0 = int(b.xmin * w), int(b.ymin * h)
            boxes.append((x0, y0, x0 + int(b.width * w), y0 + int(b.height * h)))
        boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
        return boxes

    def _choose_roi(self, rgb: np.ndarray) -> None:
        boxes = self.detect_faces(rgb)
        self._n_faces = len(boxes)
        roi = None
        if len(boxes) > 1:
            h, w = rgb.shape[:2]
            x0, y0, x1, y1 = boxes[0]
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            half = self.crop_scale * max(x1 - x0, y1 - y0) / 2
            roi = (max(0, int(cx - half)), max(0, int(cy - half)), min(w, int(cx + half)), min(h, int(cy + half)))
        if (roi is None) != (self._roi is None) or (roi is not None and not _same_box(roi, self._roi)):
            # The mesh's tracking state is in the coordinates of the image it was fed.
            self._mesh.close()
            self._mesh = self._new_mesh()
        self._roi = roi

    def process(self, frame: Frame) -> FaceLandmarks | None:
        rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
        due = self._last_check_t is None or frame.t - self._last_check_t >= self.check_every_s
        if self._lost or due:
            self._choose_roi(rgb)
            self._last_check_t = frame.t
        x0, y0 = 0, 0
        img = rgb
        if self._roi is not None:
            x0, y0, x1, y1 = self._roi
            img = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        res = self._mesh.process(img)
        if not res.multi_face_landmarks:
            self._lost = True
            return None
        self._lost = False
        h, w = img.shape[:2]
        lm = res.multi_face_landmarks[0].landmark
        pts = np.array([(p.x, p.y, p.z) for p in lm], dtype=np.float32)
        pts[:, 0] = pts[:, 0] * w + x0
        pts[:, 1] = pts[:, 1] * h + y0
        pts[:, 2] = pts[:, 2] * w
        return FaceLandmarks(frame.index, frame.t, pts, max(1, self._n_faces))


def _same_box(a, b, tol: float = 0.5) -> bool:
    """Boxes overlap by IoU >= tol: small moves keep the current crop."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return union > 0 and inter / union >= tol


def landmarks_of_image(image_bgr: np.ndarray) -> np.ndarray | None:
    """(478, 3) landmarks of the largest face in one still image, or None."""
    with FaceTracker(static_images=True) as tracker:
        lm = tracker.process(Frame(0, 0.0, image_bgr))
    return None if lm is None else lm.points
