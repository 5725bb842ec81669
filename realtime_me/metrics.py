"""The scores every evaluation shares, defined once so that all reported figures agree.

Spotting (the MEGC rule): a spotted interval matches a ground-truth interval when their
IoU over the inclusive frames onset..offset is at least 0.5, with one match per
interval; precision, recall and F1 come from the summed counts. spot-eval, the real-clip
evaluation, the demo's ground-truth report and the tests all match events this way.

Recognition: UF1 (mean per-class F1) and UAR (mean per-class recall) over the classes
present in the truth, from the confusion matrix, overall and per dataset (the
composite-set LOSO metric), plus micro-averaged AU precision/recall.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .types import Event, Window

IOU_THRESHOLD = 0.5

#: inclusive (onset, offset) frame indices
Interval = tuple[int, int]


# ------------------------------------------------------------------ spotting (MEGC)
def interval(x: Window | Event | dict) -> Interval:
    """(onset, offset) of a Window, an Event, or an event / ground-truth dict (``onset_frame``, ``offset_frame``)."""
    if isinstance(x, Event):
        x = x.window
    if isinstance(x, Window):
        return x.onset_index, x.offset_index
    return int(x["onset_frame"]), int(x["offset_frame"])


def iou(a: Interval, b: Interval) -> float:
    """IoU of two inclusive frame intervals (onset, offset)."""
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if inter <= 0:
        return 0.0
    union = (a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter
    return inter / union


@dataclass
class Match:
    tp: int
    fp: int
    fn: int
    pairs: list[tuple[int, int, float]]   # (pred index, truth index, IoU)

    @property
    def unmatched_pred(self) -> set[int]:
        return set(range(self.tp + self.fp)) - {p for p, _, _ in self.pairs}


def match(pred: list[Interval], truth: list[Interval], threshold: float = IOU_THRESHOLD) -> Match:
    """One-to-one matching, highest IoU first; a pair counts when IoU >= threshold.

    With disjoint truth intervals a prediction can exceed IoU 0.5 with at most one of
    them, so greedy matching is the maximum matching here, except where a prediction
    sits at exactly 0.5 with two truths (then the pick can depend on the order)."""
    cand = sorted(((iou(p, t), i, j) for i, p in enumerate(pred) for j, t in enumerate(truth)), reverse=True)
    used_p, used_t, pairs = set(), set(), []
    for v, i, j in cand:
        if v < threshold:
            break
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            pairs.append((i, j, v))
    tp = len(pairs)
    return Match(tp, len(pred) - tp, len(truth) - tp, pairs)


def match_intervals(truth: list[Interval], found: list[Interval],
                    threshold: float = IOU_THRESHOLD) -> list[tuple[int, int]]:
    """(truth index, found index) of the MEGC matches, for reports that start from the truth."""
    return sorted((j, i) for i, j, _ in match(found, truth, threshold).pairs)


def matched_micro(truth_events: list[dict], events: list[Event]) -> tuple[list[dict], list[Event], dict[int, Event]]:
    """Ground-truth micro-expressions, spotted micro Events, and {truth index: Event} of the matches."""
    truth = [e for e in truth_events if e["kind"] == "micro"]
    found = [e for e in events if e.window.kind == "micro"]
    pairs = match_intervals([interval(e) for e in truth], [interval(e) for e in found])
    return truth, found, {ti: found[fi] for ti, fi in pairs}


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 of summed counts; nothing to find and nothing reported scores 1."""
    p = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}


# ------------------------------------------------------------------ recognition
def confusion(y_true: Sequence[int], y_pred: Sequence[int], n: int) -> np.ndarray:
    """n x n counts, rows = truth, columns = prediction."""
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def uf1_uar(cm: np.ndarray) -> tuple[float, float]:
    """UF1 = mean per-class F1, UAR = mean per-class recall, over classes present in the truth."""
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(1).astype(float), cm.sum(0).astype(float)
    present = support > 0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=(support + predicted) > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    return float(f1[present].mean()), float(recall[present].mean())


def score(y_true: np.ndarray, y_pred: np.ndarray, datasets: np.ndarray, class_names: Sequence[str]) -> dict:
    """UF1/UAR/confusion overall and per dataset."""
    def one(sel):
        cm = confusion(y_true[sel], y_pred[sel], len(class_names))
        f1, uar = uf1_uar(cm)
        return {"uf1": round(f1, 4), "uar": round(uar, 4), "n": int(sel.sum()), "confusion": cm.tolist()}
    out = {"overall": one(np.ones(len(y_true), bool)), "per_dataset": {}}
    for d in sorted(set(datasets.tolist())):
        out["per_dataset"][d] = one(datasets == d)
    out["class_names"] = list(class_names)
    return out


def au_scores(au_true: np.ndarray, mask: np.ndarray, au_prob: np.ndarray, names: Sequence[str],
              threshold: float = 0.5) -> dict:
    """AU recall / precision at ``threshold`` over the coded samples (micro-averaged; 0 when nothing is coded
    or reported)."""
    sel = mask > 0
    t, p = au_true[sel] > 0.5, au_prob[sel] >= threshold
    tp, fn, fp = int((t & p).sum()), int((t & ~p).sum()), int((~t & p).sum())
    return {"n_samples": int(sel.sum()), "coded": tp + fn, "found": tp, "reported": tp + fp,
            "recall": round(tp / max(tp + fn, 1), 4), "precision": round(tp / max(tp + fp, 1), 4),
            "au_names": list(names), "threshold": threshold}


def plot_confusion(result: dict, out: str | Path) -> None:
    """A ``score`` result's confusion matrices (all, then per dataset) as one PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("all", result["overall"])] + list(result["per_dataset"].items())
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2))
    names = result["class_names"]
    for ax, (title, r) in zip(np.atleast_1d(axes), panels):
        cm = np.array(r["confusion"])
        ax.imshow(cm / np.maximum(cm.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=45, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_title(f"{title}: UF1 {r['uf1']:.3f} UAR {r['uar']:.3f}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
