"""The Gradio page: Live (webcam), Video (upload or demo clip) and Settings tabs.

Frames do not travel through Gradio: the page's capture script sends them on the frame
socket (``routes.frame_socket``, speaking ``stream``'s protocol) mounted beside the app on
the same FastAPI server. Gradio carries
everything else: the session token (on page load), the live panels (a ``gr.Timer`` a
couple of times a second), video analysis with a progress bar, settings, and the
session's cleanup when the browser goes away (``unload``, plus the state's delete callback).
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from fastapi import FastAPI, WebSocket

from ..errors import UserError
from ..run import truth_report
from ..sources import DemoSource, Source, VideoSource
from . import views
from .access import AccessKey
from .routes import frame_socket
from .sessions import BACKENDS, LiveSession, ServeConfig, ServerBusy, SessionRegistry

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
VIDEO_TYPES = [".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".y4m"]

LIVE_VIEW = """
<div class="rtme-live">
  <div class="rtme-views">
    <figure class="rtme-main"><canvas id="rtme-annotated" width="640" height="480"></canvas>
      <figcaption>what the pipeline sees: landmarks, motion bar, last event (not mirrored)</figcaption></figure>
    <figure class="rtme-side"><video id="rtme-preview" muted playsinline></video>
      <figcaption>camera preview (mirrored, like a mirror)</figcaption></figure>
  </div>
  <div id="rtme-status" class="rtme-status" data-kind="info">camera off</div>
  <div class="rtme-chart-box">
    <div class="rtme-chart-title">motion per region, last 10 s (1 = threshold; orange: spotted ME, grey: macro-expression)</div>
    <canvas id="rtme-chart"></canvas>
    <div id="rtme-legend" class="rtme-legend"></div>
  </div>
</div>
"""


def too_big_message(name: str, size: int, limit_mb: float) -> str:
    return (f"{name} is {size / 2**20:.1f} MB, larger than this server's {limit_mb:g} MB upload limit: "
            f"trim or re-encode the video (or start the server with --max-upload-mb N)")


@dataclass
class _ViewState:
    """What a session's page already shows, so a tick only sends what changed."""

    events_key: tuple | None = None
    idle_rendered: bool = False


class DemoApp:
    """The page's handlers, bound to the registry that owns the sessions."""

    def __init__(self, config: ServeConfig, registry: SessionRegistry) -> None:
        self.config = config
        self.registry = registry

    def session(self, token: str | None) -> LiveSession:
        s = self.registry.get(token)
        if s is None:
            raise gr.Error("this page's session has ended (server restarted or tab idle too long): reload the page")
        return s

    # ---------------------------------------------------------------- lifecycle
    def on_load(self, request: gr.Request):
        try:
            s = self.registry.open(request.session_hash)
        except ServerBusy as e:
            raise gr.Error(str(e)) from None
        return s.token, s.token

    def on_unload(self, request: gr.Request) -> None:
        self.registry.close_hash(request.session_hash)

    # --------------------------------------------------------------------- live
    def tick(self, token: str | None):
        """Live panels: current state, event log, delivery and latency (the annotated frame and
        the motion chart come over the frame socket). Only what changed is sent: on a machine
        that also runs the browser, page re-renders cost camera frames."""
        s = self.registry.get(token)
        if s is None or s.stream is None:
            return (gr.skip(),) * 3
        streaming = s.streaming
        if s.view is None:
            s.view = _ViewState()  # lives and dies with the session
        view = s.view
        if not streaming and view.idle_rendered:
            return (gr.skip(),) * 3  # nothing changes once a stopped stream has been shown
        view.idle_rendered = not streaming
        stream = s.stream
        snap = stream.pipeline.snapshot()
        time_of = stream.stream_time
        events_key = (id(stream), len(snap.events), id(snap.events[-1]) if snap.events else None)
        table = gr.skip()
        if events_key != view.events_key:
            view.events_key = events_key
            table = views.event_rows(snap.events, time_of)
        return (views.state_html(snap, streaming, time_of), table,
                views.stats_html(snap, stream.link.to_dict(), s.note))

    # -------------------------------------------------------------------- video
    def analyse_upload(self, path: str | None, token: str | None, progress=gr.Progress()):
        s = self.session(token)
        if not path:
            raise gr.Error("choose a video file first, or analyse the demo clip")
        name = Path(path).name
        if not uploaded_file(path):
            log.warning("refused a video path that was not uploaded to this server: %s", path)
            raise gr.Error(f"{name} was not uploaded to this server: choose the file again")
        size = os.path.getsize(path)
        if size > self.config.max_upload_bytes:
            raise gr.Error(too_big_message(name, size, self.config.max_upload_mb))
        try:
            source = VideoSource(path, realtime=False)
        except UserError:
            raise gr.Error(f"cannot read video {name}: not a video this server can decode, "
                           "or it is empty or corrupt") from None
        return self._analyse(s, source, name, progress)

    def analyse_demo(self, token: str | None, progress=gr.Progress()):
        s = self.session(token)
        progress(0, desc="rendering the demo clip")
        source = DemoSource(seed=self.config.demo_seed, duration_s=self.config.demo_duration_s, realtime=False)
        return self._analyse(s, source, f"demo clip (seed {self.config.demo_seed})", progress)

    def _analyse(self, s: LiveSession, source: Source, name: str, progress):
        total = source.info.n_frames or 0
        p = s.offline_pipeline()
        done = [0]

        def tick() -> bool:
            if total:
                progress(min(1.0, done[0] / total), desc=f"analysing {name}: frame {done[0]} of {total}")
            return not s.closed

        t0 = time.perf_counter()
        with source, s.analysing():
            result = p.run(source, progress=lambda n: done.__setitem__(0, n), tick=tick, tick_every=0.25,
                           sensitivity=s.sensitivity)
        wall = time.perf_counter() - t0
        truth = getattr(source, "truth", None)
        jsonl, csv_path = views.write_results(result.events, s.files_dir(), _stem(name))
        summary = views.analysis_summary(name, result, wall, s.note, truth_report(source, result) if truth else "")
        return (summary, views.timeline_figure(p.snapshot(), result.events, truth["events"] if truth else None),
                views.event_rows(result.events, newest_first=False), [str(jsonl), str(csv_path)])

    # ----------------------------------------------------------------- settings
    def apply_settings(self, token, backend, model, classify, sensitivity):
        s = self.session(token)
        try:
            how = s.apply_settings(backend, model, bool(classify), float(sensitivity))
        except UserError as e:
            raise gr.Error(str(e)) from None
        cfg = s.settings
        return (f"Settings {how}: backend **{cfg.backend}**, model **{model}**, "
                f"{'classifying' if cfg.classify else 'spotting only'}, sensitivity **{cfg.sensitivity:g}**.")


def uploaded_file(path: str) -> bool:
    """A regular file inside Gradio's upload folder: the only files a client may hand an
    event. Gradio checks this too (once ``has_launched`` is set); this is the app's own word."""
    from gradio.utils import get_upload_folder

    try:
        real = Path(path).resolve(strict=True)
        return real.is_file() and real.is_relative_to(Path(get_upload_folder()).resolve())
    except (OSError, RuntimeError, ValueError):
        return False


def _stem(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(name).stem)
    return f"{keep[:40] or 'video'}_events"


def build_blocks(config: ServeConfig, registry: SessionRegistry) -> tuple[gr.Blocks, DemoApp]:
    from ..spotting import DEFAULT_SENSITIVITY

    h = DemoApp(config, registry)
    models = list(config.model_choices())
    with gr.Blocks(title="realtime-me", delete_cache=(1800, 3600), analytics_enabled=False) as demo:
        token_box = gr.Textbox(visible="hidden", elem_id="rtme-token")
        token = gr.State(None)  # sessions end on unload or when the registry reaps them
        gr.Markdown("# realtime-me\nMicro-expression spotting and recognition, live from your webcam or from a video.")
        with gr.Tabs():
            with gr.Tab("Live", id="live"):
                with gr.Row():
                    start = gr.Button("Start camera", variant="primary", elem_id="rtme-start")
                    stop = gr.Button("Stop", elem_id="rtme-stop")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        gr.HTML(LIVE_VIEW, js_on_load=None, elem_id="rtme-live-view")
                    with gr.Column(scale=2):
                        state = gr.HTML(views.state_html({}, False, float), elem_id="rtme-state")
                        stats = gr.HTML(views.stats_html({}, None), elem_id="rtme-stats")
                log_table = gr.Dataframe(headers=views.EVENT_HEADERS, label="event log (newest first)",
                                         interactive=False, elem_id="rtme-events", max_height=320, wrap=True)
            with gr.Tab("Video", id="video"):
                with gr.Row():
                    upload = gr.File(label=f"video file (up to {config.max_upload_mb:g} MB)", file_types=VIDEO_TYPES,
                                     elem_id="rtme-upload", height=140)
                    with gr.Column():
                        run_upload = gr.Button("Analyse the uploaded video", variant="primary", elem_id="rtme-analyse")
                        run_demo = gr.Button("Analyse the built-in demo clip", elem_id="rtme-analyse-demo")
                summary = gr.Markdown(elem_id="rtme-summary")
                timeline = gr.Plot(label="motion over the whole video (orange: spotted ME, grey: macro, green: truth)",
                                   elem_id="rtme-timeline", format="png")
                table = gr.Dataframe(headers=views.EVENT_HEADERS, label="events", interactive=False,
                                     elem_id="rtme-video-events", max_height=400, wrap=True)
                files = gr.File(label="download: JSONL (one event per line) and CSV", file_count="multiple",
                                interactive=False, elem_id="rtme-files")
            with gr.Tab("Settings", id="settings"):
                cfg = config.pipeline
                backend = gr.Dropdown(list(BACKENDS), value=cfg.backend, label="inference backend",
                                      info="auto picks the fastest one installed")
                model = gr.Dropdown(models, value=config.model_name(cfg.weights), label="model (weights folder)")
                classify = gr.Checkbox(value=cfg.classify, label="classify emotions (off: spot only)")
                sensitivity = gr.Slider(0.25, 4.0, value=cfg.sensitivity or DEFAULT_SENSITIVITY, step=0.05,
                                        label="spotting sensitivity",
                                        info="higher finds smaller movements, and more false alarms")
                apply = gr.Button("Apply")
                applied = gr.Markdown()
        timer = gr.Timer(config.refresh_s)

        demo.load(h.on_load, outputs=[token_box, token], show_progress="hidden")
        demo.unload(h.on_unload)
        start.click(None, inputs=[token_box], js="(tok) => { window.rtme.start(tok); return []; }")
        stop.click(None, js="() => { window.rtme.stop(); return []; }")
        timer.tick(h.tick, inputs=[token], outputs=[state, log_table, stats], show_progress="hidden",
                   concurrency_limit=None, queue=True)
        run_upload.click(h.analyse_upload, inputs=[upload, token], outputs=[summary, timeline, table, files],
                         concurrency_limit=1, concurrency_id="analyse")
        run_demo.click(h.analyse_demo, inputs=[token], outputs=[summary, timeline, table, files],
                       concurrency_limit=1, concurrency_id="analyse")
        apply.click(h.apply_settings, inputs=[token, backend, model, classify, sensitivity], outputs=[applied])
    # a bounded queue: past it a client is told the queue is full, the server's memory stays put
    demo.queue(max_size=config.queue_size)
    return demo, h


def build_app(config: ServeConfig) -> FastAPI:
    """FastAPI app: the frame socket at /rtme/ws, the Gradio page at /. ``app.state.registry``
    holds the sessions (tests look at it)."""
    registry = SessionRegistry(config)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        registry.start_reaper()
        yield
        registry.close_all()

    app = FastAPI(lifespan=lifespan)

    @app.websocket("/rtme/ws")
    async def _frames(ws: WebSocket) -> None:
        await frame_socket(ws, registry)

    demo, handlers = build_blocks(config, registry)
    js = (HERE / "capture.js").read_text(encoding="utf-8")
    css = (HERE / "style.css").read_text(encoding="utf-8")
    app = gr.mount_gradio_app(app, demo, path="/", max_file_size=config.max_upload_bytes,
                              head=f"<script>{js}</script>", css=css, footer_links=["gradio"],
                              run_history=False, ssr_mode=False)
    # Gradio checks that a file handed to an event was uploaded through its upload route
    # only once the Blocks has "launched"; a mounted app never calls launch(), so without
    # this any path a client names is copied into the cache and served back.
    demo.has_launched = True
    if config.access_key:
        app.add_middleware(AccessKey, key=config.access_key)
    app.state.registry = registry
    app.state.handlers = handlers
    return app
