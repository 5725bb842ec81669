"""Training and leave-one-subject-out scoring of the sequence models (FDP, point cloud).

``realtime-me train|loso --model fdp|pointcloud --dataset FILE`` hand over here. The
samples come from ``sequences.dataset_samples`` (the ``recognise --dataset`` layout:
folders onset -> offset with labels, tracked and framed as ``recognise`` does) or,
for pretraining, from ``sequences.synthetic_samples`` (``--synthetic N.npz``, written by
``benchmarks/seq_models.py``).

The loop follows ``training``'s rules: AdamW, a fixed epoch count with cosine decay,
class-weighted cross-entropy from the training subjects, masked AU BCE (rows without AU
coding contribute nothing), no early stopping, and nothing looks at a held-out subject
before its predictions are made. FDP adds the paper's two auxiliary losses: the
pairwise rank loss on its frame scores (later frames must score higher) and the MSE of
its decoded dynamic image against the approximate-rank-pooled frames.

Augmentation (training only): FDP, horizontal flip of the frames and their dynamic
image, Gaussian noise; point cloud, a random in-plane rotation (+-5 degrees) and scale
(+-5 %) of positions and displacements alike, plus displacement noise. (Mirroring a
cloud would need the mesh's left/right point pairs; not done.)
``--init DIR`` starts from saved weights (fine-tuning a pretrained model).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import UserError
from .metrics import au_scores, plot_confusion, score
from .sequences import SEQ_PREPROCESS_VERSION, SeqSample

#: the architectures this module trains
SEQ_MODELS = ("fdp", "pointcloud")


@dataclass(frozen=True)
class SeqTrainConfig:
    epochs: int = 40
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    au_weight: float = 0.5
    rank_weight: float = 0.1      # FDP only
    dynamic_weight: float = 0.5   # FDP only
    noise: float = 0.05
    seed: int = 0


#: fixed schedules (not tuned on any real clip: chosen so pretraining fits a few CPU minutes)
SEQ_SCHEDULES: dict[str, SeqTrainConfig] = {
    "fdp": SeqTrainConfig(epochs=30),
    "pointcloud": SeqTrainConfig(epochs=30, batch_size=64),
}


# ---------------------------------------------------------------- data
@dataclass
class SeqData:
    """Stacked samples for one architecture's input."""

    x: np.ndarray            # (n, ...) frames or cloud
    dynamic: np.ndarray      # (n, 1, 32, 32)
    labels: np.ndarray       # (n,) class index
    au: np.ndarray           # (n, A) multi-hot
    au_mask: np.ndarray      # (n,) 1 where the sample has AU coding
    subjects: np.ndarray
    datasets: np.ndarray
    names: list[str]
    class_names: tuple[str, ...]
    au_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def choose_aus(samples: Sequence[SeqSample], min_count: int = 1) -> tuple[str, ...]:
    """AUs coded at least ``min_count`` times, in numeric order."""
    from collections import Counter

    counts = Counter(a for s in samples for a in s.aus)
    return tuple(sorted((a for a, c in counts.items() if c >= min_count), key=lambda a: int("".join(filter(str.isdigit, a)) or 0)))


def stack(name: str, samples: Sequence[SeqSample], class_names: Sequence[str], au_names: Sequence[str]) -> SeqData:
    if not samples:
        raise UserError("no samples to train on")
    bad = sorted({s.label for s in samples if s.label not in class_names}, key=str)
    if bad:
        raise UserError(f"label(s) {bad} are not among the classes {list(class_names)}")
    key = "frames" if name == "fdp" else "cloud"
    au = np.array([[a in s.aus for a in au_names] for s in samples], np.float32).reshape(len(samples), len(au_names))
    return SeqData(np.stack([getattr(s, key) for s in samples]).astype(np.float32),
                   np.stack([s.dynamic for s in samples]).astype(np.float32),
                   np.array([list(class_names).index(s.label) for s in samples]), au,
                   np.array([bool(s.aus) for s in samples], np.float32),
                   np.array([s.subject for s in samples]), np.array([s.dataset for s in samples]),
                   [s.name for s in samples], tuple(class_names), tuple(au_names))


# ---------------------------------------------------------------- training
def _rotate_cloud(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    ang = (torch.rand(b, generator=g) * 2 - 1) * math.radians(5)
    sc = 1 + (torch.rand(b, generator=g) * 2 - 1) * 0.05
    c, s = torch.cos(ang) * sc, torch.sin(ang) * sc
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)      # (B, 2, 2)
    pos = torch.einsum("bij,bjn->bin", rot, x[:, :2])                                 # (B, 2, N)
    disp = torch.einsum("bij,bjn->bin", rot, x[:, 2:4])                               # (B, 2, N)
    return torch.cat([pos, disp, x[:, 4:]], 1)


def augment(name: str, x: torch.Tensor, dyn: torch.Tensor, cfg: SeqTrainConfig, g: torch.Generator):
    if name == "fdp":
        flip = torch.rand(x.shape[0], generator=g) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        dyn = torch.where(flip.view(-1, 1, 1, 1), dyn.flip(-1), dyn)
        return x + cfg.noise * torch.randn(x.shape, generator=g), dyn
    x = _rotate_cloud(x, g)
    noise = torch.zeros_like(x)
    noise[:, 2:4] = cfg.noise * torch.randn(x[:, 2:4].shape, generator=g)
    return x + noise, dyn


def rank_loss(scores: torch.Tensor) -> torch.Tensor:
    """Pairwise logistic loss: every later frame should score higher than every earlier one."""
    d = scores.unsqueeze(1) - scores.unsqueeze(2)                   # (B, T, T): s_j - s_i
    t = scores.shape[1]
    later = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)       # j > i
    return F.softplus(-d[:, later]).mean()


def losses(name: str, model: nn.Module, x, dyn, y, au, mask, cfg: SeqTrainConfig, weight) -> dict[str, torch.Tensor]:
    out = model.forward_train(x) if name == "fdp" else dict(zip(("logits", "au_logits"), model(x)))
    parts = {"ce": F.cross_entropy(out["logits"], y, weight=weight, label_smoothing=cfg.label_smoothing)}
    if cfg.au_weight and au.shape[1] and mask.sum() > 0:
        bce = F.binary_cross_entropy_with_logits(out["au_logits"], au, reduction="none").mean(1)
        parts["au"] = cfg.au_weight * (bce * mask).sum() / mask.sum()
    if name == "fdp":
        parts["rank"] = cfg.rank_weight * rank_loss(out["scores"])
        parts["dynamic"] = cfg.dynamic_weight * F.mse_loss(out["dynamic"], dyn)
    return parts


def train(name: str, data: SeqData, idx: np.ndarray, cfg: SeqTrainConfig, init: nn.Module | None = None,
          progress: bool = False, desc: str = "training") -> tuple[nn.Module, list[float]]:
    """Train ``name`` on ``data[idx]`` with the fixed schedule; returns the model (eval mode) and per-epoch loss."""
    from tqdm import tqdm

    from .models import create_model

    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    model = create_model(name, class_names=data.class_names, au_names=data.au_names)
    if init is not None:
        model.load_state_dict(init.state_dict())
    x, dyn = torch.from_numpy(data.x[idx]), torch.from_numpy(data.dynamic[idx])
    y, au, mask = torch.from_numpy(data.labels[idx]), torch.from_numpy(data.au[idx]), torch.from_numpy(data.au_mask[idx])
    counts = np.bincount(data.labels[idx], minlength=len(data.class_names)).astype(np.float64)
    weight = torch.tensor(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(counts), 0.0), dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(idx) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    history = []
    bar = tqdm(range(cfg.epochs), desc=desc, unit="epoch", disable=not progress, file=sys.stderr, leave=False)
    for _ in bar:
        model.train()
        perm = torch.randperm(len(idx), generator=g)
        total = 0.0
        for k in range(steps_per_epoch):
            b = perm[k * cfg.batch_size:(k + 1) * cfg.batch_size]
            if len(b) < 2:   # BatchNorm needs two samples
                continue
            xb, db = augment(name, x[b], dyn[b], cfg, g)
            parts = losses(name, model, xb, db, y[b], au[b], mask[b], cfg, weight)
            loss = sum(parts.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
        history.append(total / len(idx))
        bar.set_postfix(loss=f"{history[-1]:.3f}")
    return model.eval(), history


@torch.inference_mode()
def predict(model: nn.Module, data: SeqData, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class probabilities (n, C), AU probabilities (n, A)) of ``data[idx]``."""
    model.eval()
    logits, au = model(torch.from_numpy(data.x[idx]))
    return torch.softmax(logits, 1).numpy(), torch.sigmoid(au).numpy()


def loso(name: str, data: SeqData, cfg: SeqTrainConfig, init: nn.Module | None = None, progress: bool = True) -> dict:
    """Leave-one-subject-out, predictions pooled over folds (``metrics.score``) plus AU recall."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    subjects = sorted(set(data.subjects.tolist()))
    probs = np.zeros((len(data), len(data.class_names)), np.float32)
    au_prob = np.zeros((len(data), len(data.au_names)), np.float32)
    for s in tqdm(subjects, desc="LOSO folds", unit="fold", disable=not progress, file=sys.stderr):
        test = np.flatnonzero(data.subjects == s)
        train_idx = np.flatnonzero(data.subjects != s)
        model, _ = train(name, data, train_idx, cfg, init=init)
        probs[test], au_prob[test] = predict(model, data, test)
    pred = probs.argmax(1)
    result = score(data.labels, pred, data.datasets, data.class_names)
    result.update(model=name, protocol="leave-one-subject-out, predictions pooled over folds; fixed schedule, "
                  "no test-subject epoch picking", folds=len(subjects), schedule=dataclasses.asdict(cfg),
                  correct=int((pred == data.labels).sum()), aus=au_scores(data.au, data.au_mask, au_prob, data.au_names),
                  wall_time_s=round(time.perf_counter() - t0, 1),
                  samples=[{"sample": n, "subject": str(sj), "label": data.class_names[int(lab)],
                            "predicted": data.class_names[int(p)], "confidence": round(float(pr.max()), 4)}
                           for n, sj, lab, p, pr in zip(data.names, data.subjects, data.labels, pred, probs)])
    return result


# ---------------------------------------------------------------- model card
def input_spec(model: nn.Module) -> dict:
    norm = {"frames": "gray frames sampled evenly onset->offset, framed by the onset's aligned crop, INTER_AREA "
                      "resize, z-scored over the sequence (sequences.fdp_frames)",
            "cloud": "468 face-mesh points: onset position (x, y) centred on the stable points in inter-ocular "
                     "units, onset->apex flow-point displacement (dx, dy) in IOD x sequences.DISP_SCALE "
                     "(sequences.point_cloud)"}
    spec = {n: {"shape": ["B", *t.shape[1:]], "dtype": "float32", "normalisation": norm[n]}
            for n, t in zip(model.input_names, model.example_inputs(1))}
    spec["outputs"] = list(model.output_names)
    return spec


def save(model: nn.Module, out: str | Path, training: dict, notes: str, loso_result: dict | None = None,
         seed: int = 0) -> Path:
    from .weights import ModelCard, save_model

    card = ModelCard.for_model(model, inputs=input_spec(model), preprocess_version=SEQ_PREPROCESS_VERSION,
                               training=training, loso=loso_result or {}, date=date.today().isoformat(),
                               seed=seed, notes=notes)
    return save_model(model, card, out)


def describe_training(data: SeqData, source: str, cfg: SeqTrainConfig, history: list[float], **more) -> dict:
    return {"data": source, "samples": len(data), "subjects": len(set(data.subjects.tolist())),
            "per_dataset": {d: int((data.datasets == d).sum()) for d in sorted(set(data.datasets.tolist()))},
            "per_class": {c: int((data.labels == i).sum()) for i, c in enumerate(data.class_names)},
            "au_counts": {a: int(data.au[:, i].sum()) for i, a in enumerate(data.au_names)},
            "schedule": dataclasses.asdict(cfg), "final_loss": round(history[-1], 4) if history else None, **more}


# ---------------------------------------------------------------- commands (dispatched from training.cli)
def add_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``train`` / ``loso`` for the sequence models."""
    g = parser.add_argument_group("sequence models (--model fdp|pointcloud)")
    g.add_argument("--dataset", type=Path, metavar="FILE",
                   help="a recognise --dataset file (CSV or clips.json: sample folders onset->offset with labels)")
    g.add_argument("--synthetic", type=Path, metavar="FILE.npz",
                   help="generated samples (benchmarks/seq_models.py writes them); with --dataset, added to training")
    g.add_argument("--init", type=Path, metavar="DIR", help="start from these weights (fine-tuning)")
    g.add_argument("--own-apex", action="store_true", help="ignore coded apexes (the point cloud's apex) as recognise does")


def wanted(args) -> bool:
    """Whether this ``train``/``loso`` run is for a sequence model (or names a dataset file)."""
    return getattr(args, "model", None) in SEQ_MODELS or getattr(args, "dataset", None) is not None


def _load(args) -> tuple[SeqData, str, nn.Module | None, SeqTrainConfig]:
    from .sequences import dataset_samples, load_samples
    from .types import EMOTIONS

    if args.model not in SEQ_MODELS:
        raise UserError(f"--dataset trains the sequence models ({', '.join(SEQ_MODELS)}), not {args.model}; "
                        f"{args.model} trains on --data (the composite layout)")
    if args.dataset is None and args.synthetic is None:
        raise UserError(f"--model {args.model} trains on sequences: give --dataset FILE (CSV or clips.json) "
                        "and/or --synthetic FILE.npz")
    samples, source = [], []
    if args.synthetic is not None:
        if not args.synthetic.is_file():
            raise UserError(f"--synthetic {args.synthetic}: not found")
        samples += load_samples(args.synthetic)
        source.append(f"generated ({args.synthetic.name})")
    if args.dataset is not None:
        samples += dataset_samples(args.dataset, own_apex=args.own_apex)
        source.append(str(args.dataset))
    init = None
    classes: Sequence[str] = EMOTIONS
    aus = choose_aus(samples)
    if args.init is not None:
        from .weights import load_model

        init, card = load_model(args.init)
        if init.arch_name != args.model:
            raise UserError(f"--init {args.init} holds a {init.arch_name}, not a {args.model}")
        classes, aus = tuple(card.labels), tuple(card.aus)
    cfg = SEQ_SCHEDULES[args.model]
    if getattr(args, "epochs", None):
        cfg = dataclasses.replace(cfg, epochs=args.epochs)
    return stack(args.model, samples, classes, aus), " + ".join(source), init, cfg


def loso_summary(path: Path) -> dict:
    """What a ``loso --json`` result contributes to a model card (no confusion matrices, no per-sample rows)."""
    if not Path(path).is_file():
        raise UserError(f"{path}: LOSO result not found")
    try:
        r = json.loads(Path(path).read_text())
        keep = {k: r[k] for k in ("protocol", "folds", "correct", "wall_time_s") if k in r}
        keep["overall"] = {k: r["overall"][k] for k in ("uf1", "uar", "n")}
        if "aus" in r:
            keep["aus"] = {k: r["aus"][k] for k in ("recall", "precision", "coded", "found")}
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a LOSO result ({e})") from None
    return keep


def run_train(args) -> int:
    torch.set_num_threads(args.threads)
    data, source, init, cfg = _load(args)
    model, history = train(args.model, data, np.arange(len(data)), cfg, init=init, progress=True)
    training = describe_training(data, source, cfg, history, init=str(args.init) if args.init else None)
    loso_result = loso_summary(args.loso_json) if getattr(args, "loso_json", None) else {}
    save(model, args.out, training, f"Trained by `realtime-me train --model {args.model}` on {source}.", loso_result,
         cfg.seed)
    print(f"saved {args.model} to {args.out} ({len(data)} samples, final training loss {history[-1]:.4f})")
    return 0


def run_loso(args) -> int:
    torch.set_num_threads(args.threads)
    data, source, init, cfg = _load(args)
    if len(set(data.subjects.tolist())) < 2:
        raise UserError("leave-one-subject-out needs samples of at least two subjects")
    result = loso(args.model, data, cfg, init=init)
    result["data"] = source
    o = result["overall"]
    print(f"{args.model} LOSO: {result['correct']}/{o['n']} correct  UF1 {o['uf1']:.3f}  UAR {o['uar']:.3f}  "
          f"AU recall {result['aus']['recall']:.3f} ({result['aus']['found']}/{result['aus']['coded']})")
    if getattr(args, "json", None):
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if getattr(args, "plot", None):
        plot_confusion(result, args.plot)
    return 0
