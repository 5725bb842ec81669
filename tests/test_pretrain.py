"""Synthetic AU pretraining: the generator's fields on a face, through the live preprocessing, and fold honesty."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime_me import pretrain
from realtime_me.data import MEData, SampleRow
from realtime_me.models import DEFAULT_AUS


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory):
    """A composite-layout folder of two subjects whose apex crops are the astronaut's face."""
    import skimage.data

    from realtime_me.landmarks import landmarks_of_image

    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    lm = landmarks_of_image(photo)[:, :2]
    (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
    c, side = (lm.min(0) + lm.max(0)) / 2, 1.1 * max(x1 - x0, y1 - y0)
    x, y = int(c[0] - side / 2), int(c[1] - side / 2)
    crop = cv2.resize(photo[max(y, 0):y + int(side), max(x, 0):x + int(side)], (224, 224))
    root = tmp_path_factory.mktemp("faces")
    (root / "apex").mkdir()
    (root / "flow").mkdir()
    lines = ["sample,dataset,subject,label,apex,flow"]
    for k, subject in enumerate(("s1", "s2")):
        cv2.imwrite(str(root / "apex" / f"{k}.jpg"), crop if k == 0 else cv2.flip(crop, 1))
        cv2.imwrite(str(root / "flow" / f"{k}.png"), np.zeros((28, 28, 3), np.uint8))
        lines.append(f"x{k},casme2,{subject},0,apex/{k}.jpg,flow/{k}.png")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.slow
def test_synthetic_pairs_carry_the_generators_labels(face_folder):
    cfg = pretrain.SynthSetConfig(per_face=6)
    d = pretrain.render_synthetic(face_folder, DEFAULT_AUS, cfg=cfg, progress=False, cache=False)
    assert len(d) == 12 and sorted(set(d.subjects.tolist())) == ["s1", "s2"]
    assert d.flow.shape == (12, 3, 28, 28) and d.apex.shape == (12, 1, 56, 56)
    assert d.flow.min() == 0.0 and d.flow.max() == 1.0 and d.au_mask.all()
    from realtime_me.synth import EXPRESSIONS
    from realtime_me.types import EMOTIONS
    allowed = {e.emotion: set() for e in EXPRESSIONS}
    for e in EXPRESSIONS:
        allowed[e.emotion].add(tuple(f"AU{n}" for n in e.au_numbers))
    for r, au in zip(d.rows, d.au):
        assert r.aus in allowed[EMOTIONS[r.label]]
        assert {DEFAULT_AUS[i] for i in np.flatnonzero(au)} == {a for a in r.aus if a in DEFAULT_AUS}
    again = pretrain.render_synthetic(face_folder, DEFAULT_AUS, cfg=cfg, progress=False, cache=False)
    assert np.array_equal(again.flow, d.flow)   # seeded per face


@pytest.mark.slow
def test_a_brow_raise_moves_the_top_of_the_flow_up(face_folder):
    # AU1+2 (surprise) on a real face through make_inputs: v (down-positive, min-max scaled)
    # is lowest in the brow rows, as in the published flow images.
    from realtime_me.landmarks import landmarks_of_image
    from realtime_me.synth import EXPRESSIONS
    face = pretrain.padded(cv2.imread(str(face_folder / "apex" / "0.jpg")))
    lm = landmarks_of_image(face)[:, :2].astype(np.float64)
    brow = next(e for e in EXPRESSIONS if e.au_numbers == [1, 2])
    from realtime_me.synth import apply_expression
    moved = apply_expression(face, lm, brow, 3.0)
    diff = np.abs(moved.astype(int) - face.astype(int)).sum(2)
    ys, _ = np.nonzero(diff > 8)
    brow_y = lm[[105, 334], 1].mean()
    mouth_y = lm[[61, 291], 1].mean()
    assert len(ys) and abs(np.median(ys) - brow_y) < abs(np.median(ys) - mouth_y)


def test_keep_parts():
    state = {"motion.conv.0.weight": 1, "au_head.bias": 2, "emotion.cls": 3, "head.1.weight": 4}
    assert set(pretrain.keep_parts(state, "motion")) == {"motion.conv.0.weight", "au_head.bias"}
    assert pretrain.keep_parts(state, "all") == state
    with pytest.raises(ValueError):
        pretrain.keep_parts(state, "head")


def test_face_groups_partition_subjects_and_folds_must_not_straddle():
    subjects = np.array([f"s{i % 9}" for i in range(40)])
    groups = pretrain.face_groups(subjects, 3)
    assert sorted(s for g in groups for s in g) == sorted(set(subjects.tolist()))
    assert pretrain.group_of({next(iter(groups[1]))}, groups) == 1
    with pytest.raises(ValueError, match="straddle"):
        pretrain.group_of({next(iter(groups[0])), next(iter(groups[1]))}, groups)


def _fake_set(subjects):
    n = len(subjects)
    rows = [SampleRow(f"r{i}", "synth", s, i % 3, "", "", (), True) for i, s in enumerate(subjects)]
    return MEData(rows, np.zeros((n, 3, 28, 28), np.float32), np.zeros((n, 1, 56, 56), np.float32),
                  np.arange(n) % 3, np.zeros((n, len(DEFAULT_AUS)), np.float32), np.ones(n, np.float32),
                  ("negative", "positive", "surprise"), DEFAULT_AUS)


def test_no_held_out_face_enters_its_folds_pretraining(monkeypatch, tmp_path):
    from realtime_me.data import loso_splits
    real_subjects = [f"s{i}" for i in range(10) for _ in range(3)]
    real = _fake_set(real_subjects)
    synth = _fake_set([s for s in real_subjects for _ in range(2)])
    monkeypatch.setattr(pretrain, "render_synthetic", lambda *a, **k: synth)
    monkeypatch.setattr(pretrain, "synth_key", lambda *a: "test")
    monkeypatch.setattr(pretrain, "CACHE", tmp_path)
    trained_on = {}

    def fake_state(data, name, idx, cfg, overrides):
        import torch
        tag = len(trained_on)
        trained_on[tag] = set(data.subjects[idx].tolist())
        return {"motion.tag": torch.tensor([tag])}

    import realtime_me.training as training
    monkeypatch.setattr(training, "pretrain_state", fake_state)
    splits = [(tr, te) for _, tr, te in loso_splits(real.subjects)]
    inits = pretrain.pretrained_inits("medn", real, splits, tmp_path, pretrain.PretrainConfig(groups=3))
    assert len(trained_on) == 3
    for (_, te), init in zip(splits, inits):
        held_out = set(real.subjects[te].tolist())
        assert not held_out & trained_on[int(init["motion.tag"])]
    # cached: a second call trains nothing and gives the same states
    trained_on.clear()
    again = pretrain.pretrained_inits("medn", real, splits, tmp_path, pretrain.PretrainConfig(groups=3))
    assert not trained_on and [int(a["motion.tag"]) for a in again] == [int(a["motion.tag"]) for a in inits]
