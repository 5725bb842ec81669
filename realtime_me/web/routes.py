"""The frame socket's route, ``/rtme/ws?token=...&fps=...``: one live run of the token's
session per connection.

It refuses other sites' pages (``Origin``) and unknown tokens, starts the session's live
stream, feeds every message to it (``stream.Stream``: the protocol), and sends back what
``views.live_view`` builds (the annotated frame, the motion chart) and clock pings, until
the browser leaves or the stream is ended from elsewhere (camera restarted, session closed).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import views
from .stream import CLOSE_FAILED, CLOSE_FORBIDDEN_ORIGIN, CLOSE_SUPERSEDED, CLOSE_UNKNOWN_SESSION, Stream, socket_fps

if TYPE_CHECKING:
    from fastapi import WebSocket

    from .sessions import LiveSession, SessionRegistry

log = logging.getLogger(__name__)


def same_origin(origin: str | None, host: str | None) -> bool:
    """A browser always sends ``Origin`` on a WebSocket: another site's page (cross-site
    WebSocket hijacking) names its own. Clients that send none are not browsers."""
    if origin is None:
        return True
    return bool(host) and urlsplit(origin).netloc.lower() == host.lower()


async def frame_socket(ws: "WebSocket", registry: "SessionRegistry") -> None:
    """Serve one connection: refuse, or stream until either side ends it."""
    if not same_origin(ws.headers.get("origin"), ws.headers.get("host")):
        await ws.close(CLOSE_FORBIDDEN_ORIGIN, "frames are accepted only from this server's own page")
        return
    await ws.accept()
    session = registry.get(ws.query_params.get("token", ""))
    if session is None:
        await ws.close(CLOSE_UNKNOWN_SESSION, "unknown or expired session: reload the page")
        return
    fps = socket_fps(ws.query_params.get("fps"))
    await ws.send_json({"type": "status", "message": "loading the face tracker and model..."})
    try:
        stream = await asyncio.to_thread(session.start_stream, fps)
    except Exception as e:  # noqa: BLE001 - reported to the page, the server keeps running
        log.exception("cannot start the live pipeline")
        await ws.close(CLOSE_FAILED, f"cannot start the pipeline: {e}"[:120])
        return
    await ws.send_json({"type": "ready", "fps": fps, "note": session.note})
    await _serve(ws, session, stream)


async def _serve(ws: "WebSocket", session: "LiveSession", stream: Stream) -> None:
    """Receive until the browser leaves or the stream is ended; then stop the stream."""
    from starlette.websockets import WebSocketDisconnect

    loop = asyncio.get_running_loop()
    ended = asyncio.Event()
    stream.on_end = lambda: loop.call_soon_threadsafe(ended.set)
    tasks = [asyncio.create_task(_send_views(ws, session, stream)), asyncio.create_task(_ping(ws)),
             asyncio.create_task(_close_when_ended(ws, session, ended))]
    try:
        while not stream.superseded:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                break
            if msg.get("bytes") is not None:
                stream.on_frame(msg["bytes"])
            elif msg.get("text") is not None:
                stream.on_control(msg["text"])
    except (WebSocketDisconnect, RuntimeError):
        pass  # the browser left, or the socket was closed by _close_when_ended
    finally:
        stream.on_end = None
        for t in tasks:
            t.cancel()
        await asyncio.to_thread(session.stop_stream, stream)
        try:
            await ws.close(1000, "stopped")
        except Exception:  # noqa: BLE001 - already closed
            pass


async def _close_when_ended(ws: "WebSocket", session: "LiveSession", ended: asyncio.Event) -> None:
    """Close the socket, saying why, when the stream is ended from elsewhere."""
    await ended.wait()
    code, reason = ((CLOSE_UNKNOWN_SESSION, "session closed: reload the page") if session.closed
                    else (CLOSE_SUPERSEDED, "the camera was started again in this session"))
    try:
        await ws.close(code, reason)
    except Exception:  # noqa: BLE001 - already closed
        pass


async def _ping(ws: "WebSocket") -> None:
    """A burst of pings to find the clock offset quickly, then one every few seconds."""
    for k in itertools.count():
        await ws.send_json({"type": "ping", "s": time.perf_counter() * 1e3})
        await asyncio.sleep(0.2 if k < 8 else 3.0)


def _live_view(stream: Stream, last_index: int | None, with_chart: bool) -> views.LiveView:
    """One snapshot of the stream's pipeline, as the socket sends it (stats left out: their
    percentiles cost milliseconds, too much a dozen times a second)."""
    snap = stream.pipeline.snapshot(stats=False)
    return views.live_view(snap, stream.stream_time, stream.link.fps(), last_index, with_chart)


async def _send_views(ws: "WebSocket", session: "LiveSession", stream: Stream) -> None:
    """Push the annotated last processed frame (skipped when nothing new was processed) and,
    a few times a second, the motion chart's data."""
    cfg = session.config
    period = 1.0 / max(1.0, cfg.overlay_fps)
    chart_every = max(1, round(cfg.overlay_fps / max(0.5, cfg.chart_fps)))
    last_index = None
    for k in itertools.count():
        await asyncio.sleep(period)
        view = await asyncio.to_thread(_live_view, stream, last_index, k % chart_every == 0)
        last_index = view.index
        if view.jpeg is not None:
            await ws.send_bytes(view.jpeg)
        if view.chart is not None:
            await ws.send_json(view.chart)
