import cv2
import numpy as np
import pytest

from realtime_me.errors import UserError
from realtime_me.sources import CameraSource, FrameFolderSource, VideoSource, open_source


def test_video_file_offline_reads_every_frame_with_media_time(shared_data):
    with VideoSource(shared_data / "videos" / "single_face.mp4", realtime=False) as src:
        frames = list(src.frames())
    assert src.info.fps == pytest.approx(30.0) and (src.info.width, src.info.height) == (640, 360)
    assert [f.index for f in frames] == list(range(72))
    assert frames[10].t == pytest.approx(10 / 30)
    assert frames[0].image.shape == (360, 640, 3) and frames[0].image.dtype == np.uint8
    assert src.end_reason == "end of input"


def test_hevc_mov_decodes(shared_data):
    with VideoSource(shared_data / "videos" / "noface_face.mov", realtime=False) as src:
        assert sum(1 for _ in src.frames()) == 169


def test_missing_and_corrupt_video_give_clear_errors(tmp_path):
    with pytest.raises(UserError, match="no such video"):
        VideoSource(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01not a video" * 1000)
    with pytest.raises(UserError, match="cannot read video"):
        VideoSource(bad)


def test_truncated_video_stops_cleanly_and_says_so(tmp_path):
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(60):
        w.write(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    w.release()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with VideoSource(path, realtime=False) as src:
        n = sum(1 for _ in src.frames())
    assert 0 < n < 60
    assert "ended early" in src.end_reason and str(n) in src.end_reason


def write_frames(folder, names):
    folder.mkdir()
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((32, 48, 3), i * 20, np.uint8))


def test_image_sequence_in_natural_order_at_given_fps(tmp_path):
    write_frames(tmp_path / "seq", ["img_10.png", "img_2.png", "img_1.png"])
    (tmp_path / "seq" / "notes.txt").write_text("not a frame")
    with FrameFolderSource(tmp_path / "seq", fps=200) as src:
        frames = list(src.frames())
    assert [int(f.image[0, 0, 0]) for f in frames] == [40, 20, 0]  # 1, 2, 10
    assert frames[2].t == pytest.approx(2 / 200)
    assert src.info.fps == 200 and not src.info.live


def test_image_sequence_errors(tmp_path):
    write_frames(tmp_path / "seq", ["a.png"])
    with pytest.raises(UserError, match="--fps"):
        FrameFolderSource(tmp_path / "seq", fps=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        FrameFolderSource(tmp_path / "empty", fps=30)
    with pytest.raises(UserError, match="no such folder"):
        FrameFolderSource(tmp_path / "missing", fps=30)


def test_missing_camera_is_named():
    with pytest.raises(UserError, match="camera 97"):
        CameraSource(97)


def test_no_source_on_a_machine_without_camera_says_what_to_pass():
    with pytest.raises(UserError) as e:
        open_source()
    assert "--video" in str(e.value) and "--demo" in str(e.value) and "--camera" in str(e.value)


def test_two_sources_rejected(tmp_path):
    with pytest.raises(UserError, match="pick one source"):
        open_source(video="a.mp4", demo=True)


def test_demo_source_yields_the_generated_clip():
    from realtime_me.sources import DemoSource

    src = DemoSource(seed=3, fps=30, duration_s=2.0, realtime=False)
    frames = list(src.frames())
    assert len(frames) == src.info.n_frames == src.truth["n_frames"]
    assert frames[0].image.shape == (480, 640, 3)
    assert frames[-1].t == pytest.approx((len(frames) - 1) / 30)
