"""The demo server attacked with raw HTTP and WebSocket clients on 127.0.0.1: no file it was
not given leaves it, its memory and threads stay bounded, malformed messages are counted and
the stream goes on, a keyed server lets nobody in without the key."""
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("gradio")
from websockets.exceptions import InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from realtime_me.web.client import ServerProcess as Server  # noqa: E402
from realtime_me.web.stream import (HEADER, MAX_FRAME_PIXELS, MAX_SOCKET_FPS, decode_bounded, encode_frame,  # noqa: E402
                                    jpeg_size, socket_fps)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    s = Server("--no-classify", "--max-sessions", "3", "--idle-timeout", "5", "--max-upload-mb", "1")
    yield s
    s.close()


def _token(server, session_hash, wait_s=30.0):
    """A session token, waiting for a slot (the cap is small, abandoned sessions are reaped)."""
    deadline = time.monotonic() + wait_s
    while (token := server.session_token(session_hash)) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert token is not None, "no session slot freed up"
    return token


def _ws(server, token, origin=None, fps=30):
    headers = {"Origin": origin} if origin else None
    return connect(f"ws://127.0.0.1:{server.port}/rtme/ws?token={token}&fps={fps}", additional_headers=headers,
                   open_timeout=30, max_size=None)


def _ready(ws):
    while True:
        msg = ws.recv(timeout=60)
        if isinstance(msg, str) and json.loads(msg)["type"] == "ready":
            return


def _face_jpeg(w, h):
    img = np.full((h, w, 3), 90, np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(w, h) // 3, (200, 180, 160), -1)
    return img


# ------------------------------------------------------------------------ files
def test_a_client_cannot_make_the_server_read_its_files(server, tmp_path):
    secret = tmp_path / "secret.mp4"
    secret.write_text("the server's own file")
    token = _token(server, "attacker-files")
    for path in (str(secret), "/etc/passwd", str(tmp_path / ".." / tmp_path.name / "secret.mp4")):
        m = server.call("analyse_upload", [{"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": "x.mp4"},
                                           token], "attacker-files")
        assert m.get("success") is False, m
        said = json.dumps(m)
        # refused before any copy, saying why (it echoes the client's own path, nothing of the server's)
        assert "not uploaded" in said and "the server's own file" not in said and "root:" not in said
    # nothing of it reached Gradio's cache, so no file route can hand it out
    from gradio.utils import get_upload_folder

    assert list(Path(get_upload_folder()).rglob("secret.mp4")) == []
    for route in (f"/gradio_api/file={secret}", "/gradio_api/file=/etc/passwd", f"/file={secret}"):
        r = server.http.get(route)
        assert r.status_code in (403, 404) and "the server's own file" not in r.text


def test_uploads_over_the_limit_are_refused_while_streaming(server):
    r = server.http.post("/gradio_api/upload", files={"files": ("big.mp4", b"\0" * (1024 * 1024 + 1), "video/mp4")})
    assert r.status_code == 413


def test_config_shows_no_object_reprs_or_addresses(server):
    text = server.http.get("/config").text
    assert "bound method" not in text and "object at 0x" not in text


# --------------------------------------------------------------------- sockets
def test_frame_socket_refuses_other_sites_pages(server):
    token = _token(server, "attacker-origin")
    with pytest.raises(InvalidStatus) as e:
        _ws(server, token, origin="http://evil.example")
    assert e.value.response.status_code == 403
    with _ws(server, token, origin=f"http://127.0.0.1:{server.port}") as ws:
        _ready(ws)


def test_malformed_messages_are_counted_and_the_stream_goes_on(server):
    token = _token(server, "attacker-junk")
    with _ws(server, token) as ws:
        _ready(ws)
        for junk in ("[1,2,3]", "null", '"text"', "{not json", '{"type": "pong", "s": "x", "c": null}',
                     '{"type": "client", "sent": "9" }', json.dumps({"type": "client", "width": "x" * 100000})):
            ws.send(junk)
        ws.send(b"\x00" * 40)
        ws.send(encode_frame(_face_jpeg(160, 120), float("nan"), 0.1, 1))
        ws.send('{"type": "client", "sent": 1, "width": 160}')
        # still open: a well-formed pong is answered by more pings, and frames still arrive
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = ws.recv(timeout=10)
            if isinstance(msg, bytes):
                break   # an annotated frame came back: the stream is alive after the junk
        else:
            pytest.fail("no annotated frame came back")


def test_huge_frames_are_decoded_small_and_memory_stays_bounded(server):
    token = _token(server, "attacker-big")
    jpeg = encode_frame(_face_jpeg(3000, 3000), 0.0, 0.0, 0, quality=50)[HEADER.size:]
    with _ws(server, token) as ws:
        _ready(ws)
        before = server.status()["VmRSS"]
        for k in range(70):
            ws.send(HEADER.pack(float("nan"), 0.05 * (k + 1), k + 1) + jpeg)
        time.sleep(3)
        grown_mb = (server.status()["VmRSS"] - before) / 1024
    # 70 frames of 9 MP would be 1.9 GB decoded; at most 640x480 each they fit in a 60-frame ring
    assert grown_mb < 300, grown_mb


# -------------------------------------------------------------------- sessions
def test_sessions_are_capped_and_abandoned_ones_reaped(server):
    base = server.status()["Threads"]
    hashes = [f"attacker-cap-{k}" for k in range(6)]
    tokens = [server.session_token(h) for h in hashes[:3]]
    # the slots may still hold the other tests' sessions: wait for the reaper to free them
    deadline = time.monotonic() + 30
    while None in tokens and time.monotonic() < deadline:
        time.sleep(1)
        tokens = [t or server.session_token(h) for t, h in zip(tokens, hashes[:3])]
    assert None not in tokens
    for t in tokens:   # each starts (and abandons) a live pipeline
        with _ws(server, t) as ws:
            _ready(ws)
    m = server.call("on_load", [], hashes[3])
    assert m.get("success") is False and "busy" in json.dumps(m)
    # nobody comes back: after the idle timeout the sessions are closed and their threads end
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.session_token(hashes[4]) is None:
        time.sleep(1)
    assert server.session_token(hashes[5]) is not None
    time.sleep(8)
    assert server.status()["Threads"] <= base + 4


def test_keyed_server_lets_nobody_in_without_the_key():
    s = Server("--no-classify", "--key", "rtme-test-key-123")
    try:
        assert s.key == "rtme-test-key-123"
        for route in ("/", "/config", "/gradio_api/info", "/gradio_api/upload"):
            r = s.http.get(route)
            assert r.status_code == 401 and "access key" in r.text
        with pytest.raises(InvalidStatus):
            connect(f"ws://127.0.0.1:{s.port}/rtme/ws?token=x", open_timeout=10)
        r = s.http.get("/", params={"key": "wrong-key-000"})
        assert r.status_code == 401
        r = s.http.get("/", params={"key": s.key})
        assert r.status_code == 200 and "rtme_key" in r.headers.get("set-cookie", "")
        # the cookie the keyed link set opens the rest of the app
        assert s.http.get("/config").status_code == 200
    finally:
        s.close()


# ------------------------------------------------------------------- unit level
def test_jpeg_size_and_bounded_decode():
    img = _face_jpeg(1200, 900)
    ok, buf = cv2.imencode(".jpg", img)
    assert jpeg_size(buf.tobytes()) == (1200, 900)
    assert jpeg_size(b"\xff\xd8\xff\xda\x00\x02") is None and jpeg_size(b"GIF89a") is None
    out = decode_bounded(buf.tobytes())
    assert out.shape[0] * out.shape[1] <= MAX_FRAME_PIXELS and out.shape[1] / out.shape[0] == pytest.approx(4 / 3, 0.01)
    small = decode_bounded(cv2.imencode(".jpg", _face_jpeg(320, 240))[1].tobytes())
    assert small.shape == (240, 320, 3)
    ok, png = cv2.imencode(".png", img)
    assert decode_bounded(png.tobytes()) is None


def test_socket_fps_outside_its_bounds_is_not_taken():
    # the session's frame ring is sized from it: an absurd rate must not size it
    asked = (None, "15", str(MAX_SOCKET_FPS), "abc", "nan", "inf", "0", "-5", "1e9")
    assert [socket_fps(x) for x in asked] == [30.0, 15.0, MAX_SOCKET_FPS] + [30.0] * 6
