"""``realtime-me serve``: the browser demo (Gradio page + frame socket) on 127.0.0.1.

Browsers only give a page the camera on https:// or http://localhost, so the default
(127.0.0.1, open http://localhost:PORT) works on this machine; ``--share`` makes a public
https link through Gradio's tunnel, ``--host 0.0.0.0`` listens on the network (cameras then
need https in front). Both are opt-in, and both then require an access key: the printed
link carries it (``?key=``), and every request or socket without it is turned away.
"""
from __future__ import annotations

import argparse
import logging
import socket
import sys

from .errors import UserError
from .pipeline import PipelineConfig
from .run import add_model_options

log = logging.getLogger(__name__)


def configure(p: argparse.ArgumentParser) -> None:
    net = p.add_argument_group("server")
    net.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes the demo to the network)")
    net.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    net.add_argument("--share", action="store_true", help="also open a public https link via Gradio's share tunnel")
    net.add_argument("--max-upload-mb", type=float, default=200.0, help="largest video upload accepted (default 200 MB)")
    net.add_argument("--key", help="access key the demo asks of every client (default: none on 127.0.0.1; "
                                   "a random one, printed in the link, with --share or a network --host)")
    net.add_argument("--max-sessions", type=int, default=4,
                     help="browser sessions open at once; one more is told the server is busy (default 4)")
    net.add_argument("--idle-timeout", type=float, default=120.0, metavar="S",
                     help="close a session not heard from for S seconds while idle (default 120)")
    model = p.add_argument_group("model (each browser session may change these in Settings)")
    add_model_options(model)


def bind(host: str, port: int) -> socket.socket:
    """Bind before starting uvicorn so ``--port 0`` works and a busy port is a clear error."""
    try:
        sock = socket.create_server((host, port), reuse_port=False)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e} (try another --port, or --port 0)") from None
    return sock


def check(args: argparse.Namespace) -> None:
    if args.max_upload_mb <= 0:
        raise UserError(f"--max-upload-mb must be > 0, got {args.max_upload_mb}")
    if args.sensitivity is not None and not args.sensitivity > 0:
        raise UserError(f"--sensitivity must be > 0, got {args.sensitivity}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in 0..65535, got {args.port}")
    if not 1 <= args.max_sessions <= 64:
        raise UserError(f"--max-sessions must be in 1..64, got {args.max_sessions}")
    if not 5 <= args.idle_timeout <= 86400:
        raise UserError(f"--idle-timeout must be 5..86400 seconds, got {args.idle_timeout}")
    if args.key is not None and (len(args.key) < 8 or not all(c.isalnum() or c in "-_" for c in args.key)):
        raise UserError("--key must be at least 8 letters, digits, '-' or '_'")


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def access_key(args: argparse.Namespace, host: str) -> str | None:
    """The key clients must present: given, or made up when the demo is reachable from elsewhere."""
    if args.key:
        return args.key
    if args.share or not is_loopback(host):
        from .web.access import new_key

        return new_key()
    return None


def make_server(args: argparse.Namespace, key: str | None = None):
    """A uvicorn server for the demo app (not started) and the app."""
    import uvicorn

    from .web import ServeConfig, build_app
    from .web.stream import MAX_MESSAGE_BYTES

    cfg = ServeConfig(pipeline=PipelineConfig(classify=not args.no_classify, weights=args.weights,
                                              backend=args.backend, sensitivity=args.sensitivity,
                                              cache_dir=args.cache_dir),
                      max_upload_mb=args.max_upload_mb, max_sessions=args.max_sessions,
                      idle_timeout_s=args.idle_timeout, access_key=key)
    app = build_app(cfg)
    config = uvicorn.Config(app, log_level="warning", ws_max_size=MAX_MESSAGE_BYTES + 1024, timeout_graceful_shutdown=5)
    return uvicorn.Server(config), app


def _share(host: str, port: int) -> str | None:
    """A public https URL through Gradio's FRP tunnel (the same call ``Blocks.launch(share=True)`` makes)."""
    import secrets

    from gradio import networking

    try:
        return networking.setup_tunnel(local_host=host if host != "0.0.0.0" else "127.0.0.1", local_port=port,
                                       share_token=secrets.token_urlsafe(32), share_server_address=None,
                                       share_server_tls_certificate=None)
    except Exception as e:  # noqa: BLE001 - no internet, tunnel down: the local demo still runs
        print(f"could not open a share link ({e}); the demo is still available locally", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    check(args)
    sock = bind(args.host, args.port)
    try:
        host, port = sock.getsockname()[:2]
        key = access_key(args, host)
        server, _app = make_server(args, key)
        shown = "localhost" if host in ("127.0.0.1", "::1") else host
        suffix = f"/?key={key}" if key else ""
        print(f"realtime-me demo: http://{shown}:{port}{suffix}  (Ctrl-C to stop)", file=sys.stderr)
        if not is_loopback(host):
            print("note: listening beyond this machine; browsers allow the camera only over https or on localhost. "
                  "Only clients that present the key in this link get in.", file=sys.stderr)
        if args.share:
            url = _share(host, port)
            if url:
                print(f"public link: {url.replace('http://', 'https://', 1).rstrip('/')}{suffix}  "
                      "(anyone with the whole link can use the demo)", file=sys.stderr)
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
