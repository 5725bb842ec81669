"""One stage chain: what spot-eval and recognise measure is what the pipeline runs."""
import numpy as np
import pytest

from realtime_me.alignment import template
from realtime_me.chain import ChainConfig, FaceChain, SpotStream
from realtime_me.pipeline import Pipeline, PipelineConfig
from realtime_me.sources import DemoSource
from realtime_me.spot_eval import Track, spot_track, track_frames
from realtime_me.spotting import Spotter
from realtime_me.types import CropPoints


def _key(w):
    return (w.onset_index, w.apex_index, w.offset_index, w.kind, round(w.peak, 6))


@pytest.mark.slow
def test_spot_eval_tracking_and_spotting_are_the_pipelines():
    """The same clip through the threaded pipeline and through spot-eval's cached-track
    path (tracks, then the spotter over them) gives the same windows."""
    src = DemoSource(seed=5, fps=30.0, duration_s=8.0, realtime=False)
    live = Pipeline(PipelineConfig(classify=False)).run(src)
    windows = [e.window for e in live.events]
    assert windows, "the demo clip should contain spotted movements"
    pts, aps = track_frames(DemoSource(seed=5, fps=30.0, duration_s=8.0, realtime=False).frames(), 30.0, "t",
                            progress=False)
    assert pts.shape == (src.info.n_frames, 478, 3) and aps.shape == (src.info.n_frames,)
    run = spot_track(Track("demo", 30.0, pts, src.truth, aps), 1.0, {})
    assert [_key(w) for w in run.windows] == [_key(w) for w in windows]


def test_chain_without_spotter_stops_at_flow_points():
    src = DemoSource(seed=5, fps=30.0, duration_s=1.0, realtime=False)
    with FaceChain(ChainConfig(spot=False)).start(30.0) as chain:
        steps = [chain.process(f) for f in src.frames()]
    assert chain.spotter is None and chain.finish(29, 1.0) == []
    moved = [s.moved for s in steps]
    assert all(m is not None and m.sample is None and m.windows == [] for m in moved)
    assert isinstance(moved[0].points, CropPoints) and moved[0].points.points.shape == (478, 3)
    # flow points live in aligned-crop pixels, landmarks in frame pixels
    assert np.abs(moved[3].points.points[:, :2] - steps[3].located.face.points).max() < 5.0
    assert steps[3].located.landmarks.points[:, 0].max() > ChainConfig().align_size


def test_only_short_offline_clips_are_held_as_samples():
    with FaceChain() as chain:
        assert chain.start(200.0, n_frames=120).spotting.holds
        assert not chain.start(200.0, n_frames=2000).spotting.holds
        assert not chain.start(30.0, n_frames=None).spotting.holds       # live


def test_spot_stream_holds_a_sample_at_both_ends():
    """A held sample's first frame is fed before it and its last after it; without holds
    the stream starts at frame 0 and ends there."""
    pts = np.zeros((478, 3), np.float32)
    pts[:, :2] = template()
    held, plain = Spotter(200.0), Spotter(200.0)
    a, b = SpotStream(held, holds=True), SpotStream(plain, holds=False)
    sa, _ = a.update(CropPoints(0, 0.0, pts))
    sb, _ = b.update(CropPoints(0, 0.0, pts))
    assert held.counts.frames == held.hold_frames + 1 and sa.index < 0     # centre inside the held lead-in
    assert plain.counts.frames == 1 and sb.index == 0
    assert a.finish(0, 0.0) == [] and b.finish(0, 0.0) == []
    assert held.counts.frames == 2 * held.hold_frames + 1 and plain.counts.frames == 1


@pytest.mark.parametrize("settle_runs,quiet", [(0, False), (4, True)])
def test_a_real_face_held_still_is_no_micro_expression(still_real_face, settle_runs, quiet):
    # A research sample's first frame held still for 1 s, as spot-eval --real embeds it:
    # nothing moves, so nothing may be reported (it fired at once when the tracker's first
    # landmarks were the detector's, not the tracked mesh's).
    from realtime_me.types import Frame

    image, fps = still_real_face
    n = int(fps)
    with FaceChain() as chain:
        chain.tracker.settle_runs = settle_runs
        chain.start(fps, n_frames=n)
        windows = []
        for i in range(n):
            step = chain.process(Frame(i, i / fps, image))
            windows += step.moved.windows
        windows += chain.finish(n - 1, (n - 1) / fps)
    assert (windows == []) is quiet, windows
