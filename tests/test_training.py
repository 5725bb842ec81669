"""Dataset loader, LOSO splits, UF1/UAR scoring and a tiny training run on the real composite set."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from realtime_me.data import group_kfold, load_data, loso_splits, read_labels
from realtime_me.errors import UserError
from realtime_me.models import DEFAULT_AUS
from realtime_me.metrics import confusion, score, uf1_uar
from realtime_me.training import SCHEDULES, TrainConfig, train_model
from realtime_me.training.loop import augment

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(composite):
    return load_data(composite, au_names=DEFAULT_AUS)


def test_confusion_and_metrics_by_hand():
    y = [0, 0, 0, 0, 1, 1, 2, 2]
    p = [0, 0, 0, 1, 1, 0, 2, 1]
    cm = confusion(y, p, 3)
    assert cm.tolist() == [[3, 1, 0], [1, 1, 0], [0, 1, 1]]
    f1, uar = uf1_uar(cm)
    # F1: class0 2*3/(4+4)=0.75, class1 2*1/(2+3)=0.4, class2 2*1/(2+1)=2/3
    assert f1 == pytest.approx((0.75 + 0.4 + 2 / 3) / 3)
    # recall: 3/4, 1/2, 1/2
    assert uar == pytest.approx((0.75 + 0.5 + 0.5) / 3)


def test_metrics_ignore_classes_absent_from_truth():
    f1, uar = uf1_uar(confusion([0, 0, 1], [0, 0, 1], 3))
    assert f1 == 1.0 and uar == 1.0


def test_score_per_dataset():
    r = score(np.array([0, 1, 0, 1]), np.array([0, 1, 1, 1]), np.array(["a", "a", "b", "b"]), ("x", "y"))
    assert r["per_dataset"]["a"]["uf1"] == 1.0 and r["per_dataset"]["b"]["uar"] == 0.5
    assert r["overall"]["n"] == 4


def test_loso_never_leaks_a_subject():
    subjects = np.array(["a", "b", "a", "c", "b", "c", "c"])
    seen = []
    for s, tr, te in loso_splits(subjects):
        assert set(subjects[te]) == {s} and s not in set(subjects[tr])
        assert len(tr) + len(te) == len(subjects)
        seen += te.tolist()
    assert sorted(seen) == list(range(len(subjects)))
    for tr, te in group_kfold(subjects, 2, seed=0):
        assert not set(subjects[tr]) & set(subjects[te])


def test_missing_labels_is_user_error(tmp_path):
    with pytest.raises(UserError, match="labels.csv"):
        read_labels(tmp_path)
    (tmp_path / "labels.csv").write_text("sample,label\nx,0\n")
    with pytest.raises(UserError, match="missing column"):
        read_labels(tmp_path)


def test_augment_flip_negates_u():
    import torch
    flow = torch.rand(16, 3, 28, 28)
    apex = torch.randn(16, 1, 56, 56)
    cfg = TrainConfig(flip=True, shift=0, noise=0.0)
    g = torch.Generator().manual_seed(3)
    m = torch.rand(16, generator=torch.Generator().manual_seed(3)) < 0.5
    f2, a2 = augment(flow, apex, cfg, g)
    i = int(np.flatnonzero(m.numpy())[0])
    assert torch.allclose(f2[i, 0], 1 - flow[i, 0].flip(-1)) and torch.equal(f2[i, 1], flow[i, 1].flip(-1))
    assert torch.equal(a2[i], apex[i].flip(-1))
    j = int(np.flatnonzero(~m.numpy())[0])
    assert torch.equal(f2[j], flow[j])


def test_loader_reads_real_labels(data):
    assert len(data) == 397 and len(set(data.subjects.tolist())) == 62
    assert set(data.datasets.tolist()) == {"smic", "casme2", "samm"}
    assert data.flow.shape == (397, 3, 28, 28) and data.apex.shape[1:] == (1, 56, 56)
    assert data.flow.min() == 0.0 and data.flow.max() == 1.0
    smic = data.datasets == "smic"
    assert data.au_mask[smic].sum() == 0 and data.au_mask[~smic].all()
    assert set(np.unique(data.au).tolist()) <= {0.0, 1.0} and data.au[smic].sum() == 0   # multi-hot; SMIC uncoded
    assert (data.au[~smic].sum(1) > 0).mean() > 0.9      # nearly every coded sample names one of these AUs


@pytest.mark.slow
def test_tiny_training_run_lowers_the_loss(data):
    subjects = sorted(set(data.subjects.tolist()))[:5]
    idx = np.flatnonzero(np.isin(data.subjects, subjects))
    cfg = TrainConfig(epochs=4, batch_size=16, seed=0)
    for name, small in (("medn", {"dim": 32, "depth": 1}), ("ststnet", {})):
        _, hist = train_model(name, data, idx, cfg, **small)
        assert hist[-1] < hist[0], (name, hist)


def test_per_epoch_look_sees_eval_mode_and_changes_nothing(data):
    # benchmarks/epoch_selection.py predicts the held-out subjects after every epoch: that
    # must not move the training (same weights at the end) and must see an eval-mode model.
    subjects = sorted(set(data.subjects.tolist()))[:3]
    idx = np.flatnonzero(np.isin(data.subjects, subjects))
    cfg = TrainConfig(epochs=3, batch_size=16, seed=0)
    small = {"dim": 32, "depth": 1}
    seen = []
    looked, _ = train_model("medn", data, idx, cfg, on_epoch=lambda m, e: seen.append((e, m.training)), **small)
    plain, _ = train_model("medn", data, idx, cfg, **small)
    assert seen == [(0, False), (1, False), (2, False)]
    for (k, a), b in zip(looked.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), k


def test_schedules_are_fixed_configs():
    assert SCHEDULES["medn"].epochs > 0 and SCHEDULES["ststnet"].epochs > 0


def test_shipped_card_notes_come_from_the_selection_notes_file():
    # ``train --notes benchmarks/results/schedule_selection.md`` writes the shipped MEDN card's notes
    from realtime_me.training.cli import read_notes
    from realtime_me.weights import read_card

    notes = read_notes(ROOT / "benchmarks" / "results" / "schedule_selection.md")
    assert notes == read_card(ROOT / "models" / "medn").notes
    with pytest.raises(UserError, match="--notes"):
        read_notes(ROOT / "no-such-notes.md")


def test_default_au_set_is_the_frequent_aus(composite):
    from realtime_me.training import choose_aus
    assert choose_aus(composite, min_count=10) == DEFAULT_AUS


def test_per_subject_best_reads_each_subjects_best_epoch():
    from realtime_me.training import per_subject_best
    labels = np.array([0, 1, 0, 1])
    subjects = np.array(["a", "a", "b", "b"])
    probs = np.zeros((3, 4, 2), np.float32)
    probs[0, :, 0] = 1          # epoch 0: all class 0 -> a 1/2, b 1/2
    probs[1, [1, 2], 1] = 2     # epoch 1: predicts 0,1,1,0 -> a 2/2, b 0/2
    probs[2, :, 1] = 1          # epoch 2: all class 1 -> a 1/2, b 1/2 (tie with epoch 0: later wins)
    assert per_subject_best(probs, labels, subjects).tolist() == [0, 1, 1, 1]


def _small(data, n_subjects=4):
    from realtime_me.data import MEData
    idx = np.flatnonzero(np.isin(data.subjects, sorted(set(data.subjects.tolist()))[:n_subjects]))
    return MEData([data.rows[i] for i in idx], data.flow[idx], data.apex[idx], data.labels[idx], data.au[idx],
                  data.au_mask[idx], data.class_names, data.au_names)


def test_cross_validate_per_epoch_column_leaves_the_fixed_figure_alone(data):
    from realtime_me.training import cross_validate
    d = _small(data)
    splits = group_kfold(d.subjects, 2, seed=0)
    cfg = TrainConfig(epochs=2, batch_size=16)
    small = {"dim": 32, "depth": 1}
    plain = cross_validate("medn", d, splits, cfg, **small)
    looked = cross_validate("medn", d, splits, cfg, per_epoch=True, **small)
    assert plain["overall"] == looked["overall"]
    assert "per_subject_best" not in plain and len(looked["uf1_by_epoch"]) == 2
    assert looked["uf1_by_epoch"][-1] == looked["overall"]["uf1"]
    assert looked["per_subject_best"]["overall"]["n"] == len(d)


def test_init_state_is_where_training_starts(data):
    d = _small(data, 2)
    idx = np.arange(len(d))
    small = {"dim": 32, "depth": 1}
    a, _ = train_model("medn", d, idx, TrainConfig(epochs=1, batch_size=16, seed=0), **small)
    still = TrainConfig(epochs=1, batch_size=16, seed=1, lr=0.0)   # lr 0: parameters stay where they start
    zero = {k: torch.zeros_like(v) for k, v in a.state_dict().items() if k.startswith("motion.conv.0.")}
    b, _ = train_model("medn", d, idx, still, init=zero, **small)
    assert torch.equal(b.state_dict()["motion.conv.0.weight"], zero["motion.conv.0.weight"])
    c, _ = train_model("medn", d, idx, still, init=a.state_dict(), **small)
    fresh, _ = train_model("medn", d, idx, still, **small)
    for k, v in a.named_parameters():
        assert torch.equal(dict(c.named_parameters())[k], v), k
    assert not torch.equal(dict(fresh.named_parameters())["head.1.weight"], dict(a.named_parameters())["head.1.weight"])


def test_unknown_executor_is_a_user_error(data):
    from realtime_me.training import cross_validate
    d = _small(data, 2)
    with pytest.raises(UserError, match="executor"):
        cross_validate("medn", d, group_kfold(d.subjects, 2), TrainConfig(epochs=1), executor="dask")


@pytest.mark.slow
def test_ray_executor_gives_the_local_results(data):
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.skip("ray is not installed (optional extra: pip install '.[ray]')")
    from realtime_me.training import cross_validate
    d = _small(data, 4)
    splits = group_kfold(d.subjects, 2, seed=0)
    cfg = TrainConfig(epochs=1, batch_size=16)
    small = {"dim": 32, "depth": 1}
    local = cross_validate("medn", d, splits, cfg, workers=2, **small)
    on_ray = cross_validate("medn", d, splits, cfg, workers=2, executor="ray", **small)
    assert on_ray["overall"] == local["overall"] and on_ray["executor"] == "ray"
