"""The access key a demo reachable from other machines asks for.

On 127.0.0.1 only this machine's users reach the demo. Listening on a network address (or
through ``--share``'s public tunnel) reaches everyone who can route to it, so ``serve``
then prints a link carrying a random key and this middleware turns away every HTTP
request and WebSocket that presents neither that key (``?key=``) nor the cookie the first
keyed request sets. It sits in front of Gradio's routes, so ``/config``, the queue that
hands out session tokens, the file routes and the frame socket are all behind it.
"""
from __future__ import annotations

import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

COOKIE = "rtme_key"
DENIED = (b"this realtime-me demo needs its access key: open the link that "
          b"'realtime-me serve' printed (it ends in ?key=...)\n")


def new_key() -> str:
    return secrets.token_urlsafe(18)


class AccessKey:
    """Pure ASGI middleware (HTTP and WebSocket alike)."""

    def __init__(self, app, key: str) -> None:
        if not key:
            raise ValueError("empty access key")
        self.app = app
        self.key = key

    def _matches(self, value: str | None) -> bool:
        return value is not None and secrets.compare_digest(value.encode(), self.key.encode())

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        by_query = self._matches(query.get("key", [None])[0])
        by_cookie = self._matches(_cookie(scope, COOKIE))
        if by_cookie or (by_query and scope["type"] == "websocket"):
            return await self.app(scope, receive, send)
        if by_query:
            return await self.app(scope, receive, _setting_cookie(send, self.key))
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401, "reason": "access key required"})
            return
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        await send({"type": "http.response.body", "body": DENIED})


def _cookie(scope, name: str) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == b"cookie":
            jar = SimpleCookie()
            try:
                jar.load(v.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie header is no key
                return None
            if name in jar:
                return jar[name].value
    return None


def _setting_cookie(send, key: str):
    cookie = f"{COOKIE}={key}; HttpOnly; SameSite=Strict; Path=/".encode()

    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), (b"set-cookie", cookie)]}
        await send(message)

    return wrapped
