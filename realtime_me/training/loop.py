"""The training loop of the frame-pair models (MEDN, STSTNet), kept plain on purpose.

AdamW, a fixed epoch count with cosine decay, class-weighted cross-entropy (weights
from the training subjects' class counts), plus for MEDN a masked AU BCE (rows without
AU coding, e.g. SMIC, contribute nothing) and the motion/emotion orthogonality loss.
There is no early stopping, so nothing can look at a held-out subject; seeds are fixed,
so a run on CPU is repeatable.

Augmentation (training only): horizontal flip (the image and the flow are mirrored and
u is negated, which for a min-max scaled channel is ``1 - u``), small random shifts
(edge-replicated) and a little Gaussian noise on the apex.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import MEData
from ..models import create_model, make_config, orthogonality_loss
from ..models.medn import mirror_flow
from ..preprocess import FLOW_SIZE


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    au_weight: float = 0.5
    orth_weight: float = 0.1
    flip: bool = True
    shift: int = 2          # flow pixels; the apex shifts proportionally
    noise: float = 0.05
    seed: int = 0


#: Fixed per-architecture schedules, chosen by 5-fold subject-grouped CV
#: (how: benchmarks/results/schedule_selection.md).
SCHEDULES: dict[str, TrainConfig] = {
    "medn": TrainConfig(),
    "ststnet": TrainConfig(epochs=60, lr=5e-3, weight_decay=1e-3, au_weight=0.0, orth_weight=0.0, noise=0.0),
}


def augment(flow: torch.Tensor, apex: torch.Tensor, cfg: TrainConfig, g: torch.Generator):
    b = flow.shape[0]
    if cfg.flip:
        m = torch.rand(b, generator=g) < 0.5
        flow, apex = flow.clone(), apex.clone()
        flow[m] = mirror_flow(flow[m])
        apex[m] = apex[m].flip(-1)
    if cfg.shift:
        dx, dy = (int(v) for v in torch.randint(-cfg.shift, cfg.shift + 1, (2,), generator=g))
        flow = _shift(flow, dx, dy)
        r = apex.shape[-1] // FLOW_SIZE
        apex = _shift(apex, dx * r, dy * r)
    if cfg.noise:
        apex = apex + cfg.noise * torch.randn(apex.shape, generator=g)
    return flow, apex


def _shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Translate by (dx, dy) pixels, replicating the edge."""
    if dx == 0 and dy == 0:
        return x
    p = max(abs(dx), abs(dy))
    h, w = x.shape[-2:]
    x = F.pad(x, (p, p, p, p), mode="replicate")
    return x[..., p - dy:p - dy + h, p - dx:p - dx + w]


def losses(model: nn.Module, batch, cfg: TrainConfig, class_weight: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Total loss and its parts for one batch (flow, apex, labels, au, au_mask)."""
    flow, apex, y, au, au_mask = batch
    out = model.forward_features(flow, apex)
    parts = {"ce": F.cross_entropy(out.logits, y, weight=class_weight, label_smoothing=cfg.label_smoothing)}
    if out.au_logits is not None and cfg.au_weight:
        parts["au"] = masked_au_loss(out.au_logits, au, au_mask)
    if out.motion is not None and out.emotion is not None and cfg.orth_weight:
        parts["orth"] = orthogonality_loss(out.motion, out.emotion)
    parts["total"] = parts["ce"] + cfg.au_weight * parts.get("au", 0.0) + cfg.orth_weight * parts.get("orth", 0.0)
    return parts


def masked_au_loss(au_logits: torch.Tensor, au: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Multi-label BCE averaged over AU-coded rows only; 0 (with a gradient path) if none are coded."""
    per_row = F.binary_cross_entropy_with_logits(au_logits, au, reduction="none").mean(1)
    return (per_row * mask).sum() / mask.sum().clamp_min(1.0)


def train_model(name: str, data: MEData, idx: np.ndarray, cfg: TrainConfig, progress: bool = False,
                on_epoch: Callable[[nn.Module, int], None] | None = None, init: dict | None = None,
                **overrides) -> tuple[nn.Module, list[float]]:
    """Train a ``name`` model on rows ``idx``; returns the model (eval mode) and per-epoch mean loss.
    ``init``: a (partial) state dict to start from instead of the fresh initialisation (pretrained weights).
    ``on_epoch(model, epoch)`` sees the model in eval mode after each epoch (for studies of the schedule)."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    model = create_model(name, class_names=data.class_names, **_au_override(name, data), **overrides)
    if init:
        model.load_state_dict({**model.state_dict(), **init})
    flow, apex, y, au, au_mask = (torch.from_numpy(a[idx]) for a in (data.flow, data.apex, data.labels, data.au,
                                                                      data.au_mask))
    counts = torch.bincount(y, minlength=len(data.class_names)).float()
    class_weight = counts.sum() / (len(counts) * counts.clamp_min(1.0))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, int(np.ceil(len(idx) / cfg.batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                pct_start=0.1, anneal_strategy="cos")
    history = []
    model.train()
    for epoch in tqdm(range(cfg.epochs), desc=f"train {name}", unit="epoch", disable=not progress):
        perm = torch.randperm(len(idx), generator=g)
        total = 0.0
        for s in range(0, len(idx), cfg.batch_size):
            b = perm[s:s + cfg.batch_size]
            if len(b) < 2:
                continue  # BatchNorm needs 2+ rows
            f, a = augment(flow[b], apex[b], cfg, g)
            loss = losses(model, (f, a, y[b], au[b], au_mask[b]), cfg, class_weight)["total"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        history.append(total / len(idx))
        if on_epoch is not None:
            on_epoch(model.eval(), epoch)
            model.train()
    return model.eval(), history


def _au_override(name: str, data: MEData) -> dict:
    fields = {f.name for f in dataclasses.fields(type(make_config(name)))}
    return {"au_names": data.au_names} if "au_names" in fields and data.au_names else {}


@torch.no_grad()
def predict(model: nn.Module, data: MEData, idx: np.ndarray) -> np.ndarray:
    """(len(idx), C) class probabilities."""
    model.eval()
    inputs = {"flow": torch.from_numpy(data.flow[idx]), "apex": torch.from_numpy(data.apex[idx])}
    return model(*(inputs[n] for n in model.input_names))[0].softmax(1).numpy()  # the exported forward
