"""Spotter behaviour on landmark tracks with known movements (no rendering, no tracker)."""
import numpy as np
import pytest

from realtime_me.spotting import CUE_NAMES, REGION_NAMES, Spotter
from realtime_me.spotting import kernels, reference
from realtime_me.spotting.regions import tables
from realtime_me.chain import SpotStream
from realtime_me.types import CropPoints
from testkit.tracks import Track, TrackBuilder, neutral_face


def spot(track: Track, backend: str = "numba", index0: int = 0, **kw):
    sp = Spotter(track.fps, backend=backend, **kw)
    sp.warmup()
    samples, windows = [], []
    for i in range(track.n):
        s, w = sp.update(track.crop_points(i, index0))
        samples.append(s)
        windows += w
    windows += sp.face_lost(index0 + track.n, (index0 + track.n) / track.fps)
    return sp, samples, windows


def micro(windows):
    return [w for w in windows if w.kind == "micro"]


def iou(w, e):
    a, b = (w.onset_index, w.offset_index), (e["onset_frame"], e["offset_frame"])
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    return max(0, inter) / ((a[1] - a[0] + 1) + (b[1] - b[0] + 1) - max(0, inter))


# ------------------------------------------------------------------ numba == NumPy reference
def _busy_track(fps: float, seed: int = 3) -> Track:
    return (TrackBuilder(fps, 12.0, seed=seed)
            .add_movement("lip_corner_up", 3.0, 0.3, 0.04)
            .add_blink(5.0)
            .add_movement("brow_lower", 6.5, 0.25, 0.03)
            .add_macro("brow_raise", 8.0, 0.4, 1.5, 0.5, 0.08)
            .head_motion()
            .build())


def _blinky_track(fps: float, seed: int = 4) -> Track:
    """A macro already on at the start (first seen on its way back), then a blink just
    before an ME, with the brows' points dipping during the blink."""
    return (TrackBuilder(fps, 10.0, seed=seed)
            .add_macro("brow_raise", 0.0, 0.05, 1.4, 0.5, 0.08)
            .add_blink(4.0)
            .add_movement("brow_lower", 4.05, 0.15, 0.02)
            .add_movement("brow_raise", 4.55, 0.3, 0.03)
            .add_movement("lip_corner_up", 7.0, 0.3, 0.04)
            .build())


def _residual_track(fps: float, seed: int = 5) -> Track:
    """Real MEs that stop short of the neutral face (the settled rule), before an ordinary one."""
    return (TrackBuilder(fps, 12.0, seed=seed)
            .add_residual("brow_lower", 3.0, 0.1, 0.15, 0.6, 0.04)
            .add_movement("lip_corner_up", 9.0, 0.3, 0.04)
            .build())


@pytest.mark.parametrize("fps,make", [(30.0, _busy_track), (200.0, _busy_track), (30.0, _blinky_track),
                                      (200.0, _blinky_track), (30.0, _residual_track), (200.0, _residual_track)])
def test_numba_kernels_match_numpy_reference_frame_by_frame(fps, make):
    track = make(fps)
    a, b = Spotter(fps, backend="numba"), Spotter(fps, backend="numpy")
    a.warmup()
    wa, wb = [], []
    for i in range(track.n):
        sa, x = a.update(track.crop_points(i))
        sb, y = b.update(track.crop_points(i))
        wa += x
        wb += y
        assert (sa.index, sa.t) == (sb.index, sb.t)
        np.testing.assert_allclose(sa.regions, sb.regions, atol=1e-6, rtol=1e-6)
        assert sa.value == pytest.approx(sb.value, abs=1e-6)
    for name in ("raw", "smo", "avg", "sig", "stats", "nbuf", "ref", "base", "neutral", "apex_shape", "st_f"):
        np.testing.assert_allclose(getattr(a.state, name), getattr(b.state, name), atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(a.state.st_i, b.state.st_i)
    assert len(wa) == len(wb) >= 2          # two MEs (and a macro in the busy tracks)
    for x, y in zip(wa, wb):
        assert (x.kind, x.onset_index, x.apex_index, x.offset_index) == (y.kind, y.onset_index, y.apex_index, y.offset_index)
        assert x.peak == pytest.approx(y.peak, abs=1e-6)
        assert x.regions == pytest.approx(y.regions, abs=1e-6) and x.cues == pytest.approx(y.cues, abs=1e-6)
        assert x.near_blink == y.near_blink


def test_alignment_and_region_kernels_match_reference_on_random_input():
    tb = tables()
    rng = np.random.default_rng(0)
    face = neutral_face().astype(np.float32)
    ref_k, ref_r = np.zeros((len(tb.stable), 2)), np.zeros((len(tb.stable), 2))
    assert kernels.init_reference(face, tb.stable, tb.iod_pts, ref_k)
    assert reference.init_reference(face, tb.stable, tb.iod_pts, ref_r)
    np.testing.assert_allclose(ref_k, ref_r, atol=1e-9)
    for _ in range(20):
        pts = (face + rng.normal(0, 3, face.shape)).astype(np.float32)
        outs = [np.zeros((len(tb.selected), 2)) for _ in range(4)]
        assert kernels.align_frame(pts, tb.selected, tb.stable, ref_k, outs[0], outs[1][: len(tb.stable)])
        assert reference.align_frame(pts, tb.selected, tb.stable, ref_r, outs[2], outs[3][: len(tb.stable)])
        np.testing.assert_allclose(outs[0], outs[2], atol=1e-9)
        y = outs[0] + rng.normal(0, 0.01, outs[0].shape)
        rk = [kernels.region_rms(outs[0], y, tb.region_pts, tb.region_ptr[r], tb.region_ptr[r + 1])
              for r in range(len(REGION_NAMES))]
        np.testing.assert_allclose(rk, reference.region_rms_all(outs[0], y, tb.region_ptr, tb.region_pts), atol=1e-12)
        assert kernels.aperture(y, tb.lids, tb.corners) == pytest.approx(
            reference.aperture(y, tb.lids, tb.corners), abs=1e-12)
    bad = face.copy()
    bad[:] = 5.0   # collapsed face: no transform
    assert not kernels.init_reference(bad, tb.stable, tb.iod_pts, ref_k)
    assert not reference.init_reference(bad, tb.stable, tb.iod_pts, ref_r)


def test_aligned_coordinates_are_in_iod_and_undo_a_similarity():
    tb = tables()
    face = neutral_face(iod_px=90.0)
    ref = np.zeros((len(tb.stable), 2))
    kernels.init_reference(face.astype(np.float32), tb.stable, tb.iod_pts, ref)
    a, s = np.deg2rad(17.0), 1.7
    moved = face.copy()
    moved[:, :2] = face[:, :2] @ (s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])).T + (55, -30)
    x0, x1 = np.zeros((len(tb.selected), 2)), np.zeros((len(tb.selected), 2))
    scratch = np.zeros_like(ref)
    kernels.align_frame(face.astype(np.float32), tb.selected, tb.stable, ref, x0, scratch)
    kernels.align_frame(moved.astype(np.float32), tb.selected, tb.stable, ref, x1, scratch)
    np.testing.assert_allclose(x0, x1, atol=1e-5)
    r, l = tb.corners
    iod = np.linalg.norm(x0[r].mean(0) - x0[l].mean(0))
    assert iod == pytest.approx(1.0, abs=1e-3)


# ------------------------------------------------------------------ behaviour
@pytest.mark.parametrize("period_s", [6.0, 1.2])
def test_head_motion_alone_never_fires(period_s):
    # rotation +-12 deg, scale +-15 %, translation +-60 px, slow drift and quick shakes
    track = TrackBuilder(30.0, 30.0, seed=11).head_motion(12.0, 0.15, 60.0, period_s).build()
    sp, samples, windows = spot(track)
    assert windows == []
    assert max(s.value for s in samples) < 1.0


def test_head_motion_is_removed_before_a_movement_is_measured():
    track = (TrackBuilder(30.0, 10.0, seed=12).add_movement("brow_raise", 5.0, 0.3, 0.035)
             .head_motion(12.0, 0.15, 60.0, 2.0).build())
    _, _, windows = spot(track)
    m = micro(windows)
    assert len(m) == 1 and len(windows) == 1
    assert iou(m[0], track.events[0]) >= 0.5


def test_blinks_alone_never_fire():
    b = TrackBuilder(30.0, 20.0, seed=4)
    for t in (2.0, 5.5, 9.0, 12.5, 16.0):
        b.add_blink(t, close_s=0.07, open_s=0.15)
    track = b.build()
    sp, samples, windows = spot(track)
    assert micro(windows) == []
    assert max(s.value for s in samples) > 2.0           # the blinks do move the regions ...
    _, _, unguarded = spot(track, blink_drop=0.99, mesh_blink_drop=0.99)  # ... and without the lid
    assert len(micro(unguarded)) >= 3                                     # checks they would fire


def _half_seen_blinks(seed: int = 4) -> Track:
    """Blinks whose closing lids the flow points barely follow (as on some faces), with
    the brows' points dipping while the lids close."""
    b = TrackBuilder(30.0, 20.0, seed=seed)
    for t in (2.0, 5.5, 9.0, 12.5, 16.0):
        b.add_blink(t, close_s=0.07, open_s=0.15, lids_followed=0.2)
        b.add_movement("brow_lower", t + 0.07, 0.2, 0.025)
    return b.build()


def test_blinks_the_flow_lids_miss_are_caught_by_the_face_mesh_aperture():
    track = _half_seen_blinks()
    _, _, windows = spot(track)
    assert micro(windows) == []
    blind = Track(track.fps, track.points, track.events)          # no mesh aperture given
    _, _, unguarded = spot(blind)
    assert len(micro(unguarded)) >= 3


def test_a_lower_face_movement_during_a_blink_is_still_spotted():
    """Real MEs come with blinks (a smile that closes the eyes): near a blink the lids and
    brows are no evidence, but the lower face counts, from a higher threshold."""
    track = (TrackBuilder(30.0, 10.0, seed=5).add_blink(4.9, 0.07, 0.15)
             .add_movement("lip_corner_up", 5.0, 0.3, 0.06).build())
    _, _, windows = spot(track)
    m = micro(windows)
    assert len(m) == 1 and iou(m[0], track.events[1]) >= 0.5 and m[0].near_blink
    brows = (TrackBuilder(30.0, 10.0, seed=5).add_blink(4.9, 0.07, 0.15)
             .add_movement("brow_raise", 5.0, 0.3, 0.03).build())
    assert micro(spot(brows)[2]) == []      # what a blink moves is not told apart from it


def test_a_movement_right_after_a_blink_still_counts():
    # the blink ends ~0.15 s before the movement starts: one candidate spans both,
    # the blink's centres are masked and the movement is kept
    track = (TrackBuilder(30.0, 10.0, seed=5).add_blink(4.5, 0.07, 0.15)
             .add_movement("lip_corner_up", 5.0, 0.3, 0.04).build())
    sp, _, windows = spot(track)
    m = micro(windows)
    assert len(m) == 1 and iou(m[0], track.events[1]) >= 0.5
    assert not (m[0].onset_index <= track.events[0]["apex_frame"] <= m[0].offset_index)


@pytest.mark.parametrize("name,cue,regions", [
    ("lip_corner_up", "lip_corner_up", {"mouth_r", "mouth_l"}),
    ("brow_raise", "brow_raise", {"brow_r", "brow_l"}),
    ("brow_lower", "brow_lower", {"brow_r", "brow_l"}),
    ("chin_raise", "chin_raise", {"chin", "lip_lower"}),
])
def test_injected_micro_expression_is_spotted_with_its_timing_and_cues(name, cue, regions):
    fps = 30.0
    track = TrackBuilder(fps, 10.0, seed=7).add_movement(name, 5.0, 0.33, 0.03).build()
    _, samples, windows = spot(track)
    assert len(windows) == 1 and windows[0].kind == "micro"
    w, e = windows[0], track.events[0]
    assert abs(w.apex_index - e["apex_frame"]) <= 1
    assert abs(w.onset_index - e["onset_frame"]) <= 3 and abs(w.offset_index - e["offset_frame"]) <= 3
    assert iou(w, e) >= 0.6
    assert 0.0 < w.confirmed_t - w.apex_t < 1.0          # spotting delay: online, under a second
    assert w.onset_t <= w.apex_t <= w.offset_t <= w.confirmed_t
    top_regions = sorted(REGION_NAMES, key=lambda r: -w.regions[r])[:2]
    assert set(top_regions) == regions
    cues = {k: w.cues[k] for k in CUE_NAMES if k != "eye_aperture"}
    assert max(cues, key=cues.get) == cue
    assert w.cues[cue] == pytest.approx(0.03, rel=0.35)    # IOD units
    # the motion trace peaks at the apex and is on the frame it describes
    peak = max(samples, key=lambda s: s.value)
    assert abs(peak.index - e["apex_frame"]) <= 2 and peak.value > 1.0


def test_long_movement_is_reported_as_macro_not_micro():
    track = TrackBuilder(30.0, 12.0, seed=8).add_macro("lip_corner_up", 4.0, 0.5, 2.0, 0.6, 0.08).build()
    _, _, windows = spot(track)
    assert [w.kind for w in windows] == ["macro"]
    w, e = windows[0], track.events[0]
    assert w.duration > 0.5
    assert iou(w, e) >= 0.5


def test_sustained_expression_is_reported_after_max_track():
    track = TrackBuilder(30.0, 14.0, seed=9).add_macro("brow_raise", 3.0, 0.4, 30.0, 0.5, 0.08).build()
    _, _, windows = spot(track, max_track_s=4.0)
    assert [w.kind for w in windows] == ["macro"]
    assert windows[0].offset_t - windows[0].onset_t == pytest.approx(4.0, abs=0.1)


@pytest.mark.parametrize("fps", [30.0, 60.0, 200.0])
def test_same_movement_is_spotted_at_any_frame_rate(fps):
    track = TrackBuilder(fps, 8.0, seed=10).add_movement("lip_corner_down", 4.0, 0.25, 0.03).build()
    sp, _, windows = spot(track)
    assert len(windows) == 1 and windows[0].kind == "micro"
    w, e = windows[0], track.events[0]
    assert abs(w.apex_t - e["apex_frame"] / fps) <= 0.04
    assert iou(w, e) >= 0.5
    assert sp.frames["k"] == round(sp.config.k_s * fps)       # window sizes follow the frame rate


def test_sensitivity_is_the_threshold_knob():
    track = TrackBuilder(30.0, 10.0, seed=13).add_movement("brow_raise", 5.0, 0.3, 0.005).build()
    found = {s: micro(spot(track, sensitivity=s)[2]) for s in (0.5, 1.0, 2.0)}
    assert found[0.5] == []                                              # too faint for a strict spotter
    assert [iou(w, track.events[0]) >= 0.5 for w in found[1.0]] == [True]
    assert any(iou(w, track.events[0]) >= 0.5 for w in found[2.0])      # an eager one finds it too,
    assert len(found[2.0]) > len(found[1.0])                             # and the jitter with it


def test_face_loss_resets_and_the_next_movement_is_still_found():
    fps = 30.0
    a = TrackBuilder(fps, 4.0, seed=14).build()
    b = TrackBuilder(fps, 8.0, seed=15).add_movement("lip_corner_up", 4.0, 0.3, 0.04).build()
    sp = Spotter(fps)
    windows = []
    for i, p in enumerate(a.points):
        windows += sp.update(CropPoints(i, i / fps, p))[1]
    assert sp.face_lost(a.n, a.n / fps) == []
    off = a.n + 30                                   # one second without a face
    for i, p in enumerate(b.points):
        windows += sp.update(CropPoints(off + i, (off + i) / fps, p))[1]
    assert len(windows) == 1
    assert abs(windows[0].apex_index - (off + b.events[0]["apex_frame"])) <= 1


def test_dropped_frames_are_interpolated():
    fps = 30.0
    track = TrackBuilder(fps, 10.0, seed=16).add_movement("brow_lower", 5.0, 0.35, 0.035).build()
    sp = Spotter(fps)
    windows = []
    for i, p in enumerate(track.points):
        if i % 17 == 5:                              # a live source loses a frame now and then
            continue
        windows += sp.update(CropPoints(i, i / fps, p))[1]
    assert sp.counts.interpolated > 10
    assert len(windows) == 1 and iou(windows[0], track.events[0]) >= 0.5


def test_warmup_leaves_the_stream_untouched_and_bad_input_is_refused():
    sp = Spotter(30.0)
    sp.warmup()
    assert not sp.state.st_i.any() and not sp.state.raw.any()
    with pytest.raises(ValueError, match="fps"):
        Spotter(0.0)
    with pytest.raises(ValueError, match="sensitivity"):
        Spotter(30.0, sensitivity=-1)
    with pytest.raises(ValueError, match="landmarks"):
        sp.update(CropPoints(0, 0.0, np.zeros((10, 3), np.float32)))
    # NaN landmarks count as a lost face, not a crash
    s, w = sp.update(CropPoints(0, 0.0, np.full((478, 3), np.nan, np.float32)))
    assert w == [] and s.value == 0.0


#: the detector geometry before the after side was shortened, for the failures shown below
LONG_LOOKAHEAD = {"k_s": 0.3, "side_s": 0.2, "after_s": 0.3}


#: the after side's mean and the candidate's end gap before they were shortened for 200 fps
LONG_MEANS = {"side_s": 0.1, "gap_s": 0.03}


def one_me(fps: float, **kw):
    track = TrackBuilder(fps, 6.0, seed=31).add_movement("lip_corner_up", 3.0, 0.2, 0.03).build()
    (w,) = micro(spot(track, **kw)[2])
    assert iou(w, track.events[0]) >= 0.5
    return w, w.confirmed_t - track.events[0]["offset_frame"] / fps


@pytest.mark.parametrize("old,within", [(True, False), (False, True)])
def test_at_200_fps_a_decision_comes_within_0_21_s_of_the_offset(old, within):
    # The look-ahead past a frame is after_s + side_s less a frame, and a candidate ends
    # gap_s below release: with 0.1 s means and a 0.03 s gap that was 0.195 + 0.03 s at
    # 200 fps, the term that kept apex -> event over 0.35 s.
    _, lag = one_me(200.0, **(LONG_MEANS if old else {}))
    assert (lag <= 0.21) is within, lag      # 0.200 s now, 0.230 before


def test_at_30_fps_the_shorter_means_change_nothing():
    # both settings round to the same frame counts at 30 fps (3-frame means, a 1-frame gap)
    assert one_me(30.0)[0] == one_me(30.0, **LONG_MEANS)[0]


@pytest.mark.parametrize("noise_near_s,found", [(0.3, False), (0.1, True)])
def test_a_blink_in_the_first_second_does_not_delay_detection(noise_near_s, found):
    # Research sequences at 200 fps are a few seconds long: an ME 1.2 s in must be found
    # even though a blink kept the first second from being a clean noise sample.
    fps = 200.0
    track = (TrackBuilder(fps, 4.0, seed=21).add_blink(0.8)
             .add_movement("lip_corner_up", 1.35, 0.3, 0.03).build())
    # the failure shown (found=False) needs the ring of the longer look-ahead it was found with
    old = {} if found else LONG_LOOKAHEAD
    _, _, windows = spot(track, noise_near_s=noise_near_s, **old)
    assert any(iou(w, track.events[1]) >= 0.5 for w in micro(windows)) is found


@pytest.mark.parametrize("still_s,found", [(100.0, False), (0.2, True)])
def test_an_expression_first_seen_on_its_way_back_does_not_hide_the_next_me(still_s, found):
    # A macro already on when the face appears is first caught returning: the shape before
    # that return is never seen again, so only "still, and back near neutral" ends it.
    fps = 30.0
    track = (TrackBuilder(fps, 8.0, seed=22).add_macro("brow_raise", 0.0, 0.05, 1.4, 0.5, 0.08)
             .add_movement("lip_corner_up", 3.3, 0.3, 0.03).build())
    _, _, windows = spot(track, still_s=still_s)
    assert any(iou(w, track.events[1]) >= 0.5 for w in micro(windows)) is found


def test_a_blink_just_before_an_me_does_not_stretch_it():
    # The shape an ME is measured against is taken from before any blink near it: flow
    # points on the brows dip with a blink too, and measured from there the ME never ends.
    fps = 200.0
    track = (TrackBuilder(fps, 6.0, seed=23).add_blink(2.0)
             .add_movement("brow_lower", 2.05, 0.15, 0.02)       # the brows' points during the blink
             .add_movement("brow_raise", 2.55, 0.3, 0.03).build())
    _, _, windows = spot(track)
    assert [w.kind for w in windows] == ["micro"]
    assert iou(windows[0], track.events[2]) >= 0.5


@pytest.mark.parametrize("noise_near_s,kinds", [(0.3, ["micro"]), (0.05, ["macro"])])
def test_a_slow_expression_soon_after_a_blink_is_no_me(noise_near_s, kinds):
    # The shape before a movement must be clear of the blink by the smoothing's reach
    # (noise_near_s), no more: with a 0.3 s margin it fell out of the ring at 200 fps, the
    # macro was measured from halfway up, and its middle came out as an ME.
    fps = 200.0
    track = (TrackBuilder(fps, 6.0, seed=24).add_blink(2.0)
             .add_macro("lip_corner_up", 2.4, 0.5, 0.1, 0.6, 0.05).build())
    old = LONG_LOOKAHEAD if kinds == ["micro"] else {}   # the failure shown: with the ring it was found with
    _, _, windows = spot(track, noise_near_s=noise_near_s, **old)
    assert [w.kind for w in windows] == kinds


@pytest.mark.parametrize("fps", [30.0, 200.0])
def test_an_me_0_9_s_into_the_stream_is_found(fps):
    # The README promises this to users who trim research sequences: the detector learns
    # the noise from the first 0.3 s and gates start-up samples at 0.02 IOD.
    found = 0
    for seed in range(30, 35):
        track = TrackBuilder(fps, 4.0, seed=seed).add_movement("lip_corner_up", 0.9, 0.3, 0.03).build()
        _, _, windows = spot(track)
        found += any(iou(w, track.events[0]) >= 0.5 for w in micro(windows))
    assert found == 5


# ------------------------------------------------------------------ real MEs: residue, clips from the onset
@pytest.mark.parametrize("fps", [30.0, 200.0])
def test_an_me_that_stops_short_of_neutral_ends_where_it_stopped(fps):
    """Real faces often keep part of an ME after its offset. It came partway back and held
    still within a micro-expression's time: a micro-expression ending there, not a macro."""
    track = TrackBuilder(fps, 8.0, seed=11).add_residual("brow_lower", 3.0, 0.1, 0.15, 0.6, 0.04).build()
    e = track.events[0]
    _, _, windows = spot(track)
    found = micro(windows)
    assert len(found) == 1 and iou(found[0], e) >= 0.5, windows
    assert abs(found[0].apex_index - e["apex_frame"]) <= max(2, 0.03 * fps)
    # without the rule (a fraction no movement falls below) it is followed as a long movement
    _, _, windows = spot(track, settled=0.0)
    assert not micro(windows) and windows and windows[0].kind == "macro"


def _offline(track: Track, sp: Spotter):
    """A clip fed as a file is (the chain's ``SpotStream``): first frame held before it,
    last frame after it."""
    stream, windows = SpotStream(sp, holds=True), []
    for i, p in enumerate(track.points):
        windows += stream.update(CropPoints(i, i / track.fps, p))[1]
    n = track.n - 1
    return windows + stream.finish(n, n / track.fps)


@pytest.mark.parametrize("fps", [100.0, 200.0])
def test_a_research_clip_from_onset_to_offset_is_spotted_inside_it(fps):
    """Databases hand out onset..offset only. Offline, the first frame is held still before
    it (the detector learns the face on it) and the last after it; the window stays inside."""
    whole = TrackBuilder(fps, 2.0, seed=12).add_residual("lip_corner_up", 0.55, 0.12, 0.2, 0.5, 0.04).build()
    e = whole.events[0]
    clip = Track(fps, whole.points[e["onset_frame"]:e["offset_frame"] + 1], [])
    truth = {"onset_frame": 0, "offset_frame": clip.n - 1}
    sp = Spotter(fps)
    found = micro(_offline(clip, sp))
    assert len(found) == 1 and iou(found[0], truth) >= 0.5
    w = found[0]
    assert 0 <= w.onset_index <= w.apex_index <= w.offset_index <= clip.n - 1 and w.onset_t >= 0.0
    # as a live stream it is too short to learn the face on: nothing
    _, _, live = spot(clip)
    assert not live


@pytest.mark.parametrize("fall_s,sample_rise_s,kind", [(0.5, 0.0, "macro"), (0.5, None, "micro"),
                                                     (1.2, None, "macro")])
def test_a_research_clip_longer_than_half_a_second_but_quick_to_rise_is_micro(fall_s, sample_rise_s, kind):
    """CASME II codes a sample of more than 0.5 s as an ME when onset -> apex is within
    0.25 s (casme2_sub01_EP19_06f: 625 ms, apex at 175 ms); offline, a pre-segmented clip's
    movement follows the database's rule up to 1 s, while a stream keeps the 0.5 s bound."""
    fps = 200.0
    whole = TrackBuilder(fps, 3.0, seed=13).add_residual("brow_lower", 0.6, 0.15, fall_s, 0.5, 0.04).build()
    e = whole.events[0]
    clip = Track(fps, whole.points[e["onset_frame"]:e["offset_frame"] + 1], [])
    assert clip.n / fps > 0.6
    sp = Spotter(fps, **({} if sample_rise_s is None else {"sample_rise_s": sample_rise_s}))
    windows = _offline(clip, sp)
    truth = {"onset_frame": 0, "offset_frame": clip.n - 1}
    assert [w.kind for w in windows] == [kind] and iou(windows[0], truth) >= 0.5, windows
