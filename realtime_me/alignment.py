"""Face alignment: a similarity transform of stable landmarks onto a canonical template.

The template (``assets/face_template_224.npy``) is the Procrustes mean of the
face-mesh landmarks found on the MEGC2019 composite apex crops (224x224), so a
live aligned crop is framed like the crops the classifier was trained on.
``build_template`` rebuilds it from any folder of face crops; the product only
loads the 478x2 array.

Only points that facial muscles barely move drive the fit (eye corners, nose
bridge and tip, upper face outline), so a smile or a frown does not tilt the crop.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from .types import AlignedFace, FaceLandmarks

TEMPLATE_SIZE = 224

#: Face-mesh indices that muscles barely move: inner/outer eye corners, nose bridge
#: and tip, temples and upper face outline.
STABLE_POINTS = np.array(
    [33, 133, 362, 263,        # eye corners (outer L, inner L, inner R, outer R)
     168, 6, 197, 195, 5, 4, 1,  # nose bridge to tip
     10, 109, 338, 67, 297,    # forehead / upper outline
     234, 454, 127, 356],      # temples
    dtype=np.int64,
)


@lru_cache(maxsize=1)
def template() -> np.ndarray:
    """(478, 2) float32 canonical landmark positions in a 224x224 crop."""
    with resources.files("realtime_me").joinpath("assets/face_template_224.npy").open("rb") as f:
        return np.load(f, allow_pickle=False)


def similarity_to_template(points_xy: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """2x3 least-squares similarity transform taking stable landmarks to the template
    scaled to ``size`` (Umeyama, closed form: no RANSAC jitter between frames)."""
    src = points_xy[STABLE_POINTS, :2].astype(np.float64)
    dst = template()[STABLE_POINTS].astype(np.float64) * (size / TEMPLATE_SIZE)
    return umeyama(src, dst)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) src -> dst, as 2x3."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    scale = (sig * sign).sum() / s.var(0).sum()
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def align(image_bgr: np.ndarray, landmarks: FaceLandmarks, size: int = TEMPLATE_SIZE) -> AlignedFace:
    """Warp the face onto the template: an SxS crop plus landmarks in crop pixels."""
    m = similarity_to_template(landmarks.points, size)
    crop = cv2.warpAffine(image_bgr, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    pts = landmarks.points[:, :2] @ m[:, :2].T + m[:, 2]
    return AlignedFace(landmarks.index, landmarks.t, crop, m.astype(np.float32), pts.astype(np.float32),
                       landmarks.measured)


class Aligner:
    """Pipeline stage: (image, FaceLandmarks) -> AlignedFace of a fixed size."""

    def __init__(self, size: int = TEMPLATE_SIZE) -> None:
        self.size = size

    def process(self, image_bgr: np.ndarray, landmarks: FaceLandmarks) -> AlignedFace:
        return align(image_bgr, landmarks, self.size)


def build_template(crop_dir: str | Path, size: int = TEMPLATE_SIZE, iterations: int = 5) -> np.ndarray:
    """Procrustes mean of the landmarks of every face crop in ``crop_dir`` (all ``size``x``size``)."""
    from .landmarks import FaceTracker
    from .types import Frame

    pts = []
    with FaceTracker(static_images=True) as tracker:
        for p in sorted(Path(crop_dir).glob("*.jpg")):
            lm = tracker.process(Frame(0, 0.0, cv2.imread(str(p))))
            if lm is not None:
                pts.append(lm.points[:, :2].astype(np.float64))
    if not pts:
        raise ValueError(f"no face found in {crop_dir}")
    raw_mean = np.mean(pts, axis=0)
    mean = raw_mean
    for _ in range(iterations):
        aligned = [p @ m[:, :2].T + m[:, 2] for p in pts for m in [umeyama(p, mean)]]
        new = np.mean(aligned, axis=0)
        m = umeyama(new, raw_mean)  # keep the raw mean's position and scale
        mean = new @ m[:, :2].T + m[:, 2]
    return mean.astype(np.float32)
