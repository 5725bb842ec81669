"""The browser demo in a real browser: Debian's headless Chromium, driven by Playwright, with a
fake camera playing a generated clip of known micro-expressions (never `playwright install`).

Install the browser with: apt-get update && apt-get install -y chromium
"""
import json

import pytest

from testkit.harness import CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.slow]
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} missing: apt-get update && apt-get install -y chromium", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="playwright (Python package) not installed")
pytest.importorskip("gradio")

from realtime_me.pipeline import PipelineConfig  # noqa: E402
from realtime_me.synth import SynthConfig, write_clip  # noqa: E402
from realtime_me.web import ServeConfig  # noqa: E402
from testkit.harness import (ServerThread, browser, false_alarms, make_camera_clip, match_truth,  # noqa: E402
                             read_table, run_live, wait_for_session)

LIVE_SECONDS = 30.0


@pytest.fixture(scope="module")
def server():
    with ServerThread(ServeConfig(pipeline=PipelineConfig(), max_upload_mb=50)) as srv:
        yield srv


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory):
    return make_camera_clip(tmp_path_factory.mktemp("camera"), seed=11, duration_s=15.0)


def test_live_webcam_every_frame_and_its_mes_reach_the_page(server, camera_clip, tmp_path):
    y4m, truth = camera_clip
    run = run_live(server, y4m, LIVE_SECONDS, screenshot=tmp_path / "web_live.png")
    found, missed = match_truth(run.page_events, truth)
    extra = false_alarms(run.page_events, truth)
    n_truth = len(found) + len(missed)
    print(f"\nlive: {run.pipeline['frames_in']} frames into the pipeline in {run.seconds:.1f} s of camera time "
          f"= {run.delivery:.1%} of a 30 fps camera; browser gaps {run.link['gaps']}, ring drops "
          f"{run.pipeline['frames_dropped']}, processed {run.pipeline['frames_processed']}; capture->server "
          f"p50 {run.link['capture_to_server_ms_p50']} ms; MEs on the page: {len(found)} of {n_truth} true ones "
          f"(+{len(extra)} unmatched), cleanup {run.closed_after_s} s")
    assert not run.errors, run.errors
    # frames reach the pipeline at (close to) the camera's rate, with the browser's capture times
    assert run.delivery >= 0.8, run.link
    assert run.link["rejected"] == 0 and run.link["out_of_order"] == 0
    assert run.page_stats["frames_in"] > 0.9 * run.pipeline["frames_in"] * (run.seconds - 1.5) / run.seconds
    assert run.pipeline["frames_with_face"] >= 0.9 * run.pipeline["frames_processed"]
    assert run.client["annotated"] > 0 and run.client["charted"] > 0   # annotated frames and chart drawn
    # the clip's micro-expressions show up in the page's event log
    assert found, f"none of the clip's {n_truth} MEs is in the page's log: {run.page_events}"
    # the other page's session saw nothing of it, and outlives the first page
    assert run.other_page["token_differs"] and not run.other_page["stream"]
    assert run.other_page["state"] == "camera off" and run.other_page["events"] == []
    assert run.other_page["open_after_first_closed"]
    # closing the page stops and releases its pipeline
    assert run.closed_after_s is not None


def test_video_tab_upload_analysis_and_downloads(server, camera_clip, tmp_path):
    clip = tmp_path / "upload.mp4"
    truth = write_clip(SynthConfig(seed=5, duration_s=8.0), clip, progress=False)
    y4m, _ = camera_clip
    with browser(y4m) as ctx:
        page = ctx.new_page()
        page.goto(server.url)
        wait_for_session(page)
        page.get_by_role("tab", name="Video").click()
        page.set_input_files("#rtme-upload input[type=file]", str(clip))
        page.wait_for_selector("#rtme-upload :text('upload.mp4')", timeout=30000)
        page.click("#rtme-analyse")
        page.wait_for_function("() => document.querySelector('#rtme-summary').innerText.includes('frames')",
                               timeout=120000)
        summary = page.inner_text("#rtme-summary")
        rows = read_table(page, "#rtme-video-events")
        links = page.eval_on_selector_all("#rtme-files a", "els => els.map(a => a.href)")
        jsonl_url = next(u for u in links if u.endswith(".jsonl"))
        csv_url = next(u for u in links if u.endswith(".csv"))
        events = [json.loads(line) for line in page.request.get(jsonl_url).text().splitlines()]
        csv_lines = page.request.get(csv_url).text().splitlines()
    assert f"{truth['n_frames']} frames" in summary
    assert len(events) == len(rows) == len(csv_lines) - 1
    assert all(abs(float(r["time (s)"]) - e["apex_s"]) < 0.006 for r, e in zip(rows, events))
    for e in events:
        assert e["onset_frame"] <= e["apex_frame"] <= e["offset_frame"] < truth["n_frames"]


def test_oversized_upload_is_refused_on_the_page(camera_clip, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (700 * 1024))
    y4m, _ = camera_clip
    with ServerThread(ServeConfig(pipeline=PipelineConfig(classify=False), max_upload_mb=0.5)) as srv, \
            browser(y4m, viewport=(1280, 900)) as ctx:
        page = ctx.new_page()
        page.goto(srv.url)
        wait_for_session(page)
        page.get_by_role("tab", name="Video").click()
        assert "up to 0.5 MB" in page.inner_text("#rtme-upload")
        page.set_input_files("#rtme-upload input[type=file]", str(big))
        page.wait_for_selector(":text('exceed the maximum allowed size')", timeout=15000)
        assert srv.registry.sessions()[0].live_pipeline is None   # nothing was started for it
