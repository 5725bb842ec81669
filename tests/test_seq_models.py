"""The sequence models (FDP, point cloud): inputs, architecture, export, training, recognise and live use.

Generated clips (``synth.SynthClip`` on the public-domain astronaut face) stand in for a
licensed database: written in the ``recognise --dataset`` clips.json layout, they go
through ``train``, ``loso`` and ``recognise`` end to end; the six real clips do the same
when ``../shared/data`` is present.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from realtime_me import seqtrain
from realtime_me import weights as weights_mod
from realtime_me.cli import main as cli
from realtime_me.errors import UserError
from realtime_me.models import create_model, make_config
from realtime_me.sequences import (DISP_SCALE, N_FRAMES, N_POINTS, dynamic_image, frame_positions,
                                   load_samples, point_cloud, save_samples, synthetic_samples)

ROOT = Path(__file__).resolve().parents[1]
SEQ = ("fdp", "pointcloud")


# ------------------------------------------------------------------ generated data
@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Path:
    import skimage.data

    p = tmp_path_factory.mktemp("face") / "astronaut.png"
    cv2.imwrite(str(p), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    return p


@pytest.fixture(scope="module")
def generated(astronaut, tmp_path_factory):
    """Three generated MEs (one per class) on the astronaut, as SeqSamples."""
    return synthetic_samples([("astro", str(astronaut))], seed=3, cache_dir=tmp_path_factory.mktemp("cache"),
                             progress=False)


@pytest.fixture(scope="module")
def generated_clips(tmp_path_factory) -> Path:
    """A clips.json dataset of generated MEs: two 'subjects' (seeds), three MEs each, frames onset..offset."""
    from realtime_me.synth import SynthClip, SynthConfig

    root = tmp_path_factory.mktemp("gen_clips")
    items = []
    for subject, seed in (("s1", 11), ("s2", 12)):
        clip = SynthClip(SynthConfig(seed=seed, fps=100.0, duration_s=6.0, n_micro=3, macro=False, blinks=False))
        for k, e in enumerate(x for x in clip.truth["events"] if x["kind"] == "micro"):
            name = f"{subject}_{k}"
            (root / name).mkdir()
            on, off = e["onset_frame"], e["offset_frame"]
            for j, i in enumerate(range(on, off + 1)):
                cv2.imwrite(str(root / name / f"{j:04d}.png"), clip.render(i))
            items.append({"sample": name, "subject": subject, "dataset": "generated", "emotion": e["emotion"],
                          "aus": "+".join(map(str, e["aus"])), "fps": 100, "n_frames": off - on + 1, "onset": 0,
                          "offset": off - on, "apex": e["apex_frame"] - on})
    (root / "clips.json").write_text(json.dumps(items, indent=1))
    return root / "clips.json"


# ------------------------------------------------------------------ inputs
def test_frame_positions_span_onset_to_offset():
    assert frame_positions(100).tolist()[0] == 0 and frame_positions(100).tolist()[-1] == 99
    assert len(frame_positions(3)) == N_FRAMES and sorted(frame_positions(3).tolist()) == frame_positions(3).tolist()
    with pytest.raises(ValueError):
        frame_positions(0)


def test_dynamic_image_lights_up_what_changes_late():
    frames = np.zeros((8, 64, 64), np.float32)
    frames[4:, 10:20, 30:40] = 1.0          # a patch that appears halfway through
    d = dynamic_image(frames)[0]
    assert d.shape == (32, 32)
    assert d[5:10, 15:20].mean() > d[20:, :10].mean() + 1.0


def test_generated_samples_hold_both_inputs_and_the_generators_labels(generated):
    assert sorted(s.label for s in generated) == ["negative", "positive", "surprise"]
    for s in generated:
        assert s.frames.shape == (N_FRAMES, 64, 64) and s.cloud.shape == (4, N_POINTS)
        assert abs(float(s.frames.mean())) < 1e-3 and s.aus and all(a.startswith("AU") for a in s.aus)
        assert np.isfinite(s.cloud).all() and np.isfinite(s.dynamic).all()


def test_point_cloud_moves_where_the_action_units_pull(generated):
    """AU12 (positive) moves the lip corners more than the forehead; AU1+2 (surprise) lifts the brows."""
    by = {s.label: s for s in generated}
    lips, brows, forehead = [61, 291], [105, 334, 70, 300], [10, 151, 9]
    pos = by["positive"].cloud
    mag = np.hypot(pos[2], pos[3])
    assert mag[lips].mean() > 3 * mag[forehead].mean()
    sur = by["surprise"].cloud
    assert sur[3, brows].mean() < -0.001 * DISP_SCALE     # dy < 0 (up in the image), over 0.001 IOD


def test_point_cloud_of_a_still_face_is_near_zero(astronaut):
    from realtime_me.alignment import align
    from realtime_me.landmarks import FaceTracker
    from realtime_me.types import Frame

    img = cv2.imread(str(astronaut))
    with FaceTracker(static_images=True) as t:
        lm = t.process(Frame(0, 0.0, img))
    face = align(img, lm)
    cloud = point_cloud(face, face)
    assert np.abs(cloud[2:]).max() < 0.05 and np.abs(cloud[:2]).max() < 3


def test_samples_round_trip_without_pickle(generated, tmp_path):
    save_samples(generated, tmp_path / "s.npz")
    back = load_samples(tmp_path / "s.npz")
    assert [s.name for s in back] == [s.name for s in generated]
    assert np.array_equal(back[0].cloud, generated[0].cloud) and back[0].aus == generated[0].aus


# ------------------------------------------------------------------ architectures
@pytest.mark.parametrize("name", SEQ)
def test_models_build_run_and_the_size_rule_counts_them(name):
    m = create_model(name).eval()
    logits, au = m(*m.example_inputs(3))
    assert logits.shape == (3, 3) and au.shape == (3, len(m.config.au_names))
    _, n = weights_mod._SIZE_RULES[name](make_config(name))
    assert n == sum(p.numel() for p in m.parameters())


def test_fdp_training_outputs_and_rank_loss_prefers_time_order():
    m = create_model("fdp")
    out = m.forward_train(*m.example_inputs(2))
    assert out["scores"].shape == (2, N_FRAMES) and out["dynamic"].shape == (2, 1, 32, 32)
    rising = torch.arange(8.0).repeat(2, 1)
    assert seqtrain.rank_loss(rising) < seqtrain.rank_loss(rising.flip(1))


def test_pointcloud_is_invariant_to_motion_size_but_not_direction():
    m = create_model("pointcloud").eval()
    x = m.example_inputs(1)[0]
    big = x.clone()
    big[:, 2:4] *= 3
    flipped = x.clone()
    flipped[:, 2:4] *= -1
    with torch.no_grad():
        a, b, c = m(x)[0], m(big)[0], m(flipped)[0]
    assert torch.allclose(a, b, atol=0.05) and not torch.allclose(a, c, atol=1e-3)


@pytest.mark.parametrize("name", SEQ)
def test_onnx_export_passes_the_tensorrt_lint_and_matches_torch(name, tmp_path):
    import onnx
    import onnxruntime as ort

    from realtime_me.engines.onnx_export import check_onnx, export_bytes
    from realtime_me.engines.trt_lint import lint

    m = create_model(name).eval()
    data = export_bytes(m)
    graph = onnx.load_from_string(data)
    check_onnx(graph)
    assert lint(graph) == []
    x = m.example_inputs(2)[0]
    got = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {m.input_names[0]: x.numpy()})
    with torch.no_grad():
        want = m(x)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4)


def test_an_absurd_card_is_refused_before_building(tmp_path):
    m = create_model("pointcloud")
    seqtrain.save(m, tmp_path / "pc", {}, "test")
    card = json.loads((tmp_path / "pc" / "model.json").read_text())
    card["config"]["k"] = 10_000
    (tmp_path / "pc" / "model.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match="config.k"):
        weights_mod.read_card(tmp_path / "pc")


# ------------------------------------------------------------------ training and the commands
@pytest.mark.slow
@pytest.mark.parametrize("name", SEQ)
def test_train_loso_and_recognise_end_to_end_on_generated_clips(name, generated_clips, tmp_path, capsys):
    out = tmp_path / name
    assert cli(["train", "--model", name, "--dataset", str(generated_clips), "--epochs", "2", "--threads", "1",
                "--out", str(out)]) == 0
    card = json.loads((out / "model.json").read_text())
    assert card["architecture"] == name and card["training"]["samples"] == 6 and card["training"]["subjects"] == 2
    assert cli(["loso", "--model", name, "--dataset", str(generated_clips), "--epochs", "2", "--threads", "1",
                "--json", str(tmp_path / "loso.json")]) == 0
    r = json.loads((tmp_path / "loso.json").read_text())
    assert r["folds"] == 2 and r["overall"]["n"] == 6 and "recall" in r["aus"]
    for backend in ("torch", "onnxruntime"):
        rec = tmp_path / f"rec_{backend}.json"
        assert cli(["recognise", "--dataset", str(generated_clips), "--weights", str(out), "--backend", backend,
                    "--json", str(rec), "--no-progress"]) == 0
        res = json.loads(rec.read_text())
        assert res["model"].startswith(name) and len(res["samples"]) == 6
        assert all(s["emotion"] in ("negative", "positive", "surprise") for s in res["samples"])


def test_train_refuses_a_dataset_without_labels(generated_clips, tmp_path, capsys):
    items = json.loads(generated_clips.read_text())
    for i in items:
        i["emotion"] = None
        i["sample"] = str(generated_clips.parent / i["sample"])
        i["path"] = i["sample"]
        i["sample"] = Path(i["sample"]).name
    bad = tmp_path / "clips.json"
    bad.write_text(json.dumps(items))
    assert cli(["train", "--model", "fdp", "--dataset", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a label" in err[0] and not (tmp_path / "x").exists()


def test_medn_with_a_dataset_file_is_a_clear_error(generated_clips, tmp_path, capsys):
    assert cli(["train", "--model", "medn", "--dataset", str(generated_clips), "--out", str(tmp_path / "x")]) == 2
    assert "sequence models" in capsys.readouterr().err


def test_recognise_model_flag_names_a_shipped_model(tmp_path, capsys):
    assert cli(["recognise", "--frames", str(tmp_path), "--fps", "30", "--model", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "no shipped model" in err and "medn" in err


@pytest.mark.slow
def test_loso_on_the_six_real_clips(shared_data, tmp_path):
    clips = shared_data / "realclips" / "clips.json"
    out = tmp_path / "loso.json"
    assert cli(["loso", "--model", "pointcloud", "--dataset", str(clips), "--epochs", "2", "--threads", "1",
                "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["folds"] == 6 and r["overall"]["n"] == 6 and r["aus"]["coded"] == 9


# ------------------------------------------------------------------ shipped weights, live pipeline
@pytest.mark.parametrize("name", SEQ)
def test_shipped_weights_load_and_their_card_says_what_they_saw(name):
    from realtime_me.weights import load_model

    m, card = load_model(ROOT / "models" / name)
    assert m.arch_name == name and card.training["samples"] > 100
    assert "synthetic" in card.notes.lower() or "generated" in card.notes.lower()
    held = set(card.training.get("held_out_subjects", []))
    assert {"casme2_sub01", "casme2_sub17", "samm_018", "samm_022", "smic_s03", "smic_s20"} <= held


@pytest.mark.slow
@pytest.mark.parametrize("name", SEQ)
def test_live_pipeline_classifies_with_a_sequence_model(name):
    from realtime_me.pipeline import Pipeline, PipelineConfig
    from realtime_me.sources import DemoSource

    cfg = PipelineConfig(weights=str(ROOT / "models" / name), backend="onnxruntime")
    pipe = Pipeline(cfg)
    seen, classify = [], pipe.classifier.classify

    def recording(window, onset, apex, faces=None):
        seen.append((window, faces))
        return classify(window, onset, apex, faces=faces)

    pipe.classifier.classify = recording
    result = pipe.run(DemoSource(seed=3, duration_s=6, realtime=False))
    micro = [e for e in result.events if e.window.kind == "micro"]
    assert micro, "the demo clip's MEs were not spotted"
    assert all(e.emotion in ("negative", "positive", "surprise") and e.source.startswith(name) for e in micro)
    # the classifier got the window's faces onset..offset from the pipeline's history, in order
    assert seen and all(f is not None and f[0].index == w.onset_index and f[-1].index == w.offset_index
                        and len(f) == w.offset_index - w.onset_index + 1 for w, f in seen)
