import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from realtime_me.cli import main
from realtime_me.metrics import interval, match
from realtime_me.pipeline import Pipeline, PipelineConfig
from realtime_me.sources import DemoSource, VideoSource

ROOT = Path(__file__).resolve().parents[1]


def test_demo_clip_end_to_end_headless(tmp_path, capsys):
    events, stats = tmp_path / "events.jsonl", tmp_path / "stats.json"
    rc = main(["--demo", "--as-fast-as-possible", "--seed", "3", "--events", str(events), "--stats-json", str(stats)])
    assert rc == 0
    s = json.loads(stats.read_text())
    src = DemoSource(seed=3, realtime=False)
    assert s["frames_processed"] == src.info.n_frames and s["frames_dropped"] == 0
    assert s["frames_with_face"] >= 0.98 * s["frames_processed"]
    for stage in ("decode", "landmarks", "align", "spot"):
        assert s["latency"][stage]["count"] > 0 and s["latency"][stage]["p95_ms"] >= s["latency"][stage]["p50_ms"]
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    micro = [e for e in lines if e["kind"] == "micro"]
    truth = [e for e in src.truth["events"] if e["kind"] == "micro"]
    assert micro, "no micro-expression spotted in the demo clip"
    # every spotted ME carries its timing, and most true MEs are found (IoU >= 0.5)
    for e in micro:
        assert e["onset_frame"] <= e["apex_frame"] <= e["offset_frame"]
        assert 0.0 < e["duration_s"] <= 0.5 + 1e-6
        assert e["decision_latency_s"] >= 0
    assert match([interval(e) for e in micro], [interval(t) for t in truth]).tp >= 0.6 * len(truth)
    err = capsys.readouterr().err
    assert "demo clip ground truth" in err and "p50" in err


def test_face_loss_and_reacquisition(shared_data):
    src = VideoSource(shared_data / "videos" / "noface_face.mov", realtime=False)
    result = Pipeline(PipelineConfig(classify=False)).run(src)
    s = result.stats
    assert s.frames_processed == 169
    assert 0 < s.frames_with_face < s.frames_processed
    assert s.face_lost_spans and s.face_lost_spans[0]["start_frame"] == 0
    assert s.face_lost_spans[0]["end_s"] < src.info.n_frames / src.info.fps  # the face came back


def test_no_face_clip_runs_and_reports(shared_data):
    result = Pipeline(PipelineConfig(classify=False)).run(VideoSource(shared_data / "videos" / "no_face.mp4", realtime=False))
    assert result.stats.frames_with_face == 0 and result.events == []
    assert len(result.stats.face_lost_spans) == 1


def test_live_push_never_blocks_and_counts_drops():
    """A producer much faster than processing loses old frames, never memory or time."""
    p = Pipeline(PipelineConfig(classify=False, buffer_seconds=0.2))
    p.start(fps=30, live=True)  # ring of 6 frames
    img = np.zeros((480, 640, 3), np.uint8)
    for i in range(300):
        p.push(img, t=i / 30)
    p.stop()
    s = p.stats
    assert s.frames_in == 300
    assert s.frames_dropped > 200 and s.frames_processed + s.frames_dropped == 300


def test_broken_sink_does_not_stop_the_pipeline():
    calls = []

    def bad_sink(e):
        calls.append(e)
        raise RuntimeError("sink down")

    src = DemoSource(seed=3, duration_s=6, realtime=False)
    result = Pipeline(PipelineConfig(classify=False), sinks=[bad_sink]).run(src)
    assert result.stats.frames_processed == src.info.n_frames
    assert len(calls) == len(result.events)


def test_worker_crash_is_raised_not_hidden():
    p = Pipeline(PipelineConfig(classify=False))

    def boom(frame):
        raise ValueError("tracker exploded")

    p.chain.tracker.process = boom
    with pytest.raises(ValueError, match="tracker exploded"):
        p.run(DemoSource(seed=3, duration_s=2, realtime=False))


def test_ctrl_c_shuts_down_cleanly_with_events_flushed(tmp_path):
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime_me.cli", "--demo", "--no-classify", "--events", str(events)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.time() + 60
    while time.time() < deadline and not events.exists():
        time.sleep(0.2)
    time.sleep(4)  # paced at 30 fps: let a few seconds of the clip through
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err  # an interrupted run says so in its exit status
    assert "interrupted" in err and "frames in" in err
    for line in events.read_text().splitlines():  # every line written is complete JSON
        json.loads(line)
