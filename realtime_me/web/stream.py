"""The frame-socket protocol: what the page's capture script sends, its bounds, its
decoding, and one connection's bookkeeping (``Stream``). The route that serves it is
``routes.frame_socket``.

Gradio's own webcam streaming sends about 2 frames a second with no capture time, so the page
runs a small capture script instead (``capture.js``): on each ``requestVideoFrameCallback`` it
encodes the frame as JPEG and sends one binary message

    <float64 captureTime ms (browser clock, NaN if unknown)> <float64 mediaTime s> <uint32 presentedFrames> JPEG

(little-endian) on a WebSocket opened with the session's token. The receiving side only
decodes and pushes into the pipeline (which never blocks a live source); gaps in
``presentedFrames`` count frames the browser showed but did not send. Text messages carry
control: ``pong`` replies to the server's ``ping`` estimate the browser-server clock offset,
so capture -> server latency is measured per frame; ``client`` reports the page's own counters.
Server -> browser: JSON status messages, the annotated frame as JPEG a dozen times a second,
and the motion chart's data a few times a second (both built by ``views.live_view``).
"""
from __future__ import annotations

import json
import math
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import cv2
import numpy as np

if TYPE_CHECKING:
    from ..pipeline import Pipeline

HEADER = struct.Struct("<ddI")
#: a 640x480 JPEG is ~50 KB; anything this big is not a webcam frame
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
#: frames are decoded at most this large (JPEG's own 1/2, 1/4, 1/8 reduced decode, then a
#: resize): the page sends 640x480, and a session's ring holds seconds of frames, so the
#: decoded size is what bounds a session's memory whatever a client sends
MAX_FRAME_PIXELS = 640 * 480
#: a frame needing more than JPEG's 1/8 reduction to fit (over ~20 MP) is refused undecoded
MAX_JPEG_PIXELS = MAX_FRAME_PIXELS * 64
#: the frame rates a socket may ask for (the ring's size follows it)
MAX_SOCKET_FPS = 120.0
#: WebSocket close codes the page explains to the user
CLOSE_UNKNOWN_SESSION = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_SUPERSEDED = 4409
CLOSE_FAILED = 4500


@dataclass(frozen=True)
class FrameHeader:
    capture_ms: float   # browser performance.now() clock; NaN when the browser does not say
    media_s: float      # seconds since the camera track started (monotonic per stream)
    presented: int      # the browser's presented-frame counter


def jpeg_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, without decoding; None if not a JPEG.

    Walks the marker segments to the first SOFn (baseline, progressive, ...), so the size of
    a frame is known before a single pixel is allocated."""
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    i = 2
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:           # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:   # segments without a length
            i += 2
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        if length < 2:
            return None
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            if i + 9 > n:
                return None
            h, w = (data[i + 5] << 8) | data[i + 6], (data[i + 7] << 8) | data[i + 8]
            return (w, h) if w and h else None
        if marker == 0xDA:           # scan data before any frame header
            return None
        i += 2 + length
    return None


_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


def decode_bounded(jpeg: bytes | memoryview, max_pixels: int = MAX_FRAME_PIXELS) -> np.ndarray | None:
    """A BGR image of at most ``max_pixels``; None for anything but a JPEG of sane size."""
    size = jpeg_size(jpeg)
    if size is None or size[0] * size[1] > max_pixels * 64:
        return None
    area = size[0] * size[1]
    factor = next(f for f in (1, 2, 4, 8) if area / (f * f) <= max_pixels or f == 8)
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), _REDUCED[factor])
    if image is None:
        return None
    h, w = image.shape[:2]
    if h * w > max_pixels:
        scale = math.sqrt(max_pixels / (h * w))
        image = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    return image


def parse_frame(data: bytes, max_pixels: int = MAX_FRAME_PIXELS) -> tuple[FrameHeader | None, np.ndarray | None]:
    """(header, BGR image); None for a part that is malformed, not a JPEG, or absurdly large.
    Larger frames come back scaled down to ``max_pixels``."""
    if len(data) <= HEADER.size or len(data) > MAX_MESSAGE_BYTES:
        return None, None
    capture_ms, media_s, presented = HEADER.unpack_from(data)
    header = FrameHeader(capture_ms, media_s, presented) if math.isfinite(media_s) else None
    return header, decode_bounded(memoryview(data)[HEADER.size:], max_pixels)


def socket_fps(text: str | None, default: float = 30.0) -> float:
    """The frame rate a socket asks for (``?fps=``); ``default`` for anything outside
    1..``MAX_SOCKET_FPS``, since the session's ring is sized from it."""
    try:
        fps = float(text) if text is not None else default
    except ValueError:
        return default
    return fps if math.isfinite(fps) and 1 <= fps <= MAX_SOCKET_FPS else default


def encode_frame(image: np.ndarray, capture_ms: float, media_s: float, presented: int, quality: int = 85) -> bytes:
    """The message the page sends (used by tests and tools that speak the protocol)."""
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("cannot encode frame")
    return HEADER.pack(capture_ms, media_s, presented) + jpeg.tobytes()


class LinkStats:
    """What the socket delivered: frames, browser-side gaps, capture -> server latency."""

    def __init__(self, camera_fps: float) -> None:
        self.camera_fps = camera_fps
        self.frames = 0
        self.bytes = 0
        self.rejected = 0          # malformed / undecodable
        self.out_of_order = 0      # media time not increasing
        self.gaps = 0              # frames the browser presented but never sent
        self.first_presented: int | None = None
        self.last_presented: int | None = None
        self.first_media: float | None = None
        self.last_media: float | None = None
        self.opened = time.perf_counter()
        self.arrivals: deque[float] = deque(maxlen=91)
        self.latency_ms: deque[float] = deque(maxlen=300)
        self.offset_ms: float | None = None    # browser clock minus server clock
        self.best_rtt_ms = math.inf
        self.client: dict = {}

    def accept(self, h: FrameHeader, now: float) -> bool:
        """Book a frame; False if it goes back in time (it is then not pushed)."""
        if self.last_media is not None and h.media_s <= self.last_media:
            self.out_of_order += 1
            return False
        if self.last_presented is not None and h.presented > self.last_presented + 1:
            self.gaps += h.presented - self.last_presented - 1
        if self.first_presented is None:
            self.first_presented, self.first_media = h.presented, h.media_s
        self.last_presented, self.last_media = h.presented, h.media_s
        self.frames += 1
        self.arrivals.append(now)
        if self.offset_ms is not None and math.isfinite(h.capture_ms):
            self.latency_ms.append(now * 1e3 - (h.capture_ms - self.offset_ms))
        return True

    def on_pong(self, sent_ms: float, client_ms: float, now: float) -> None:
        """NTP-style offset from the lowest round trip seen (the least queued one)."""
        rtt = now * 1e3 - sent_ms
        if 0 <= rtt <= self.best_rtt_ms:
            self.best_rtt_ms = rtt
            self.offset_ms = client_ms - (sent_ms + rtt / 2)

    def index_of(self, h: FrameHeader) -> int:
        return h.presented - (self.first_presented or 0)

    @property
    def elapsed_s(self) -> float:
        """Stream time covered, first to last frame (browser clock)."""
        return 0.0 if self.first_media is None else self.last_media - self.first_media

    def fps(self) -> float:
        """Frames received per second over the last ~3 s."""
        a = self.arrivals
        return (len(a) - 1) / (a[-1] - a[0]) if len(a) > 2 and a[-1] > a[0] else 0.0

    def to_dict(self) -> dict:
        fps = self.fps()
        expected = self.elapsed_s * self.camera_fps + 1 if self.frames else 0
        lat = np.fromiter(self.latency_ms, dtype=np.float64)
        return {
            "frames": self.frames,
            "fps_received": round(fps, 1),
            "camera_fps": self.camera_fps,
            "elapsed_s": round(self.elapsed_s, 2),
            "delivery": round(min(1.0, self.frames / expected), 3) if expected else None,
            "gaps": self.gaps,
            "rejected": self.rejected,
            "out_of_order": self.out_of_order,
            "mbit_s": round(self.bytes * 8 / 1e6 / max(1e-3, time.perf_counter() - self.opened), 2),
            "capture_to_server_ms_p50": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
            "capture_to_server_ms_p95": round(float(np.percentile(lat, 95)), 1) if lat.size else None,
            "clock_rtt_ms": None if math.isinf(self.best_rtt_ms) else round(self.best_rtt_ms, 1),
            "client": dict(self.client),
        }


#: what the page reports of itself (numbers only: nothing a client sends is kept unbounded)
CLIENT_COUNTERS = ("skipped", "sent", "encode_ms", "width", "height")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Stream:
    """One socket connection's run of the session's pipeline."""

    def __init__(self, pipeline: "Pipeline", camera_fps: float, t_base: float) -> None:
        self.pipeline = pipeline
        self.link = LinkStats(camera_fps)
        #: added to the browser's media time so pipeline time never goes back across restarts
        self.t_base = t_base
        self.superseded = False
        #: set by the route that serves this stream: closes its socket, callable from any thread
        self.on_end: Callable[[], None] | None = None

    def end(self) -> None:
        """Stop this stream from outside the socket (camera restarted, session closed)."""
        self.superseded = True
        if self.on_end is not None:
            self.on_end()

    def on_frame(self, data: bytes) -> bool:
        """Decode and enqueue; nothing else happens on the receiving path."""
        self.link.bytes += len(data)
        header, image = parse_frame(data)
        if header is None or image is None:
            self.link.rejected += 1
            return False
        if not self.link.accept(header, time.perf_counter()):
            return False
        return self.pipeline.push(image, t=self.t_base + header.media_s, index=self.link.index_of(header))

    def on_control(self, text: str) -> bool:
        """A text message: JSON ``pong`` or ``client``. Anything else is counted as rejected
        and the stream goes on."""
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            self.link.rejected += 1
            return False
        kind = msg.get("type")
        if kind == "pong" and _finite(msg.get("s")) and _finite(msg.get("c")):
            self.link.on_pong(float(msg["s"]), float(msg["c"]), time.perf_counter())
        elif kind == "client":
            self.link.client = {k: float(msg[k]) for k in CLIENT_COUNTERS if _finite(msg.get(k))}
        else:
            self.link.rejected += 1
            return False
        return True

    def stream_time(self, t: float) -> float:
        """Pipeline time -> seconds since this camera track started (what the page shows)."""
        return t - self.t_base
