"""Classification stage on real faces: composite apex crops -> FaceTracker -> align -> Classifier."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from realtime_me.classify import REGION_AUS, Classifier, cued_aus, softmax
from realtime_me.engines import load_engine
from realtime_me.errors import UserError
from realtime_me.models import create_model
from realtime_me.types import Window
from realtime_me.weights import ModelCard, read_card, save_model


def _save(model, out: Path, **card) -> Path:
    return save_model(model, ModelCard.for_model(model, **card), out)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(11)
    return _save(create_model("medn").eval(), tmp_path_factory.mktemp("w") / "medn")


@pytest.fixture(scope="module")
def engines(weights, tmp_path_factory):
    cache = tmp_path_factory.mktemp("engines")
    return load_engine(weights, "onnxruntime", cache_dir=cache), load_engine(weights, "torch", cache_dir=cache)


@pytest.fixture(scope="module")
def faces(shared_data):
    """Aligned faces of two real apex crops of one subject (onset stand-in, apex)."""
    from realtime_me.alignment import align
    from realtime_me.data import read_labels
    from realtime_me.landmarks import FaceTracker
    from realtime_me.types import Frame

    root = shared_data / "composite"
    rows = [r for r in read_labels(root) if r.subject == "casme2_sub01"][:2]
    out = []
    with FaceTracker(static_images=True) as tracker:
        for i, r in enumerate(rows):
            img = cv2.imread(str(root / r.apex))
            lm = tracker.process(Frame(i, i / 200, img))
            assert lm is not None, f"no face found in {r.apex}"
            out.append(align(img, lm))
    return out


def _window(**cues) -> Window:
    return Window(10, 20, 30, 0.05, 0.10, 0.15, cues=dict(cues))


def test_classify_real_faces(weights, engines, faces):
    ort_engine, torch_engine = engines
    onset, apex = faces
    assert apex.crop.shape == (224, 224, 3)
    clf = Classifier(ort_engine)
    ev = clf.classify(_window(), onset, apex)
    assert ev.emotion in clf.labels and set(ev.probs) == set(clf.labels)
    assert abs(sum(ev.probs.values()) - 1) < 1e-6
    assert ev.confidence == max(ev.probs.values()) == ev.probs[ev.emotion]
    # The probabilities are the softmax of what the engine computes on these inputs.
    logits = ort_engine.run(clf.inputs(onset, apex))["logits"][0]
    np.testing.assert_allclose([ev.probs[k] for k in clf.labels], softmax(logits.astype(np.float64)), atol=1e-6)
    # Same event from the reference engine.
    ref = Classifier(torch_engine).classify(_window(), onset, apex)
    assert ref.emotion == ev.emotion
    np.testing.assert_allclose([ref.probs[k] for k in clf.labels], [ev.probs[k] for k in clf.labels], atol=1e-4)
    assert ev.source == "medn/onnxruntime" and ev.window.kind == "micro"


def test_au_threshold_and_region_cues(weights, engines, faces):
    engine = engines[0]
    onset, apex = faces
    au_names = read_card(weights).aus
    probs = 1 / (1 + np.exp(-engine.run(Classifier(engine).inputs(onset, apex))["au_logits"][0]))
    everything = Classifier(engine, au_threshold=0.0).classify(_window(), onset, apex)
    assert list(everything.aus) == list(au_names)
    np.testing.assert_allclose(list(everything.aus.values()), probs, atol=1e-6)
    strict = Classifier(engine, au_threshold=1.01, cue_threshold=0.0)
    assert strict.classify(_window(), onset, apex).aus == {}
    cued = strict.classify(_window(brow_raise=0.08, lips_part=0.0, chin_raise=0.01), onset, apex)
    assert set(cued.aus) == {"AU1", "AU2", "AU17"} & set(au_names)
    ordered = np.sort(probs)
    mid = float(ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2  # between two AUs, not on one
    some = Classifier(engine, au_threshold=mid).classify(_window(), onset, apex)
    assert set(some.aus) == {a for a, p in zip(au_names, probs) if p >= mid}


def test_cued_aus_uses_the_strongest_cues_and_regions():
    assert cued_aus({"brow_raise": 0.05, "lip_corner_up": 0.2, "chin_raise": 0.01}, {}) == {"AU1", "AU2", "AU12", "AU14"}
    assert cued_aus({"eye_aperture": -0.3}, {}) == {"AU6", "AU7"}
    assert cued_aus({"eye_aperture": 0.3}, {}) == {"AU5"}
    # regions rank among themselves; a cue named like a region is not taken for one
    assert cued_aus({}, {"brow_l": 0.4, "chin": 0.01, "nose": 0.02}) == set(REGION_AUS["brow_l"]) | set(REGION_AUS["nose"])
    assert cued_aus({"mouth_r": 0.5}, {}) == set()
    assert cued_aus({"lips_part": 0.001}, {"mouth_r": 0.5}) == {"AU25", "AU26", *REGION_AUS["mouth_r"]}
    assert cued_aus({}, {}) == set()


def test_flow_only_model_classifies_without_aus(tmp_path, faces):
    torch.manual_seed(0)
    w = _save(create_model("ststnet").eval(), tmp_path / "st", aus=[])
    engine = load_engine(w, "onnxruntime", cache_dir=tmp_path / "e")
    assert engine.input_names == ("flow",) and engine.output_names == ("logits",)
    ev = Classifier(engine).classify(_window(brow_raise=1.0), *faces)
    assert ev.emotion in ev.probs and ev.aus == {}


def test_card_and_model_must_agree(engines):
    engine = copy.copy(engines[0])
    engine.spec = dataclasses.replace(engine.spec, labels=engine.spec.labels[:2])
    with pytest.raises(UserError, match="labels"):
        Classifier(engine)
