"""The browser demo behind ``realtime-me serve``: a Gradio app mounted on FastAPI beside
a WebSocket route that receives every webcam frame with its browser capture time.

``sessions`` holds one live pipeline per browser session, ``stream`` the frame socket,
``app`` the Gradio page, ``views`` its plots and tables, ``capture.js`` the page's
capture script, ``harness`` the headless-Chromium driver used by the tests and benchmark.
"""
from .sessions import ServeConfig, SessionRegistry

__all__ = ["ServeConfig", "SessionRegistry", "build_app"]


def build_app(config: ServeConfig):
    """FastAPI app with the Gradio page at / and the frame socket at /rtme/ws (lazy: gradio is heavy)."""
    from .app import build_app as _build

    return _build(config)
