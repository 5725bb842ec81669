"""The browser demo behind ``realtime-me serve``: a Gradio app mounted on FastAPI beside
a WebSocket route that receives every webcam frame with its browser capture time.

``sessions`` holds one live pipeline per browser session, ``stream`` the frame-socket
protocol (messages, bounds, decoding), ``routes`` the socket route, ``access`` the access
key, ``app`` the Gradio page, ``views`` everything the page shows, ``capture.js`` the
page's capture script, ``client`` a raw client for tests and benchmarks.
"""
from .sessions import ServeConfig, SessionRegistry

__all__ = ["ServeConfig", "SessionRegistry", "build_app"]


def build_app(config: ServeConfig):
    """FastAPI app with the Gradio page at / and the frame socket at /rtme/ws (lazy: gradio is heavy)."""
    from .app import build_app as _build

    return _build(config)
