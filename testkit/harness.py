"""Drive the demo in headless Chromium with a fake camera (used by tests/test_web.py and
benchmarks/web.py; needs Debian's ``chromium`` and the ``playwright`` Python package).

Chromium's fake capture device plays a .y4m file in a loop at the file's frame rate, so a
generated clip with known micro-expressions (``synth.write_clip``) stands in for a person
in front of a webcam. Never a downloaded browser build (no ``playwright install``).

Which true MEs the page shows is read from its event log, which gives each ME's apex time
and duration but not its onset and offset, on a looped, slightly drifting camera clock.
So this is not the MEGC rule of ``realtime_me.metrics`` (which scores the spotter on
onset..offset intervals): a page row shows a true ME when its apex time, wrapped into the
clip, lies within ``tol_s`` of the true apex, in any loop of the clip.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


def chromium_args(y4m: Path) -> list[str]:
    return [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
    ]


def make_camera_clip(folder: Path, seed: int = 11, duration_s: float = 12.0, fps: float = 30.0) -> tuple[Path, dict]:
    """A 640x480 .y4m with labelled MEs for the fake camera, and its ground truth."""
    from realtime_me.synth import SynthConfig, write_clip

    out = Path(folder) / f"camera_seed{seed}.y4m"
    truth = write_clip(SynthConfig(seed=seed, fps=fps, duration_s=duration_s, width=640, height=480), out,
                       progress=False)
    return out, truth


class ServerThread:
    """The demo server (``realtime-me serve``'s app) on 127.0.0.1 and a free port, in this process,
    so a test can look at its sessions."""

    def __init__(self, config) -> None:
        import uvicorn

        from realtime_me.serve import bind
        from realtime_me.web import build_app

        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.app = build_app(config)
        self.registry = self.app.state.registry
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", ws_max_size=16 * 1024 * 1024))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                       name="rtme-test-server")

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("demo server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.registry.close_all()


@dataclass
class LiveRun:
    """What one browser session streamed and what its page showed."""

    seconds: float                      # streaming time (browser clock, first to last frame)
    link: dict                          # server-side socket counters (LinkStats.to_dict)
    pipeline: dict                      # the session pipeline's Stats.to_dict
    client: dict                        # the page script's own counters
    page_stats: dict                    # the stats panel's machine-readable values
    page_events: list[dict]             # the event log as shown on the page
    page_state: str                     # the state badge's text
    closed_after_s: float | None        # page closed -> session pipeline stopped and released
    screenshot: Path | None = None
    errors: list[str] = field(default_factory=list)
    other_page: dict = field(default_factory=dict)   # a second page that never started its camera

    @property
    def delivery(self) -> float:
        """Frames that reached the pipeline / frames the camera produced while streaming."""
        expected = self.seconds * self.link["camera_fps"] + 1
        return self.pipeline["frames_in"] / expected


_READ_TABLE = """async (sel) => {
  // Gradio's table is virtualised (only visible rows exist), so scroll through it.
  const root = document.querySelector(sel);
  if (!root) return [];
  const vp = root.querySelector('.virtual-table-viewport');
  const rows = {};
  const grab = () => root.querySelectorAll('[role=row][data-index]').forEach(r => {
    rows[r.dataset.index] = [...r.querySelectorAll('[role=gridcell]')]
      .sort((a, b) => (+a.dataset.col) - (+b.dataset.col)).map(c => c.innerText.trim());
  });
  const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  if (vp) {
    for (let y = 0; y <= vp.scrollHeight; y += Math.max(50, vp.clientHeight / 2)) { vp.scrollTop = y; await frame(); grab(); }
    vp.scrollTop = 0;
  } else grab();
  return Object.keys(rows).sort((a, b) => a - b).map(k => rows[k]);
}"""


def read_table(page, selector: str = "#rtme-events") -> list[dict]:
    """An event table's rows as the page shows them (header -> text)."""
    from realtime_me.web.views import EVENT_HEADERS

    return [dict(zip(EVENT_HEADERS, cells)) for cells in page.evaluate(_READ_TABLE, selector)
            if len(cells) >= len(EVENT_HEADERS) and cells[0]]


def wait_for_session(page, timeout_ms: int = 60000) -> str:
    """Wait until the page got its session token (Gradio's load event) and return it."""
    js = "() => { const e = document.querySelector('#rtme-token textarea, #rtme-token input'); return e && e.value; }"
    page.wait_for_function(f"() => ({js})()?.length > 10", timeout=timeout_ms)
    return page.evaluate(js)


@contextmanager
def browser(y4m: Path, viewport: tuple[int, int] = (1280, 1500)):
    """Headless Debian Chromium with ``y4m`` as its camera and a fresh profile (deleted after)."""
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="rtme-chromium-"))
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                str(profile), executable_path=str(CHROMIUM), args=chromium_args(y4m), headless=True,
                viewport={"width": viewport[0], "height": viewport[1]})
            try:
                yield ctx
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def run_live(server: ServerThread, y4m: Path, seconds: float, screenshot: Path | None = None) -> LiveRun:
    """Open the page in headless Chromium with ``y4m`` as the camera, press Start, stream for
    ``seconds``, read what the page shows, take a screenshot, close the page and time the cleanup.
    A second page stays open meanwhile without a camera: its session must see none of it."""
    errors: list[str] = []
    with browser(y4m) as ctx:
        page, other = ctx.new_page(), ctx.new_page()
        for pg in (page, other):
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.goto(server.url)
        token, other_token = wait_for_session(page), wait_for_session(other)
        page.bring_to_front()
        page.click("#rtme-start")
        page.wait_for_function("() => window.rtme.debug().ready", timeout=120000)
        time.sleep(seconds)
        session, idle = server.registry.get(token), server.registry.get(other_token)
        time.sleep(2 * server.registry.config.refresh_s + 0.5)   # let the panels catch up
        link, stats = session.stream.link.to_dict(), session.stream.pipeline.stats.to_dict()
        client = page.evaluate("window.rtme.debug()")
        raw = page.get_attribute("#rtme-stats .rtme-stats", "data-raw") or "{}"
        events = read_table(page)
        state = page.inner_text("#rtme-state .rtme-state-label")
        other_view = {"state": other.inner_text("#rtme-state .rtme-state-label"), "events": read_table(other),
                      "stream": idle.stream is not None, "token_differs": token != other_token}
        if screenshot is not None:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        pipeline = session.stream.pipeline
        t0 = time.monotonic()
        page.close()
        closed_after = None
        while time.monotonic() - t0 < 30:
            if session.closed and not pipeline.running:
                closed_after = time.monotonic() - t0
                break
            time.sleep(0.1)
        other_view["open_after_first_closed"] = not idle.closed
    return LiveRun(seconds=link["elapsed_s"], link=link, pipeline=stats, client=client, page_stats=json.loads(raw),
                   page_events=events, page_state=state, closed_after_s=closed_after, screenshot=screenshot,
                   errors=errors, other_page=other_view)


def _clip_micro_rows(page_events: list[dict], truth: dict) -> tuple[float, list[tuple[float, dict]]]:
    """(clip length in s, [(time in the clip, row)] of the page's micro rows). The fake camera loops
    the clip from its first frame when the track starts and the page's times are seconds since the
    track started, so a time maps to ``t mod clip length`` in the clip."""
    period = truth["n_frames"] / truth["fps"]
    return period, [(float(e["time (s)"]) % period, e) for e in page_events if e["kind"] == "micro"]


def _near(a: float, b: float, period: float, tol_s: float) -> bool:
    """Within ``tol_s`` on the looped clock (the fake device drifts by a couple of frames at most a minute)."""
    return min(abs(a - b), period - abs(a - b)) <= tol_s


def match_truth(page_events: list[dict], truth: dict, tol_s: float = 0.3) -> tuple[list[dict], list[dict]]:
    """Which of the clip's micro-expressions the page's event log shows: (found, missed) truth
    events; found ones carry the matching page row."""
    period, spotted = _clip_micro_rows(page_events, truth)
    found, missed = [], []
    for t in (e for e in truth["events"] if e["kind"] == "micro"):
        hit = next((row for ct, row in spotted if _near(ct, t["apex_s"], period, tol_s)), None)
        (found if hit else missed).append({**t, "page": hit} if hit else t)
    return found, missed


def false_alarms(page_events: list[dict], truth: dict, tol_s: float = 0.3) -> list[dict]:
    """Page ME rows near no true ME (the clip's blinks and macro-expressions are distractors)."""
    period, spotted = _clip_micro_rows(page_events, truth)
    apexes = [e["apex_s"] for e in truth["events"] if e["kind"] == "micro"]
    return [row for ct, row in spotted if not any(_near(ct, a, period, tol_s) for a in apexes)]
