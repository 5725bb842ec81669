import cv2
import pytest
import numpy as np

from realtime_me.alignment import STABLE_POINTS, align, template
from realtime_me.landmarks import N_LANDMARKS, FaceTracker
from realtime_me.sources import VideoSource
from realtime_me.types import Frame


def test_landmarks_on_real_apex_crops(shared_data):
    paths = sorted((shared_data / "composite" / "apex").glob("*.jpg"))
    sample = paths[:: max(1, len(paths) // 24)]  # spread over SMIC, CASME II and SAMM
    found = 0
    with FaceTracker(static_images=True) as tracker:
        for p in sample:
            lm = tracker.process(Frame(0, 0.0, cv2.imread(str(p))))
            if lm is not None:
                found += 1
                assert lm.points.shape == (N_LANDMARKS, 3) and lm.points.dtype == np.float32
                x0, y0, x1, y1 = lm.box
                assert x1 - x0 > 150 and y1 - y0 > 150  # the crops are face-filling 224x224
    assert found >= 0.95 * len(sample)


def test_no_landmarks_on_a_clip_without_face(shared_data):
    with VideoSource(shared_data / "videos" / "no_face.mp4", realtime=False) as src, FaceTracker() as tracker:
        hits = [tracker.process(f) for f in src.frames()]
    assert len(hits) > 90 and all(h is None for h in hits)


def test_follows_the_largest_of_several_faces(shared_data):
    img = cv2.imread(str(shared_data / "videos" / "multi_face.jpg"))
    with FaceTracker(static_images=True) as tracker:
        lm = tracker.process(Frame(0, 0.0, img))
        boxes = tracker.detect_faces(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    assert lm is not None and lm.n_faces == len(boxes) > 1
    x0, y0, x1, y1 = boxes[0]  # largest
    cx, cy = lm.points[:, :2].mean(axis=0)
    assert x0 <= cx <= x1 and y0 <= cy <= y1
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    assert areas[0] == max(areas)


def test_alignment_maps_stable_points_onto_the_template(shared_data):
    # a training crop is already framed like the template: alignment barely moves it
    crop = cv2.imread(str(shared_data / "composite" / "apex" / "casme2_sub01_EP02_01f.jpg"))
    with FaceTracker(static_images=True) as tracker:
        face = align(crop, tracker.process(Frame(0, 0.0, crop)))
    err = np.linalg.norm(face.points[STABLE_POINTS] - template()[STABLE_POINTS], axis=1)
    assert face.crop.shape == (224, 224, 3) and np.median(err) < 6.0
    img = cv2.imread(str(shared_data / "videos" / "single_face.jpg"))
    with FaceTracker(static_images=True) as tracker:
        lm = tracker.process(Frame(0, 0.0, img))
    face = align(img, lm)
    # a rotated, shifted, scaled copy of the frame lands on the same crop
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 12, 0.8)
    m[:, 2] += (15, -10)
    moved = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    with FaceTracker(static_images=True) as tracker:
        lm2 = tracker.process(Frame(0, 0.0, moved))
    face2 = align(moved, lm2)
    assert np.median(np.linalg.norm(face2.points[STABLE_POINTS] - face.points[STABLE_POINTS], axis=1)) < 3.0


@pytest.mark.parametrize("settle_runs,settled", [(0, False), (4, True)])
def test_a_face_just_found_starts_where_the_tracked_mesh_will_be(still_real_face, settle_runs, settled):
    # A still face: the mesh from the detector's box and the next from its own landmarks
    # disagree by ~0.5 px on average, a step the spotter reads as a movement.
    image, fps = still_real_face
    with FaceTracker(settle_runs=settle_runs) as tracker:
        lms = [tracker.process(Frame(i, i / fps, image)) for i in range(8)]
    assert [lm.measured for lm in lms] == [True] + [False] * 5 + [True, False]   # the mesh again at frame 6
    step = float(np.hypot(*(lms[6].points[:, :2] - lms[0].points[:, :2]).T).mean())
    assert (step < 0.2) is settled, step


@pytest.mark.parametrize("settle_runs,settled", [(0, False), (4, True)])
def test_a_mesh_made_anew_for_several_faces_starts_settled(still_real_face, settle_runs, settled):
    # A second face appears: the tracker re-makes the mesh for a crop around the largest,
    # and a new mesh starts from the detector's box, as a face just found does.
    image, _ = still_real_face
    h, w = image.shape[:2]
    one = np.full((2 * h, 2 * w, 3), 128, np.uint8)
    one[h // 2:h // 2 + h, :w] = image
    two = one.copy()
    two[h // 4:h // 4 + h // 2, w + w // 3:w + w // 3 + w // 2] = cv2.resize(image, (w // 2, h // 2))
    with FaceTracker(settle_runs=settle_runs, mesh_every_s=0.0, check_every_s=0.5) as tracker:
        lms = [tracker.process(Frame(i, i * 0.1, one if i < 6 else two)) for i in range(11)]
    assert [lm.n_faces for lm in lms] == [1] * 10 + [2]          # counted at the check, t = 1 s
    step = float(np.hypot(*(lms[10].points[:, :2] - lms[9].points[:, :2]).T).mean())
    assert (step < 0.2) is settled, step
