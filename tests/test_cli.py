import numpy as np

from realtime_me import sources
from realtime_me.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_no_source_without_camera_is_a_clear_message_not_a_traceback(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "--demo" in err and "--video" in err and "Traceback" not in err


def test_unreadable_video_is_a_clear_message(tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"garbage" * 100)
    assert main(["--video", str(bad)]) == 2
    assert "cannot read video" in capsys.readouterr().err


def test_display_without_a_screen_is_refused(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["--demo", "--display"]) == 2
    assert "--display" in capsys.readouterr().err


class FakeCapture:
    """A camera that delivers a few frames, then is unplugged."""

    def __init__(self, index, frames=5):
        self.left = frames

    def isOpened(self):
        return True

    def set(self, *a):
        return True

    def get(self, prop):
        return 30.0

    def read(self):
        if self.left > 0:
            self.left -= 1
            return True, np.zeros((480, 640, 3), np.uint8)
        return False, None

    def release(self):
        pass


def test_camera_gone_mid_stream_ends_cleanly_and_says_so(monkeypatch):
    monkeypatch.setattr(sources.cv2, "VideoCapture", FakeCapture)
    monkeypatch.setattr(sources.CameraSource, "MAX_FAILED_READS", 3)
    monkeypatch.setattr(sources.time, "sleep", lambda s: None)
    cam = sources.CameraSource(0)
    frames = list(cam.frames())
    assert len(frames) == 5 and [f.index for f in frames] == list(range(5))
    assert "camera stopped delivering frames after frame 5" in cam.end_reason
    assert cam.info.live and cam.info.width == 640


def test_camera_reports_what_it_really_delivers(monkeypatch):
    class SmallCam(FakeCapture):
        def read(self):
            ok, img = super().read()
            return ok, None if img is None else img[:240, :320]

    monkeypatch.setattr(sources.cv2, "VideoCapture", SmallCam)
    cam = sources.CameraSource(0, 640, 480, 30)
    assert (cam.info.width, cam.info.height) == (320, 240)
    assert any("delivers 320x240" in n for n in cam.info.notes)
