"""spot-eval: MEGC matching by hand-computed examples, and the command on a tiny clip."""
import json

import numpy as np
import pytest

from realtime_me.cli import main
from realtime_me.spot_eval import SpotRun, Track, aggregate, score_clip
from realtime_me.types import Window


def _w(on, ap, off, kind="micro", fps=30.0, delay=0.4):
    return Window(on, ap, off, on / fps, ap / fps, off / fps, kind, 2.0, ap / fps + delay, {})


def test_score_clip_and_aggregate_by_hand():
    fps = 30.0
    events = [
        {"kind": "micro", "onset_frame": 30, "apex_frame": 35, "offset_frame": 40, "apex_s": 35 / fps,
         "amplitude_px": 1.0, "aus": [12]},
        {"kind": "micro", "onset_frame": 100, "apex_frame": 104, "offset_frame": 108, "apex_s": 104 / fps,
         "amplitude_px": 0.6, "aus": [4]},
        {"kind": "blink", "onset_frame": 200, "apex_frame": 202, "offset_frame": 206, "apex_s": 202 / fps},
        {"kind": "macro", "onset_frame": 300, "apex_frame": 330, "offset_frame": 390, "apex_s": 330 / fps},
    ]
    track = Track("t", fps, np.zeros((600, 478, 3), np.float32), {"events": events})
    windows = [_w(31, 35, 41), _w(199, 202, 205), _w(305, 330, 385, "macro"), _w(500, 502, 504)]
    counts = {"rejected_blink": 2}
    res = score_clip(track, SpotRun(windows, counts, 600, 10.0))
    assert (res["micro"]["tp"], res["micro"]["fp"], res["micro"]["fn"]) == (1, 2, 1)
    assert sorted(res["micro"]["fp_overlaps"]) == ["blink", "none"]
    assert res["micro"]["missed"][0]["apex_frame"] == 104
    assert res["micro"]["delays_s"] == [pytest.approx(0.4)]
    assert res["micro"]["ious"] == [pytest.approx(10 / 12, abs=1e-3)]
    assert (res["macro"]["tp"], res["macro"]["fp"], res["macro"]["fn"]) == (1, 0, 0)
    agg = aggregate([res, res])
    assert agg["micro"]["tp"] == 2 and agg["micro"]["fp"] == 4 and agg["micro"]["fn"] == 2
    assert agg["micro"]["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert agg["micro"]["false_alarms_per_min"] == pytest.approx(4 / (2 * 600 / fps / 60), abs=1e-3)
    assert agg["micro"]["false_alarms_by_overlap"] == {"blink": 2, "none": 2}
    assert agg["rejected_blink"] == 4


@pytest.mark.slow
def test_spot_eval_cli_on_a_tiny_clip_writes_json_and_reuses_its_cache(tmp_path, capsys):
    out, cache = tmp_path / "r.json", tmp_path / "cache"
    args = ["spot-eval", "--n30", "1", "--n200", "0", "--n-distract", "1", "--duration30", "3",
            "--duration-distract", "2", "--data", "none", "--cache", str(cache), "--json", str(out), "--quiet"]
    assert main(args) == 0
    r = json.loads(out.read_text())
    assert r["plan"]["n30"] == 1 and r["seed_range"] == "eval"
    g = r["30"]
    assert g["clips"] == 1 and g["micro"]["tp"] + g["micro"]["fn"] >= 1      # the clip has an ME to find
    assert set(g["micro"]) >= {"precision", "recall", "f1", "false_alarms_per_min"}
    assert r["distractors"]["micro"]["tp"] == 0 and r["distractors"]["micro"]["fn"] == 0
    assert "F1" in capsys.readouterr().out
    assert len(list(cache.glob("*.npz"))) == 2
    # scored again from the cache, with another setting: same tracks, no tracker run
    assert main(args + ["--set", "gain=500"]) == 0
    r2 = json.loads(out.read_text())
    assert r2["generated"]["micro"]["tp"] == 0 and r2["spotter"]["gain"] == 500


def test_spot_eval_rejects_bad_options(capsys):
    assert main(["spot-eval", "--set", "nonsense=1", "--data", "none", "--n30", "0", "--n200", "0",
                 "--n-distract", "0"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    assert main(["spot-eval", "--duration30", "0"]) == 2


# ------------------------------------------------------------------ real clips (spot-eval --real)
def test_real_clip_sources_hold_their_ends_and_scoring_shifts_back(real_sample):
    from realtime_me.real_eval import ClipSource, score_live
    from realtime_me.types import Event

    s = real_sample("samm_022_022_3_3")
    src = ClipSource(s, hold=5)
    frames = list(src.frames())
    assert len(frames) == src.info.n_frames == s.n_frames + 10
    assert [f.index for f in frames] == list(range(len(frames)))
    assert (frames[0].image == frames[5].image).all() and (frames[-1].image == frames[-6].image).all()
    w = Window(onset_index=5 + 2, apex_index=5 + s.apex, offset_index=5 + s.n_frames - 2, onset_t=0, apex_t=0,
               offset_t=0.2, kind="micro")
    r = score_live([Event(window=w, emotion=s.label)], s, hold=5, fps=s.fps)
    assert r.spotted and r.onset == 2 and r.apex == s.apex and r.apex_error_ms == 0.0 and r.iou > 0.8


@pytest.mark.slow
def test_live_pipeline_spots_a_real_clip_from_its_onset(real_sample):
    """A research sample as it comes (coded onset to coded offset, nothing around it)."""
    from realtime_me.real_eval import run_live

    s = real_sample("samm_022_022_3_3")
    r = run_live(s, hold=0, weights=None, backend="onnxruntime")
    assert r.spotted and r.kind == "micro" and r.iou >= 0.5
    assert r.emotion == s.label
    assert 0 <= r.onset <= r.apex <= r.offset <= s.n_frames - 1
