"""The browser demo's server side, without a browser: the frame socket, session isolation,
cleanup, the upload limit, video analysis and the ``serve`` command's options."""
import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("gradio")
from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

import gradio as gr  # noqa: E402
from realtime_me.cli import main  # noqa: E402
from realtime_me.pipeline import PipelineConfig  # noqa: E402
from realtime_me.errors import UserError  # noqa: E402
from realtime_me.web import ServeConfig, SessionRegistry, build_app  # noqa: E402
from realtime_me.web.sessions import ServerBusy  # noqa: E402
from realtime_me.web.stream import (CLOSE_UNKNOWN_SESSION, LinkStats, Stream, encode_frame,  # noqa: E402
                                    parse_frame)


def _image(w, h, value):
    img = np.full((h, w, 3), value, np.uint8)
    cv2.putText(img, "rtme", (10, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    return img


def _wait(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.fixture(scope="module")
def config():
    return ServeConfig(pipeline=PipelineConfig(classify=False), max_upload_mb=1.0, demo_duration_s=6.0)


@pytest.fixture(scope="module")
def app(config):
    app = build_app(config)
    with TestClient(app) as client:
        app.state.client = client
        yield app


# ------------------------------------------------------------------ the socket's handler
class _OnlyPush:
    """A pipeline that has nothing but ``push``: the receiving path may do nothing else."""

    def __init__(self):
        self.pushed = []

    def push(self, image, t=None, index=None):
        self.pushed.append((image.shape, t, index))
        return True


def test_frame_message_roundtrip_and_garbage():
    img = _image(64, 48, 90)
    header, out = parse_frame(encode_frame(img, 1234.5, 0.5, 17))
    assert (header.capture_ms, header.media_s, header.presented) == (1234.5, 0.5, 17)
    assert out.shape == img.shape and np.abs(out.astype(int) - img).mean() < 8
    assert parse_frame(b"short") == (None, None)
    h, bad = parse_frame(encode_frame(img, 0, 1.0, 1)[:20] + b"not a jpeg at all")
    assert h is not None and bad is None


def test_handler_only_decodes_and_enqueues_with_browser_times_and_gaps():
    pipe = _OnlyPush()
    stream = Stream(pipe, camera_fps=30.0, t_base=100.0)
    img = _image(64, 48, 40)
    for presented, media in [(5, 0.10), (6, 0.133), (9, 0.233), (9, 0.233), (10, 0.2)]:
        stream.on_frame(encode_frame(img, float("nan"), media, presented))
    assert not stream.on_frame(b"\x00" * 10)
    # decoded frames pushed with capture time (+ the session's base) and frame numbers from the browser
    assert pipe.pushed == [((48, 64, 3), 100.10, 0), ((48, 64, 3), 100.133, 1), ((48, 64, 3), 100.233, 4)]
    link = stream.link.to_dict()
    assert link["frames"] == 3 and link["gaps"] == 2 and link["out_of_order"] == 2 and link["rejected"] == 1


def test_link_latency_from_clock_offset():
    link = LinkStats(30.0)
    # browser clock = server clock + 5000 ms; a pong that took 2 ms round trip
    now = time.perf_counter()
    link.on_pong(sent_ms=now * 1e3 - 2.0, client_ms=now * 1e3 - 1.0 + 5000.0, now=now)
    assert link.offset_ms == pytest.approx(5000.0, abs=0.01)
    from realtime_me.web.stream import FrameHeader

    link.accept(FrameHeader(capture_ms=(now - 0.030) * 1e3 + 5000.0, media_s=1.0, presented=1), now)
    assert link.to_dict()["capture_to_server_ms_p50"] == pytest.approx(30.0, abs=0.5)


# ----------------------------------------------------------------- sessions over the socket
def _stream_frames(ws, img, n, start=0, step=1):
    for k in range(n):
        presented = start + k * step
        ws.send_bytes(encode_frame(img, float("nan"), presented / 30, presented))


def _ready(ws):
    while True:
        msg = ws.receive_json()
        if msg["type"] == "ready":
            return msg


def test_unknown_token_is_refused(app):
    with app.state.client.websocket_connect("/rtme/ws?token=not-a-session") as ws:
        with pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()
    assert e.value.code == CLOSE_UNKNOWN_SESSION


def test_two_sessions_never_mix_and_disconnect_stops_threads(app):
    reg, client = app.state.registry, app.state.client
    a, b = reg.open("hash-a"), reg.open("hash-b")
    assert a.token != b.token and reg.get(a.token) is a
    img_a, img_b = _image(160, 120, 30), _image(96, 72, 200)
    with client.websocket_connect(f"/rtme/ws?token={a.token}&fps=30") as wa, \
            client.websocket_connect(f"/rtme/ws?token={b.token}&fps=15") as wb:
        _ready(wa), _ready(wb)
        _stream_frames(wa, img_a, 12, start=1)
        _stream_frames(wb, img_b, 7, start=100, step=2)
        assert _wait(lambda: a.stream.pipeline.stats.frames_processed == 12
                     and b.stream.pipeline.stats.frames_processed == 7)
        sa, sb = a.stream.pipeline.snapshot(), b.stream.pipeline.snapshot()
        assert sa.frame.image.shape == (120, 160, 3) and sb.frame.image.shape == (72, 96, 3)
        assert abs(int(sa.frame.image[5, 5, 0]) - 30) < 10 and abs(int(sb.frame.image[5, 5, 0]) - 200) < 10
        assert a.stream.link.to_dict()["gaps"] == 0 and b.stream.link.to_dict()["gaps"] == 6
        assert a.stream.link.camera_fps == 30 and b.stream.link.camera_fps == 15
        assert a.stream.pipeline is not b.stream.pipeline
        pipe_a = a.stream.pipeline
        wa.close()
        # A's browser went away: its pipeline threads end, B keeps streaming
        assert _wait(lambda: not pipe_a.running)
        assert b.streaming
        _stream_frames(wb, img_b, 3, start=200)
        assert _wait(lambda: b.stream.pipeline.stats.frames_processed == 10)
        assert pipe_a.stats.frames_in == 12
        # B's page is closed (Gradio's unload): session closed, threads stopped, socket told why
        app.state.handlers.on_unload(gr.Request(session_hash="hash-b"))
        assert b.closed and reg.get(b.token) is None
        assert _wait(lambda: not b.stream.pipeline.running)
        msg = wb.receive()
        while msg["type"] != "websocket.close":
            msg = wb.receive()
        assert msg["code"] == CLOSE_UNKNOWN_SESSION and "reload the page" in msg["reason"]
    reg.close_hash("hash-a")
    assert not any(t.name.startswith("rtme-") and t.is_alive() for t in pipe_a._threads)


def test_live_panels_follow_their_own_session(app):
    reg, client, h = app.state.registry, app.state.client, app.state.handlers
    s = reg.open("hash-panels")
    other = reg.open("hash-idle")
    assert h.tick(other.token) == (gr.skip(),) * 3  # never streamed: nothing to show
    with client.websocket_connect(f"/rtme/ws?token={s.token}") as ws:
        _ready(ws)
        _stream_frames(ws, _image(120, 90, 60), 5, start=1)
        assert _wait(lambda: s.stream.pipeline.stats.frames_processed == 5)
        state, rows, stats = h.tick(s.token)
        assert "no face" in state and rows == []
        raw = json.loads(stats.split('data-raw="')[1].split('"')[0].replace("&quot;", '"'))
        assert raw["frames_in"] == 5 and raw["frames"] == 5
    with pytest.raises(gr.Error, match="reload the page"):
        h.analyse_demo("no-such-token")
    reg.close_hash("hash-panels")
    reg.close_hash("hash-idle")


# --------------------------------------------------------------------------- uploads
def test_upload_limit_rejects_oversized_file_with_clear_message(app, tmp_path):
    from gradio.utils import get_upload_folder

    uploads = Path(get_upload_folder()) / f"rtme-test-{tmp_path.name}"
    uploads.mkdir(parents=True, exist_ok=True)
    big = uploads / "big.mp4"
    big.write_bytes(b"\0" * (1024 * 1024 + 4096))
    try:
        # Gradio's upload route (what the page uses) refuses it outright...
        r = app.state.client.post("/gradio_api/upload", files={"files": ("big.mp4", big.read_bytes(), "video/mp4")})
        assert r.status_code == 413 and "maximum allowed size" in r.text
        # ...and the analysis handler says what the limit is if it is reached another way.
        s = app.state.registry.open("hash-upload")
        with pytest.raises(gr.Error) as e:
            app.state.handlers.analyse_upload(str(big), s.token, progress=lambda *a, **k: None)
        assert "1 MB upload limit" in str(e.value.message) and "big.mp4 is 1.0 MB" in str(e.value.message)
        not_video = uploads / "notes.mp4"
        not_video.write_text("this is not a video")
        with pytest.raises(gr.Error, match="cannot read video notes.mp4") as e:
            app.state.handlers.analyse_upload(str(not_video), s.token, progress=lambda *a, **k: None)
        assert str(uploads) not in str(e.value.message)   # the server's paths stay on the server
        # a file that was never uploaded is not analysed, whatever its name
        elsewhere = tmp_path / "clip.mp4"
        elsewhere.write_bytes(b"\0" * 10)
        with pytest.raises(gr.Error, match="not uploaded to this server"):
            app.state.handlers.analyse_upload(str(elsewhere), s.token, progress=lambda *a, **k: None)
    finally:
        shutil.rmtree(uploads, ignore_errors=True)
        app.state.registry.close_hash("hash-upload")


@pytest.mark.slow
def test_video_analysis_of_demo_clip_writes_table_and_files(app):
    s = app.state.registry.open("hash-video")
    seen = []
    summary, fig, rows, files = app.state.handlers.analyse_demo(s.token, progress=lambda *a, **k: seen.append(a))
    assert seen and seen[-1][0] > 0.5          # the progress bar moved
    assert "180 frames" in summary and "micro-expressions" in summary
    jsonl = [json.loads(line) for line in open(files[0], encoding="utf-8")]
    csv_lines = open(files[1], encoding="utf-8").read().splitlines()
    assert len(jsonl) == len(rows) == len(csv_lines) - 1
    assert [round(e["apex_s"], 2) for e in jsonl] == [r[0] for r in rows]
    for e in jsonl:
        assert e["onset_frame"] <= e["apex_frame"] <= e["offset_frame"] and e["kind"] in ("micro", "macro")
    assert fig.axes and fig.axes[0].get_xlabel() == "time (s)"
    folder = s.files_dir()
    app.state.registry.close_hash("hash-video")
    assert not folder.exists()  # result files go with the session


def test_settings_are_per_session_and_validated(app):
    reg, h = app.state.registry, app.state.handlers
    a, b = reg.open("hash-set-a"), reg.open("hash-set-b")
    msg = h.apply_settings(a.token, "onnxruntime", "medn", False, 2.0)
    assert "applied" in msg and a.settings.sensitivity == 2.0 and a.settings.backend == "onnxruntime"
    assert b.settings.sensitivity is None and b.settings.backend == "auto"
    with pytest.raises(gr.Error, match="unknown model"):
        h.apply_settings(a.token, "auto", "../../etc", True, 1.0)
    with pytest.raises(gr.Error, match="unknown backend"):
        h.apply_settings(a.token, "cuda-magic", "medn", True, 1.0)
    reg.close_hash("hash-set-a")
    reg.close_hash("hash-set-b")


def test_settings_never_change_a_running_pipeline_and_apply_at_the_next_start(app):
    reg, client, h = app.state.registry, app.state.client, app.state.handlers
    s = reg.open("hash-restart")
    h.apply_settings(s.token, "auto", "medn", False, 1.0)
    with client.websocket_connect(f"/rtme/ws?token={s.token}") as ws:
        _ready(ws)
        first = s.stream.pipeline
        assert first.spotter.sensitivity == 1.0
        ws.close()   # the browser stops the camera (leaving the block cancels the handler instead)
        assert _wait(lambda: not first.running)
    with client.websocket_connect(f"/rtme/ws?token={s.token}") as ws:
        _ready(ws)
        assert s.stream.pipeline is first          # same settings: the pipeline is reused
        assert "next time the camera starts" in h.apply_settings(s.token, "auto", "medn", False, 2.0)
        assert first.spotter.sensitivity == 1.0   # the running stream keeps its own
        ws.close()
        assert _wait(lambda: not first.running)
    with client.websocket_connect(f"/rtme/ws?token={s.token}") as ws:
        _ready(ws)
        # a new sensitivity starts the next stream on the same pipeline (no model reload)
        assert s.stream.pipeline is first and first.spotter.sensitivity == 2.0
        ws.close()
        assert _wait(lambda: not first.running)
    h.apply_settings(s.token, "onnxruntime", "medn", False, 2.0)
    with client.websocket_connect(f"/rtme/ws?token={s.token}") as ws:
        _ready(ws)
        assert s.stream.pipeline is not first and s.stream.pipeline.spotter.sensitivity == 2.0   # a new backend rebuilds
    reg.close_hash("hash-restart")


# --------------------------------------------------------------------------- the command
def test_serve_command_reports_bad_options(capsys):
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        assert main(["serve", "--port", str(busy.getsockname()[1])]) == 2
        assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    finally:
        busy.close()
    assert main(["serve", "--port", "0", "--max-upload-mb", "0"]) == 2
    assert "--max-upload-mb must be > 0" in capsys.readouterr().err


def test_serve_defaults_to_localhost():
    import argparse

    from realtime_me import serve

    p = argparse.ArgumentParser()
    serve.configure(p)
    args = p.parse_args([])
    assert args.host == "127.0.0.1" and not args.share and args.port == 7860


def test_serve_asks_for_a_key_whenever_others_can_reach_it():
    import argparse

    from realtime_me import serve

    p = argparse.ArgumentParser()
    serve.configure(p)
    assert serve.access_key(p.parse_args([]), "127.0.0.1") is None
    net, shared = serve.access_key(p.parse_args([]), "0.0.0.0"), serve.access_key(p.parse_args(["--share"]), "127.0.0.1")
    assert net and shared and net != shared and len(net) >= 20
    assert serve.access_key(p.parse_args(["--key", "my-own-key-1"]), "0.0.0.0") == "my-own-key-1"
    for bad in (["--max-sessions", "0"], ["--idle-timeout", "1"], ["--key", "short"], ["--key", "no spaces here"]):
        with pytest.raises(UserError):
            serve.check(p.parse_args(bad))


def test_reaper_closes_idle_sessions_but_not_working_ones():
    reg = SessionRegistry(ServeConfig(pipeline=PipelineConfig(classify=False), max_sessions=2, idle_timeout_s=60))
    a, b = reg.open("idle"), reg.open("working")
    with pytest.raises(ServerBusy, match="busy"):
        reg.open("third")
    with b.analysing():
        assert reg.reap(now=time.monotonic() + 61) == ["idle"]
    assert a.closed and not b.closed and reg.get(b.token) is b
    assert reg.open("third") is not None            # the freed slot is taken again
    reg.close_all()
