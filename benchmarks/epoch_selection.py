"""How much does picking epochs on the test subject inflate LOSO figures?

    .venv/bin/python -m benchmarks.epoch_selection --workers 2            # full LOSO, MEDN, ~30 min
    .venv/bin/python -m benchmarks.epoch_selection --cv 5 --workers 2     # 5-fold proxy, ~2 min

Trains MEDN on every fold with its fixed schedule, exactly as ``benchmarks/loso.py`` does
(the per-epoch look does not touch the training: same last-epoch predictions), and after
every epoch predicts the held-out subjects. Scores, over predictions pooled across folds:

- ``fixed``: the last epoch, what this project reports (no test data used to choose);
- ``best_epoch``: the one epoch (same for every fold) with the best pooled UF1, picked
  on the test predictions;
- ``per_subject_best``: for each held-out subject, the epoch with its best accuracy
  (ties to the later epoch), the rule in some public ME recognition code (e.g. HTNet's
  ``best_each_subject_pred``), which reads the test labels once per subject.

Writes benchmarks/results/epoch_selection.json (or epoch_selection_cv5.json).
``benchmarks/loso.py --per-epoch`` computes the per-subject column alongside any LOSO run.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]

from realtime_me.data import group_kfold, loso_splits
from realtime_me.metrics import score
from realtime_me.training import DEFAULT_DATA, SCHEDULES, load_for, per_subject_best, predict, train_model

RESULTS = ROOT / "benchmarks" / "results"
_DATA = None


def _init(data) -> None:
    global _DATA
    torch.set_num_threads(1)
    _DATA = data


def _fold(task):
    """(test rows, (epochs, len(test), C) probabilities after each epoch)."""
    train_idx, test_idx = task
    per_epoch = []
    train_model("medn", _DATA, train_idx, SCHEDULES["medn"],
                on_epoch=lambda model, _: per_epoch.append(predict(model, _DATA, test_idx)))
    return test_idx, np.stack(per_epoch)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--cv", type=int, default=0, help="k-fold subject-grouped CV instead of LOSO")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    data = load_for("medn", args.data)
    if args.cv:
        splits = group_kfold(data.subjects, args.cv, seed=0)
    else:
        splits = [(tr, te) for _, tr, te in loso_splits(data.subjects)]
    epochs = SCHEDULES["medn"].epochs
    probs = np.zeros((epochs, len(data), len(data.class_names)), np.float32)
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers, initializer=_init, initargs=(data,)) as pool:
        for te, pe in tqdm(pool.imap_unordered(_fold, splits), total=len(splits), desc="folds", unit="fold"):
            probs[:, te] = pe

    def scored(pred: np.ndarray) -> dict:
        return score(data.labels, pred, data.datasets, data.class_names)

    by_epoch = [scored(probs[e].argmax(1))["overall"]["uf1"] for e in range(epochs)]
    best = int(np.argmax(by_epoch))
    result = {
        "protocol": f"{args.cv}-fold subject-grouped CV" if args.cv else "leave-one-subject-out",
        "model": "medn", "epochs": epochs, "samples": len(data),
        "fixed": scored(probs[-1].argmax(1)),
        "best_epoch": {"epoch": best + 1, **scored(probs[best].argmax(1))},
        "per_subject_best": scored(per_subject_best(probs, data.labels, data.subjects)),
        "uf1_by_epoch": [round(v, 4) for v in by_epoch],
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "machine": platform.processor() or platform.machine(),
    }
    for k in ("fixed", "best_epoch", "per_subject_best"):
        o = result[k]["overall"]
        print(f"{k:18s} UF1 {o['uf1']:.4f}  UAR {o['uar']:.4f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / (f"epoch_selection_cv{args.cv}.json" if args.cv else "epoch_selection.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
