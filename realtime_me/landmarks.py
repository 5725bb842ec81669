"""Face-mesh landmarks with MediaPipe (478 points with refined irises).

MediaPipe's face mesh in tracking mode is cheapest with ``max_num_faces=1``
(about 5 ms a frame here; with 2 faces allowed it re-runs the detector every
frame while only one is visible). So the tracker runs the mesh for one face and
a cheap face detector now and then (``check_every_s``) to count faces; when it
sees several, it runs the mesh on a crop around the largest, which is the face
it follows.

The mesh need not run on every frame of a 100-200 fps source: the spotter reads
skin motion from the flow points (``spotting/flow.py``), which take the mesh
points only where a flow chain starts, so the mesh only has to keep the aligned
crop on the face. It runs at most every ``mesh_every_s`` (0.03 s: every frame at
30 fps, every 6th at 200 fps); in between the last mesh is carried by the median
pyramidal-LK shift of its stable points (a translation, ~0.3 ms), and the mesh
runs again at once when that shift exceeds ``drift_px``, its points disagree
(spread over ``drift_px / 2``) or LK loses them. Carried landmarks say so
(``measured=False``).

A face just found is meshed from the detector's box, the next run from the mesh's own
landmarks, and the two disagree by about half a pixel on a still face (it takes 3-4 runs to
settle to the mesh's own noise): a step the spotter reads as a movement. So on finding a face,
and on making the mesh anew for a crop when several faces show, the mesh runs
``settle_runs`` more times on the same image, and the first landmarks are already the
tracked ones (benchmarks/README.md has the figures).
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
        mesh_every_s: float = 0.03,
        drift_px: float = 2.0,
        settle_runs: int = 4,
    ) -> None:
        _quiet_mediapipe()
        import mediapipe as mp

        self._mp = mp
        self.static_images = static_images
        self.min_detection_confidence = min_detection_confidence
        self.min_tracking_confidence = min_tracking_confidence
        self.check_every_s = check_every_s
        self.crop_scale = crop_scale
        self.mesh_every_s = 0.0 if static_images else mesh_every_s
        self.drift_px = drift_px
        self.settle_runs = 0 if static_images else settle_runs
        self._mesh = self._new_mesh()
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_detection_confidence
        )
        self._roi: tuple[int, int, int, int] | None = None  # crop used when several faces
        self._n_faces = 1
        self._last_check_t: float | None = None
        self._lost = True
        self._anchor: _Anchor | None = None  # the last mesh run, carried between runs
        self.mesh_runs = 0                   # frames the mesh ran on (settle runs not counted)

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
            # The mesh's tracking state is in the coordinates of the image it was fed; a new
            # mesh has no face yet, and starts from the detector's box (so it is settled).
            self._mesh.close()
            self._mesh = self._new_mesh()
            self._lost = True
        self._roi = roi

    def process(self, frame: Frame) -> FaceLandmarks | None:
        a = self._anchor
        if a is not None and frame.t - a.t < self.mesh_every_s - 1e-6:
            carried = self._carry(frame, a)
            if carried is not None:
                return carried
        return self._run_mesh(frame)

    def _run_mesh(self, frame: Frame) -> FaceLandmarks | None:
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
        self.mesh_runs += 1
        if self._lost and res.multi_face_landmarks:  # a face just found: mesh it again from its own ROI
            for _ in range(self.settle_runs):
                res = self._mesh.process(img)
        if not res.multi_face_landmarks:
            self._lost = True
            self._anchor = None
            return None
        self._lost = False
        h, w = img.shape[:2]
        lm = res.multi_face_landmarks[0].landmark
        pts = np.array([(p.x, p.y, p.z) for p in lm], dtype=np.float32)
        pts[:, 0] = pts[:, 0] * w + x0
        pts[:, 1] = pts[:, 1] * h + y0
        pts[:, 2] = pts[:, 2] * w
        out = FaceLandmarks(frame.index, frame.t, pts, max(1, self._n_faces))
        self._anchor = _Anchor.of(frame, out) if self.mesh_every_s > 0 else None
        return out

    def _carry(self, frame: Frame, a: "_Anchor") -> FaceLandmarks | None:
        """The anchor's landmarks moved by the median LK shift of its stable points, or
        None (drifted, points disagree, or lost): the mesh must run on this frame."""
        x0, y0, x1, y1 = a.roi
        img = frame.image[y0:y1, x0:x1]
        if img.shape[:2] != a.gray.shape:
            return None
        p1, status, _ = cv2.calcOpticalFlowPyrLK(a.gray, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), a.stable, None,
                                                 winSize=(15, 15), maxLevel=2, criteria=_LK_CRITERIA)
        ok = status.ravel() == 1
        if p1 is None or ok.sum() < len(ok) // 2:
            return None
        d = (p1 - a.stable).reshape(-1, 2)[ok]
        shift = np.median(d, axis=0)
        if np.hypot(*shift) > self.drift_px or np.median(np.hypot(*(d - shift).T)) > self.drift_px / 2:
            return None
        pts = a.points.copy()
        pts[:, :2] += shift.astype(np.float32)
        return FaceLandmarks(frame.index, frame.t, pts, a.n_faces, measured=False)


_LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03)


class _Anchor:
    """The frame of the last mesh run, as LK needs it: gray face box, stable points in it."""

    __slots__ = ("t", "points", "n_faces", "roi", "gray", "stable")

    @classmethod
    def of(cls, frame: Frame, lm: FaceLandmarks) -> "_Anchor | None":
        from .alignment import STABLE_POINTS

        a = cls()
        h, w = frame.image.shape[:2]
        bx0, by0, bx1, by1 = lm.box
        m = 0.15 * max(bx1 - bx0, by1 - by0)  # room for the carry's shift and LK's window
        a.roi = (max(0, int(bx0 - m)), max(0, int(by0 - m)), min(w, int(bx1 + m) + 1), min(h, int(by1 + m) + 1))
        x0, y0, x1, y1 = a.roi
        if x1 - x0 < 16 or y1 - y0 < 16:  # the face is (nearly) out of the frame: nothing to carry
            return None
        a.t, a.points, a.n_faces = frame.t, lm.points, lm.n_faces
        a.gray = cv2.cvtColor(frame.image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
        a.stable = (lm.points[STABLE_POINTS, :2] - (x0, y0)).reshape(-1, 1, 2).astype(np.float32)
        return a


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
