"""The composite dataset in memory, and the subject-wise splits used to score on it.

A folder in the composite layout holds ``labels.csv`` (sample, label, apex, flow;
optionally dataset, subject, aus) plus the ``apex/`` and ``flow/`` images it
names. Everything is read once into arrays (397 samples are ~4 MB), already
normalised by ``preprocess.sample_inputs``, so training never touches disk.
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from .errors import UserError
from .preprocess import APEX_SIZE, sample_inputs
from .types import EMOTIONS

REQUIRED_COLUMNS = ("sample", "label", "apex", "flow")


@dataclass(slots=True)
class SampleRow:
    sample: str
    dataset: str
    subject: str
    label: int
    apex: str
    flow: str
    aus: tuple[str, ...]   # e.g. ("AU4", "AU7"); empty when not coded
    au_coded: bool


@dataclass
class MEData:
    """All samples of a folder as arrays, row i = ``rows[i]``."""

    rows: list[SampleRow]
    flow: np.ndarray       # (N,3,28,28) float32
    apex: np.ndarray       # (N,1,S,S) float32
    labels: np.ndarray     # (N,) int64
    au: np.ndarray         # (N,A) float32 multi-hot over ``au_names``
    au_mask: np.ndarray    # (N,) float32: 1 where the row has AU coding
    class_names: tuple[str, ...]
    au_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def subjects(self) -> np.ndarray:
        return np.array([r.subject for r in self.rows])

    @property
    def datasets(self) -> np.ndarray:
        return np.array([r.dataset for r in self.rows])


def _parse_aus(text: str) -> tuple[str, ...]:
    out = []
    for tok in text.replace(" ", "").split("+"):
        digits = "".join(ch for ch in tok if ch.isdigit())
        if digits:
            out.append(f"AU{int(digits)}")
    return tuple(dict.fromkeys(out))


def parse_aus(text: str) -> tuple[str, ...]:
    """Coders' AU string ("4+7+L10") -> ("AU4", "AU7", "AU10"); the one parser for every sample list."""
    return _parse_aus(text)


def read_labels(data_dir: str | Path) -> list[SampleRow]:
    """Parse ``labels.csv``; missing columns or bad labels are a UserError naming the line."""
    path = Path(data_dir) / "labels.csv"
    if not path.is_file():
        raise UserError(f"{path}: not found (expected a folder in the composite layout: labels.csv, apex/, flow/)")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = []
        for line, r in enumerate(reader, start=2):
            try:
                label = int(r["label"])
            except ValueError:
                raise UserError(f"{path}:{line}: label {r['label']!r} is not an integer") from None
            aus = r.get("aus") or ""
            rows.append(SampleRow(r["sample"], r.get("dataset") or "unknown", r.get("subject") or r["sample"],
                                  label, r["apex"], r["flow"], _parse_aus(aus), bool(aus.strip())))
    if not rows:
        raise UserError(f"{path}: no samples")
    return rows


def au_counts(rows: Sequence[SampleRow]) -> Counter:
    return Counter(a for r in rows for a in r.aus)


def _read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if img is None:
        raise UserError(f"{path}: missing or unreadable image")
    return img


def au_matrix(rows, au_names) -> np.ndarray:
    """(n, len(au_names)) multi-hot of each row's AUs; AUs outside ``au_names`` are dropped."""
    index = {a: i for i, a in enumerate(au_names)}
    au = np.zeros((len(rows), len(au_names)), np.float32)
    for i, r in enumerate(rows):
        for a in r.aus:
            if a in index:
                au[i, index[a]] = 1.0
    return au


def load_data(data_dir: str | Path, class_names: Sequence[str] = EMOTIONS, au_names: Sequence[str] = (),
              apex_size: int = APEX_SIZE) -> MEData:
    """Read a composite-layout folder into normalised arrays."""
    root = Path(data_dir)
    rows = read_labels(root)
    bad = [r for r in rows if not 0 <= r.label < len(class_names)]
    if bad:
        raise UserError(f"{root / 'labels.csv'}: sample {bad[0].sample} has label {bad[0].label}, "
                        f"outside 0..{len(class_names) - 1} ({', '.join(class_names)})")
    flows, apexes = [], []
    for r in rows:
        try:
            x = sample_inputs(_read_image(root / r.apex), _read_image(root / r.flow), apex_size)
        except ValueError as e:
            raise UserError(f"{root}: sample {r.sample}: {e}") from None
        flows.append(x.flow)
        apexes.append(x.apex)
    au = au_matrix(rows, au_names)
    return MEData(rows, np.stack(flows), np.stack(apexes), np.array([r.label for r in rows], np.int64), au,
                  np.array([r.au_coded for r in rows], np.float32), tuple(class_names), tuple(au_names))


def loso_splits(subjects: Sequence[str]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(subject, train indices, test indices) for each subject, in sorted subject order."""
    subjects = np.asarray(subjects)
    for s in sorted(set(subjects.tolist())):
        yield s, np.flatnonzero(subjects != s), np.flatnonzero(subjects == s)


def group_kfold(subjects: Sequence[str], k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k subject-disjoint (train, test) splits, subjects shuffled with ``seed`` and dealt round-robin."""
    subjects = np.asarray(subjects)
    uniq = sorted(set(subjects.tolist()))
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = {uniq[j]: i % k for i, j in enumerate(order)}
    folds = np.array([fold_of[s] for s in subjects])
    return [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(k)]
