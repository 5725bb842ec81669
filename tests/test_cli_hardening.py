"""Bad flags, awkward inputs, failing outputs and signals: one clear line and exit 2,
never a traceback, and nothing already produced is lost."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime_me import sources
from realtime_me.cli import main
from realtime_me.ringbuffer import FrameRing
from realtime_me.sinks import JsonlSink
from realtime_me.sources import DemoSource, FrameFolderSource
from realtime_me.types import Event, Frame, Window

ROOT = Path(__file__).resolve().parents[1]


def refused(capsys, argv: list[str], *words: str) -> str:
    """Runs the CLI on argv; it must answer exit 2 and one line naming ``words``."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("realtime-me run: error: ")
    for w in words:
        assert w in err, err
    return err


def write_images(folder: Path, sizes: list[tuple[int, int]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(sizes):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((h, w, 3), 10 + i, np.uint8))
    return folder


@pytest.fixture
def short_demo(monkeypatch):
    """The demo clip cut to 4 s (two labelled MEs), so a whole run takes seconds."""

    class ShortDemo(DemoSource):
        def __init__(self, seed=7, fps=30.0, duration_s=4.0, realtime=True):
            super().__init__(seed, fps, duration_s, realtime)

    monkeypatch.setattr(sources, "DemoSource", ShortDemo)


# ---------------------------------------------------------------- item 7: size change
def test_image_of_another_size_is_letterboxed_not_dropped(tmp_path):
    folder = write_images(tmp_path / "seq", [(48, 32)] * 3 + [(64, 64)] * 3)
    with FrameFolderSource(folder, fps=30) as src:
        frames = list(src.frames())
    assert [f.index for f in frames] == list(range(6))
    assert {f.image.shape for f in frames} == {(32, 48, 3)}
    assert src.end_notes == ("3 images of another size letterboxed to the first one's 48x32 (none dropped)",)


def test_blocking_ring_waits_for_the_reader_at_a_size_change():
    ring = FrameRing(4)
    ring.put(Frame(0, 0.0, np.zeros((4, 6, 3), np.uint8)), block=True)
    writer = threading.Thread(target=ring.put, args=(Frame(1, 0.1, np.zeros((8, 8, 3), np.uint8)),),
                              kwargs={"block": True, "timeout": 5})
    writer.start()
    first = ring.get(timeout=5)
    writer.join(5)
    second = ring.get(timeout=5)
    assert (first.index, first.image.shape) == (0, (4, 6, 3))
    assert (second.index, second.image.shape) == (1, (8, 8, 3))
    assert ring.dropped == 0


def test_frames_cli_with_a_size_change_analyses_every_frame_and_says_so(tmp_path, capsys):
    folder = write_images(tmp_path / "seq", [(48, 32)] * 10 + [(64, 40)] * 10)
    stats = tmp_path / "stats.json"
    assert main(["--frames", str(folder), "--fps", "30", "--no-classify", "--quiet", "--stats-json", str(stats)]) == 0
    s = json.loads(stats.read_text())
    assert s["frames_processed"] == 20 and s["frames_dropped"] == 0
    assert "note: 10 images of another size letterboxed" in capsys.readouterr().err


# ----------------------------------------------------------- item 8: numeric flags
@pytest.mark.parametrize("fps", ["nan", "inf", "1e6", "0", "-5", "2000"])
def test_fps_out_of_range_is_one_line(tmp_path, capsys, fps):
    folder = write_images(tmp_path / "seq", [(48, 32)] * 2)
    refused(capsys, ["--frames", str(folder), "--fps", fps], "--fps", "1 to 1000")
    refused(capsys, ["--demo", "--fps", fps], "--fps", "1 to 1000")


@pytest.mark.parametrize("flags", [["--fps", "30"], ["--width", "320"], ["--height", "200"]])
def test_flags_a_video_would_ignore_are_refused(capsys, flags):
    video = Path(__file__).parent / "no_such_needed.mp4"  # refused before the file is even looked at
    refused(capsys, ["--video", str(video), *flags], flags[0], "do", "not apply to --video")


@pytest.mark.parametrize("argv", [["--camera", "0", "--width", "0"], ["--camera", "0", "--height", "99999"],
                                  ["--demo", "--width", "320"]])
def test_size_flags_are_checked(capsys, argv):
    refused(capsys, argv, argv[-2])


def test_ring_memory_is_capped_however_high_the_frame_rate():
    ring = FrameRing.for_seconds(2.0, 1000)  # 2000 frames asked for
    ring.put(Frame(0, 0.0, np.zeros((480, 640, 3), np.uint8)))
    assert ring.capacity * 480 * 640 * 3 <= 256 * 2**20
    assert ring.capacity >= 2


# ----------------------------------------------------------- item 9: --sensitivity
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_bad_sensitivity_is_one_line(capsys, value):
    refused(capsys, ["--demo", "--sensitivity", value], "--sensitivity", "> 0")


# ------------------------------------------------------------- item 10: output paths
@pytest.mark.parametrize("flag", ["--events", "--stats-json"])
def test_unwritable_output_is_refused_before_the_run(tmp_path, capsys, flag):
    refused(capsys, ["--demo", flag, str(tmp_path)], flag, "is a folder")
    refused(capsys, ["--demo", flag, "/proc/x.jsonl"], flag, "cannot write")
    (tmp_path / "file").write_text("")
    refused(capsys, ["--demo", flag, str(tmp_path / "file" / "sub" / "out.json")], flag, "cannot write")


def test_refused_run_leaves_an_existing_events_file_alone(tmp_path, capsys):
    events = tmp_path / "events.jsonl"
    events.write_text('{"kept": true}\n')
    refused(capsys, ["--demo", "--events", str(events), "--stats-json", "/proc/x.json"], "--stats-json")
    assert events.read_text() == '{"kept": true}\n'
    probe = tmp_path / "new" / "events.jsonl"
    refused(capsys, ["--demo", "--events", str(probe), "--stats-json", str(tmp_path)], "--stats-json")
    assert not probe.exists()  # the writability probe leaves no empty file behind


def event(i: int) -> Event:
    return Event(Window(i, i + 2, i + 4, i / 30, (i + 2) / 30, (i + 4) / 30))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_events_sink_on_a_full_disk_warns_once_and_keeps_going():
    said: list[str] = []
    sink = JsonlSink("/dev/full", warn=said.append)
    for i in range(3):
        sink(event(i))
    sink.close()
    assert len(said) == 1 and "No space left on device" in said[0]
    assert sink.lost == 3 and sink.written == 0


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_mid_run_keeps_summary_and_stats(tmp_path, capsys, short_demo):
    stats = tmp_path / "stats.json"
    code = main(["--demo", "--as-fast-as-possible", "--no-classify", "--quiet",
                 "--events", "/dev/full", "--stats-json", str(stats)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.count("cannot write events to /dev/full") == 1
    assert "micro-expressions" in err and "demo clip ground truth" in err
    assert err.strip().splitlines()[-1].startswith("realtime-me run: error: cannot write --events /dev/full")
    assert json.loads(stats.read_text())["frames_processed"] > 0


# ------------------------------------------------------------------ item 13: SIGTERM
def test_sigterm_stops_like_ctrl_c_with_summary_stats_and_exit_130(tmp_path):
    stats = tmp_path / "stats.json"
    proc = subprocess.Popen([sys.executable, "-m", "realtime_me.cli", "--demo", "--no-classify", "--quiet",
                             "--stats-json", str(stats)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in proc.stderr:  # the live-paced demo runs 20 s: long enough to be stopped
            seen.append(line)
            if line.startswith("source: "):
                break
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
    finally:
        proc.kill()
    err = "".join(seen) + rest
    assert proc.returncode == 130, err
    assert "stopped: interrupted (SIGTERM)" in err and "micro-expressions" in err and "Traceback" not in err
    assert json.loads(stats.read_text())["end_reason"] == "interrupted"


# ------------------------------------------------------- item 14: consistent messages
def test_folder_given_as_video_is_named_a_folder(tmp_path, capsys):
    refused(capsys, ["--video", str(tmp_path)], "is a folder, not a video file", "--frames")


def test_file_given_as_frames_is_named_a_file(tmp_path, capsys):
    (tmp_path / "clip.mp4").write_bytes(b"x")
    refused(capsys, ["--frames", str(tmp_path / "clip.mp4"), "--fps", "30"], "is a file", "--video")


def test_negative_fps_is_out_of_range_not_missing(tmp_path, capsys):
    folder = write_images(tmp_path / "seq", [(48, 32)])
    err = refused(capsys, ["--frames", str(folder), "--fps", "-5"], "got -5")
    assert "needs its frame rate" not in err
    refused(capsys, ["--frames", str(folder)], "needs its frame rate", "--fps")


@pytest.mark.parametrize("corrupt", [0, 2])
def test_unreadable_image_is_skipped_wherever_it_is(tmp_path, corrupt):
    folder = write_images(tmp_path / "seq", [(48, 32)] * 4)
    (folder / f"{corrupt:03d}.png").write_bytes(b"not a png")
    with FrameFolderSource(folder, fps=30) as src:
        indices = [f.index for f in src.frames()]
    assert indices == [i for i in range(4) if i != corrupt]
    assert src.end_notes == (f"1 unreadable images skipped (first: {corrupt:03d}.png)",)


def test_folder_without_one_readable_image_is_refused(tmp_path, capsys):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(2):
        (folder / f"{i}.png").write_bytes(b"junk")
    refused(capsys, ["--frames", str(folder), "--fps", "30"], "none of the 2 images")
