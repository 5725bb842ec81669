"""One pipeline per browser session, and the registry that ties sessions to socket tokens.

When the page loads, Gradio's load event opens a ``LiveSession`` for the browser's
session hash and hands the page a random token; the capture script presents that token
when it opens the frame socket, so frames only ever reach the pipeline of the session
that owns the page. A session ends when the browser goes away (Gradio's unload event,
the session state's delete callback, or server shutdown): its streams stop, its
pipelines' threads end and its result files are deleted.

A client that never says goodbye (an API script, a crashed tab) is reaped: a session that
has not been heard from for ``idle_timeout_s`` and is neither streaming nor analysing is
closed. At most ``max_sessions`` are open at once; one more is told the server is busy.
So a server's threads and memory are bounded by ``max_sessions`` whatever clients do.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..engines import BACKENDS, DEFAULT_WEIGHTS
from ..pipeline import Pipeline, PipelineConfig
from .stream import Stream

log = logging.getLogger(__name__)

#: motion an uploaded video's pipeline keeps: its whole timeline for the plot, up to an hour
OFFLINE_MOTION_S = 3600.0


@dataclass
class ServeConfig:
    """Server-wide settings; each session starts from ``pipeline`` and may change it."""

    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    max_upload_mb: float = 200.0
    models_dir: Path = DEFAULT_WEIGHTS.parent
    refresh_s: float = 0.5       # live state / log / stats refresh (Gradio timer)
    overlay_fps: float = 12.0    # annotated frames sent back on the frame socket
    chart_fps: float = 4.0       # motion chart updates sent on the frame socket
    demo_seed: int = 7
    demo_duration_s: float = 20.0
    max_sessions: int = 4        # open browser sessions (each may hold two pipelines)
    idle_timeout_s: float = 120.0  # a session not heard from this long (and idle) is closed
    access_key: str | None = None  # when set, every request must present it (see web.access)
    queue_size: int = 64         # Gradio events waiting at once, all clients together

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def model_choices(self) -> dict[str, str]:
        """Model folders a browser may pick: the shipped default, the folders under ``models_dir``
        and the server's ``--weights``. A closed list, so a page (possibly shared publicly)
        cannot point the server at arbitrary paths."""
        out = {DEFAULT_WEIGHTS.name: str(DEFAULT_WEIGHTS)}
        root = Path(self.models_dir)
        if root.is_dir():
            for d in sorted(p for p in root.iterdir() if p.is_dir()):
                if (d / "model.json").exists() or (d / "model.safetensors").exists():
                    out.setdefault(d.name, str(d))
        if self.pipeline.weights:
            w = Path(self.pipeline.weights)
            name = w.name if out.get(w.name, str(w)) == str(w) else str(w)
            out[name] = str(w)
        return out

    def model_name(self, weights: str | None) -> str:
        """The choice that stands for ``weights`` (None: the shipped default)."""
        target = str(weights or DEFAULT_WEIGHTS)
        return next((k for k, v in self.model_choices().items() if v == target), DEFAULT_WEIGHTS.name)


def release_freed_memory() -> None:
    """Hand the heap a closed session freed back to the OS (glibc keeps it otherwise, and a
    server that opens and closes sessions all day would creep upward). No-op elsewhere."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


class ServerBusy(UserError):
    """Every session slot is taken."""


class LiveSession:
    """A browser session: its settings, its live pipeline (reused across camera restarts
    while the settings stay) and its offline pipeline for uploaded videos."""

    def __init__(self, session_hash: str, config: ServeConfig) -> None:
        self.token = secrets.token_urlsafe(24)
        self.session_hash = session_hash
        self.config = config
        self.settings = dataclasses.replace(config.pipeline)
        self.note = ""               # e.g. why the model is not loaded
        self.stream: Stream | None = None       # the running (or last) stream
        self.closed = False
        self.view: object | None = None  # what the page last rendered (owned by web.app)
        # "live" and "offline" pipelines, each with the config it was asked for (a model
        # that failed to load leaves it running without one: ``note``)
        self._pipelines: dict[str, tuple[Pipeline, PipelineConfig]] = {}
        self._lock = threading.RLock()
        self._t_next = 0.0           # pipeline time at which the next stream may start
        self._files: Path | None = None
        self.last_seen = time.monotonic()
        self._analysing = 0          # video analyses in progress

    def touch(self) -> None:
        """The client was heard from (any request or frame that names this session)."""
        self.last_seen = time.monotonic()

    @property
    def busy(self) -> bool:
        """Working for its client right now: streaming frames or analysing a video."""
        return self.streaming or self._analysing > 0

    @contextlib.contextmanager
    def analysing(self):
        """Marks a video analysis in progress, so the reaper leaves the session alone."""
        with self._lock:
            self._analysing += 1
        try:
            yield
        finally:
            with self._lock:
                self._analysing -= 1
            self.touch()

    # --------------------------------------------------------------- pipelines
    def _config_for(self, kind: str) -> PipelineConfig:
        """The session's settings as the ``kind`` pipeline is built with them (sensitivity is
        no build setting: it is passed to each run, ``sensitivity``)."""
        built = dataclasses.replace(self.settings, sensitivity=self.config.pipeline.sensitivity)
        if kind == "offline":
            return dataclasses.replace(built, motion_seconds=OFFLINE_MOTION_S)
        return built

    @property
    def sensitivity(self) -> float | None:
        """The spotting sensitivity the next run starts with."""
        return self.settings.sensitivity

    @staticmethod
    def _build(cfg: PipelineConfig) -> tuple[Pipeline, str]:
        """A pipeline built with ``cfg``. A model that cannot be loaded leaves a spotting-only
        pipeline and a note the page shows, rather than no demo at all."""
        try:
            return Pipeline(cfg), ""
        except (UserError, ImportError, OSError, ValueError) as e:
            if not cfg.classify:
                raise
            log.warning("model not loaded (%s); spotting only", e)
            return Pipeline(dataclasses.replace(cfg, classify=False)), f"model not loaded ({e}); spotting only"

    def _current(self, kind: str) -> Pipeline:
        """The live or offline pipeline, built with the session's settings up front: one built
        with other settings is replaced, once it is not running (settings never change under
        a running pipeline)."""
        wanted = self._config_for(kind)
        p, built_for = self._pipelines.get(kind, (None, None))
        if p is not None and built_for != wanted and not p.running:
            self._close_pipeline(p)
            p = None
        if p is None:
            p, self.note = self._build(wanted)
            self._pipelines[kind] = (p, wanted)
        return p

    def start_stream(self, camera_fps: float) -> Stream:
        """Start the live pipeline for a new socket (slow the first time: tracker, model, JIT)."""
        with self._lock:
            if self.closed:
                raise RuntimeError("session closed")
            if self.stream is not None:
                if self.stream.pipeline.running:
                    self.stream.end()
                    self.stream.pipeline.stop()
                self._advance_time(self.stream)
            p = self._current("live")
            p.start(camera_fps, live=True, sensitivity=self.sensitivity)
            self.stream = Stream(p, camera_fps, self._t_next)
            return self.stream

    def stop_stream(self, stream: Stream) -> None:
        """The socket closed: flush and stop this stream's pipeline threads."""
        with self._lock:
            if stream.pipeline.running and stream is self.stream:
                try:
                    stream.pipeline.stop()
                except Exception:  # noqa: BLE001 - a crashed worker already logged itself
                    log.exception("live pipeline ended with an error")
            self._advance_time(stream)

    def _advance_time(self, stream: Stream) -> None:
        """Pipeline time keeps increasing across camera restarts (the tracker's timers rely on it)."""
        self._t_next = max(self._t_next, stream.t_base + (stream.link.last_media or 0.0) + 1.0)

    def offline_pipeline(self) -> Pipeline:
        """The pipeline for uploaded videos (separate from the live one, so both can run)."""
        with self._lock:
            return self._current("offline")

    @property
    def live_pipeline(self) -> Pipeline | None:
        return self._pipelines.get("live", (None,))[0]

    @property
    def streaming(self) -> bool:
        return self.stream is not None and self.stream.pipeline.running and not self.stream.superseded

    def apply_settings(self, backend: str, model: str | None, classify: bool, sensitivity: float | None) -> str:
        """Change the settings: a new sensitivity applies from the next run, a new model or
        backend rebuilds the pipeline the next time it starts."""
        if backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r}: pick one of {', '.join(BACKENDS)}")
        choices = self.config.model_choices()
        weights = self.settings.weights
        if model:
            if model not in choices:
                raise UserError(f"unknown model {model!r}: pick one of {', '.join(choices) or '(none found)'}")
            weights = choices[model]
        if sensitivity is not None and not sensitivity > 0:
            raise UserError(f"sensitivity must be > 0, got {sensitivity}")
        with self._lock:
            self.settings = dataclasses.replace(self.settings, backend=backend, weights=weights,
                                                classify=bool(classify), sensitivity=sensitivity)
        return "applies the next time the camera starts" if self.streaming else "applied"

    def files_dir(self) -> Path:
        """Per-session folder for downloadable results, deleted with the session."""
        if self._files is None:
            self._files = Path(tempfile.mkdtemp(prefix="rtme-session-"))
        return self._files

    # ---------------------------------------------------------------- cleanup
    @staticmethod
    def _close_pipeline(p: Pipeline) -> None:
        try:
            p.stop(timeout=10.0)
        except Exception:  # noqa: BLE001
            log.exception("pipeline ended with an error")
        p.close()

    def close(self) -> None:
        """Stop everything this session runs and free its files."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if self.stream is not None:
                self.stream.end()
            for p, _ in self._pipelines.values():
                self._close_pipeline(p)
            self._pipelines.clear()
            if self._files is not None:
                shutil.rmtree(self._files, ignore_errors=True)
        release_freed_memory()


class SessionRegistry:
    """token -> session and Gradio session hash -> session, for the socket and the cleanup hooks."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self._by_token: dict[str, LiveSession] = {}
        self._by_hash: dict[str, LiveSession] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    def open(self, session_hash: str) -> LiveSession:
        """The session for this browser session, created on first use; ``ServerBusy`` when
        every slot is taken by sessions still in use."""
        with self._lock:
            s = self._by_hash.get(session_hash)
            if s is not None and not s.closed:
                s.touch()
                return s
        self.reap()
        with self._lock:
            if len(self._by_hash) >= self.config.max_sessions:
                raise ServerBusy(f"the server is busy: all {self.config.max_sessions} session slots are in use; "
                                 "try again in a few minutes")
            s = LiveSession(session_hash, self.config)
            self._by_hash[session_hash] = s
            self._by_token[s.token] = s
            return s

    def get(self, token: str | None) -> LiveSession | None:
        if not token:
            return None
        with self._lock:
            s = self._by_token.get(token)
        if s is None or s.closed:
            return None
        s.touch()
        return s

    def reap(self, now: float | None = None) -> list[str]:
        """Close the sessions not heard from for ``idle_timeout_s`` that are not working;
        returns their hashes."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stale = [h for h, s in self._by_hash.items()
                     if s.closed or (now - s.last_seen > self.config.idle_timeout_s and not s.busy)]
        for h in stale:
            self.close_hash(h)
        if stale:
            log.info("reaped %d idle session(s)", len(stale))
        return stale

    def start_reaper(self, every_s: float | None = None) -> None:
        """A daemon thread that reaps every few seconds (until ``close_all``)."""
        period = every_s or max(0.5, min(10.0, self.config.idle_timeout_s / 4))

        def loop() -> None:
            while not self._stop.wait(period):
                try:
                    self.reap()
                except Exception:  # noqa: BLE001 - keep reaping whatever one close did
                    log.exception("session reaper")

        self._stop.clear()
        self._reaper = threading.Thread(target=loop, name="rtme-reaper", daemon=True)
        self._reaper.start()

    def close_hash(self, session_hash: str | None) -> bool:
        with self._lock:
            s = self._by_hash.pop(session_hash, None) if session_hash else None
            if s is not None:
                self._by_token.pop(s.token, None)
        if s is not None:
            log.info("session %s closed", session_hash)
            s.close()
        return s is not None

    def close_all(self) -> None:
        self._stop.set()
        with self._lock:
            hashes = list(self._by_hash)
        for h in hashes:
            self.close_hash(h)

    def sessions(self) -> list[LiveSession]:
        with self._lock:
            return list(self._by_hash.values())
