"""Scoring protocols over subject-disjoint splits: LOSO, k-fold CV, the per-subject best-epoch column.

Every fold trains with the same fixed schedule and its held-out subjects are predicted
once, after the last epoch; predictions are pooled over folds and scored together
(``metrics.score``). The per-subject best-epoch column reads the test labels and exists
only for comparison with published figures that use it.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..data import MEData, au_counts, load_data, loso_splits, read_labels
from ..metrics import score
from ..models import make_config
from ..paths import SHARED_DATA
from .loop import SCHEDULES, TrainConfig, predict, train_model
from .tasks import run_tasks

DEFAULT_DATA = SHARED_DATA / "composite"


def choose_aus(data_dir: str | Path, min_count: int = 10) -> tuple[str, ...]:
    """AUs coded at least ``min_count`` times, in numeric order."""
    counts = au_counts(read_labels(data_dir))
    return tuple(sorted((a for a, c in counts.items() if c >= min_count), key=lambda a: int(a[2:])))


def load_for(model: str | object, data_dir: str | Path) -> MEData:
    """The data in the classes, AUs and apex size a model (registry name or config) asks for."""
    cfg = make_config(model) if isinstance(model, str) else model
    return load_data(data_dir, cfg.class_names, tuple(getattr(cfg, "au_names", ())), getattr(cfg, "apex_size", 56))


def cross_validate(name: str, data: MEData, splits, cfg: TrainConfig, desc: str = "folds", workers: int = 1,
                   inits: Sequence[dict | None] | None = None, per_epoch: bool = False,
                   executor: str = "local", address: str | None = None, **overrides) -> dict:
    """Train/predict over subject-disjoint splits and score the pooled predictions.

    ``workers`` and ``executor``/``address``: where the folds run (``tasks.run_tasks``;
    same seeds, same predictions). ``inits[i]`` is split i's starting state dict
    (pretraining). ``per_epoch`` also predicts the test rows after every epoch and adds
    the per-subject best-epoch column (``per_subject_best``: reads the test labels, for
    comparison with published figures only)."""
    probs = np.zeros((len(data), len(data.class_names)), np.float32)
    by_epoch = np.zeros((cfg.epochs, len(data), len(data.class_names)), np.float32) if per_epoch else None
    seen = np.zeros(len(data), bool)
    t0 = time.perf_counter()
    inits = list(inits) if inits is not None else [None] * len(splits)
    tasks = [(name, tr, te, cfg, overrides, init, per_epoch) for (tr, te), init in zip(splits, inits)]
    for te, p, pe in run_tasks(_fold, data, tasks, workers, executor, address, desc):
        probs[te], seen[te] = p, True
        if per_epoch:
            by_epoch[:, te] = pe
    pred = probs.argmax(1)
    result = score(data.labels[seen], pred[seen], data.datasets[seen], data.class_names)
    if per_epoch:
        result.update(_per_epoch_columns(by_epoch[:, seen], data, np.flatnonzero(seen)))
    result.update(model=name, samples=int(seen.sum()), subjects=len(set(data.subjects[seen].tolist())),
                  wall_time_s=round(time.perf_counter() - t0, 1), train_config=dataclasses.asdict(cfg),
                  model_overrides=overrides, workers=workers, executor=executor,
                  threads_per_worker=1 if workers > 1 or executor == "ray" else torch.get_num_threads())
    return result


def _per_epoch_columns(by_epoch: np.ndarray, data: MEData, sel: np.ndarray) -> dict:
    """The per-subject best-epoch score and the pooled UF1 after each epoch, of rows ``sel``."""
    labels, datasets = data.labels[sel], data.datasets[sel]
    best = per_subject_best(by_epoch, labels, data.subjects[sel])
    return {"per_subject_best": score(labels, best, datasets, data.class_names),
            "uf1_by_epoch": [round(score(labels, p.argmax(1), datasets, data.class_names)["overall"]["uf1"], 4)
                             for p in by_epoch]}


def per_subject_best(probs: np.ndarray, labels: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """(E, N, C) -> (N,) predictions: each subject's rows from the epoch with its best accuracy
    (ties to the later epoch), HTNet's ``best_each_subject_pred`` rule. Reads the test labels."""
    pred = probs.argmax(2)
    out = pred[-1].copy()
    for s in np.unique(subjects):
        rows = subjects == s
        acc = (pred[:, rows] == labels[rows]).mean(1)
        best = len(acc) - 1 - int(np.argmax(acc[::-1]))
        out[rows] = pred[best, rows]
    return out


def _fold(data: MEData, name: str, train_idx: np.ndarray, test_idx: np.ndarray, cfg: TrainConfig, overrides: dict,
          init: dict | None = None, per_epoch: bool = False):
    """(test rows, last-epoch probabilities, (E, len(test), C) per-epoch probabilities or None)."""
    seen = []
    hook = (lambda m, _: seen.append(predict(m, data, test_idx))) if per_epoch else None
    model, _ = train_model(name, data, train_idx, cfg, on_epoch=hook, init=init, **overrides)
    return test_idx, predict(model, data, test_idx), (np.stack(seen) if per_epoch else None)


def pretrain_state(data: MEData, name: str, train_idx: np.ndarray, cfg: TrainConfig, overrides: dict) -> dict:
    """Train ``name`` on rows ``train_idx`` (the synthetic set) and return its state dict."""
    model, _ = train_model(name, data, train_idx, cfg, **overrides)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def loso(name: str, data: MEData, cfg: TrainConfig | None = None, workers: int = 1, pretrain=None,
         data_dir: str | Path = DEFAULT_DATA, per_epoch: bool = False, executor: str = "local",
         address: str | None = None, **overrides) -> dict:
    """Leave-one-subject-out; ``pretrain`` (a ``pretrain.PretrainConfig``) starts each fold from
    synthetic pretraining on faces outside the held-out subject's face group."""
    cfg = cfg or SCHEDULES[name]
    splits = [(tr, te) for _, tr, te in loso_splits(data.subjects)]
    inits = None
    if pretrain is not None:
        from ..pretrain import pretrained_inits

        inits = pretrained_inits(name, data, splits, data_dir, pretrain, workers, executor, address, overrides)
    result = cross_validate(name, data, splits, cfg, desc=f"LOSO {name}", workers=workers, inits=inits,
                            per_epoch=per_epoch, executor=executor, address=address, **overrides)
    result["protocol"] = "leave-one-subject-out, predictions pooled over folds; fixed schedule, no test-subject epoch picking"
    if pretrain is not None:
        result["pretrain"] = pretrain_summary(pretrain)
    return result


def pretrain_summary(p) -> dict:
    """What a result records of a ``pretrain.PretrainConfig``."""
    return {"synthetic_set": dataclasses.asdict(p.synth), "schedule": dataclasses.asdict(p.schedule),
            "parts": p.parts, "face_groups": p.groups}
