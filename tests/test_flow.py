"""Flow points: sub-pixel skin motion on aligned crops, measured where it happened."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime_me.landmarks import landmarks_of_image
from realtime_me.alignment import align
from realtime_me.spotting.flow import FlowPoints, eye_aperture, sample_bilinear
from realtime_me.spotting.regions import LID_PAIRS
from realtime_me.types import AlignedFace, FaceLandmarks

MOUTH_CORNER = 61   # face-mesh index of the right mouth corner
FOREHEAD = 151


@pytest.fixture(scope="module")
def face(shared_data: Path) -> AlignedFace:
    path = sorted((shared_data / "composite" / "apex").glob("*"))[0]
    image = cv2.imread(str(path))
    image = cv2.resize(image, (448, 448), interpolation=cv2.INTER_CUBIC)
    pts = landmarks_of_image(image)
    assert pts is not None, f"no face in {path}"
    return align(image, FaceLandmarks(0, 0.0, pts))


def shifted(face: AlignedFace, index: int, dx: float, dy: float, radius: float = 14.0) -> AlignedFace:
    """The crop with the skin around one landmark moved by (dx, dy) pixels, smoothly."""
    h, w = face.crop.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = face.points[index]
    weight = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
    crop = cv2.remap(face.crop, xx - dx * weight, yy - dy * weight, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return AlignedFace(face.index + 1, face.t + 1 / 30, crop, face.matrix, face.points)


def test_bilinear_sampling_interpolates_between_pixels():
    field = np.zeros((4, 4, 1), np.float32)
    field[1, 2, 0] = 1.0
    assert sample_bilinear(field, np.array([[2.0, 1.0]]))[0, 0] == pytest.approx(1.0)
    assert sample_bilinear(field, np.array([[1.5, 1.0]]))[0, 0] == pytest.approx(0.5)
    assert sample_bilinear(field, np.array([[2.0, 1.25]]))[0, 0] == pytest.approx(0.75)


@pytest.mark.parametrize("amount", [0.5, 1.5])
def test_sub_pixel_movement_is_measured_where_it_happened(face, amount):
    fp = FlowPoints(30.0)
    first = fp.process(face).points
    moved = fp.process(shifted(face, MOUTH_CORNER, amount, -amount / 2)).points
    d = moved[:, :2] - first[:, :2]
    assert d[MOUTH_CORNER] == pytest.approx([amount, -amount / 2], abs=0.25 * amount)
    assert np.linalg.norm(d[FOREHEAD]) < 0.1        # far from the movement nothing moves
    # the raw face-mesh points cannot see this: they are the same in both crops here


def test_reference_swap_keeps_the_chain_continuous(face):
    fp = FlowPoints(30.0)
    fp.swap_every = 2
    fp.process(face)
    held = shifted(face, MOUTH_CORNER, 1.0, 0.0)
    a = fp.process(held).points     # this crop becomes the reference
    b = fp.process(held).points     # flow from it is zero: the points stay where they were
    c = fp.process(face).points     # back to neutral: the corner comes back
    assert np.abs(b - a).max() < 0.05
    assert c[MOUTH_CORNER, 0] == pytest.approx(face.points[MOUTH_CORNER, 0], abs=0.25)


def test_reset_restarts_from_the_new_crops_landmarks(face):
    fp = FlowPoints(30.0)
    fp.process(face)
    fp.process(shifted(face, MOUTH_CORNER, 1.0, 0.0))
    fp.reset()
    again = fp.process(face).points
    np.testing.assert_allclose(again[:, :2], face.points, atol=1e-5)


def closed_eyes(face: AlignedFace) -> AlignedFace:
    pts = face.points.copy()
    for pairs in LID_PAIRS.values():
        for upper, lower in pairs:
            pts[upper] = pts[lower]
    return AlignedFace(face.index, face.t, face.crop, face.matrix, pts)


def test_no_reference_swap_in_the_middle_of_a_blink(face):
    """A reference taken with the lids half shut would bake flow errors into the eye points."""
    assert eye_aperture(face.points) > 0.1 and eye_aperture(closed_eyes(face).points) < 0.01
    fp = FlowPoints(30.0)
    fp.swap_every = 2
    for _ in range(5):
        fp.process(face)
    assert fp._since == 0                       # open eyes: swapped every 2 frames
    fp.process(closed_eyes(face))
    fp.process(closed_eyes(face))
    assert fp._since == 2                       # due, but held while the eyes are shut
    fp.process(face)
    assert fp._since == 0                       # eyes open again: swapped
    for _ in range(fp.config.max_hold * fp.swap_every):
        fp.process(closed_eyes(face))
    assert fp._since == 0                       # eyes shut for long: swapped anyway
