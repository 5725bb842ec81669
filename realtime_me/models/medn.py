"""MEDN: Motion-Emotion feature Decoupling Network (small, real-time variant).

Built from the paper's abstract only; every detail below is our own choice,
sized so that 62 LOSO folds train in minutes on 2 CPU cores and batch-1
inference takes about a millisecond.

Inputs (see ``realtime_me.preprocess``): ``flow`` (B,3,28,28) float32, the
onset->apex TV-L1 flow as channels (u, v, optical strain), each min-max scaled
to 0..1 per image; ``apex`` (B,1,S,S) float32, the grayscale apex face crop,
z-scored per image (so SAMM's gray frames and colour webcams look alike).

* Motion branch: three conv3x3-BN-ReLU-maxpool stages (28->14->7->3) and a
  linear layer over the 3x3 map. The map is flattened, not globally pooled,
  because *where* the face moves (brows vs. mouth corners) is the signal. An
  auxiliary multi-label AU head (BCE, masked where no AU coding exists, e.g.
  SMIC) keeps this feature about facial motion.
* Emotion branch (SEViT): a 4-head ViT over 8x8 patches of the apex crop. The
  last block's CLS->patch attention (mean over heads) scores the tokens; for
  each keep ratio (default 50%, 25%, 12.5%) ``torch.topk`` with a *constant* k
  keeps the highest-scoring tokens, gathered with ``torch.gather`` (no NonZero,
  no data-dependent shapes, so the graph exports to ONNX/TensorRT), and pools
  them weighted by their renormalised attention. Small keep ratios make a few
  local regions dominate the feature; the CLS token and the pooled scales are
  concatenated and projected.
* Decoupling: ``orthogonality_loss`` is the batch mean squared cosine between
  the motion and emotion features, zero when they are orthogonal, so the
  appearance branch is pushed to carry what the flow does not.
* ``flip_tta``: optionally the eval/export forward also runs the mirrored
  face (flow mirrored with u negated) in the same batch and averages the
  logits; faces are near-symmetric, so this halves left/right noise.
* CoFM: a sigmoid gate computed from [motion, emotion] mixes the two features
  per dimension, ``g*m + (1-g)*e``, then dropout and a linear classifier.

``forward`` returns ``(logits, au_logits)`` (export/eval); ``forward_features``
also returns the branch features for the training losses.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..types import EMOTIONS
from .registry import register_model

#: AUs coded >= 10 times in the composite's CASME II + SAMM rows (see models/medn/model.json).
DEFAULT_AUS: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU5", "AU7", "AU9", "AU10", "AU12", "AU14", "AU15", "AU17")


@dataclass(frozen=True)
class MEDNConfig:
    class_names: tuple[str, ...] = EMOTIONS
    au_names: tuple[str, ...] = DEFAULT_AUS
    flow_size: int = 28
    apex_size: int = 56
    patch: int = 8
    dim: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    keep_ratios: tuple[float, ...] = (0.5, 0.25, 0.125)
    motion_channels: tuple[int, ...] = (16, 32, 64)
    feat_dim: int = 64
    dropout: float = 0.3
    flip_tta: bool = True    # eval forward averages the logits of the input and its mirror image

    @property
    def num_tokens(self) -> int:
        return (self.apex_size // self.patch) ** 2

    @property
    def keep_counts(self) -> tuple[int, ...]:
        """Constant top-k sizes (a TensorRT TopK needs a constant K)."""
        return tuple(max(1, int(round(self.num_tokens * r))) for r in self.keep_ratios)


@dataclass
class ModelOutput:
    """Everything the training losses need; ``forward`` returns only logits and AU logits."""

    logits: torch.Tensor
    au_logits: torch.Tensor | None = None
    motion: torch.Tensor | None = None
    emotion: torch.Tensor | None = None
    gate: torch.Tensor | None = None
    token_scores: torch.Tensor | None = None


def mirror_flow(flow: torch.Tensor) -> torch.Tensor:
    """Flow of the mirrored face: flip left-right and negate u (``1 - u`` once min-max scaled to 0..1)."""
    f = flow.flip(-1)
    return torch.cat([1.0 - f[:, :1], f[:, 1:]], 1)


def orthogonality_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of cos^2 between paired rows of ``a`` and ``b`` (B,F)."""
    return (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(1).pow(2).mean()


def select_tokens(tokens: torch.Tensor, scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` highest-scoring tokens (B,k,D) and their scores renormalised to sum to 1 (B,k).

    ``k`` is a Python int, so ONNX gets a TopK with a constant K and a GatherElements."""
    w, idx = scores.topk(k, dim=1)
    kept = torch.gather(tokens, 1, idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
    return kept, w / w.sum(1, keepdim=True).clamp_min(1e-6)


class MotionBranch(nn.Module):
    def __init__(self, cfg: MEDNConfig) -> None:
        super().__init__()
        layers, c_in, size = [], 3, cfg.flow_size
        for c in cfg.motion_channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in, size = c, size // 2
        self.conv = nn.Sequential(*layers)
        self.proj = nn.Sequential(nn.Flatten(), nn.Dropout(cfg.dropout), nn.Linear(c_in * size * size, cfg.feat_dim), nn.ReLU(inplace=True))

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        return self.proj(self.conv(flow))


class Block(nn.Module):
    """Pre-norm transformer block that also returns its attention map."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x)), attn


class SEViT(nn.Module):
    """Sparse ViT: keeps only the top-k attended apex tokens at several keep ratios."""

    def __init__(self, cfg: MEDNConfig) -> None:
        super().__init__()
        self.keep_counts = cfg.keep_counts
        self.patch = nn.Conv2d(1, cfg.dim, cfg.patch, stride=cfg.patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos = nn.Parameter(torch.randn(1, cfg.num_tokens + 1, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.proj = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.dim * (1 + len(self.keep_counts)), cfg.feat_dim), nn.ReLU(inplace=True))

    def forward(self, apex: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.patch(apex).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for blk in self.blocks:
            x, attn = blk(x)
        x = self.norm(x)
        cls, tokens = x[:, 0], x[:, 1:]
        scores = attn[:, :, 0, 1:].mean(1)  # (B, N) CLS attention to each patch
        pooled = [cls]
        for k in self.keep_counts:
            kept, w = select_tokens(tokens, scores, k)
            pooled.append((kept * w.unsqueeze(-1)).sum(1))
        return self.proj(torch.cat(pooled, 1)), scores


class CoFM(nn.Module):
    """Gated fusion: per-dimension sigmoid gate from the concatenated features."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(2 * dim, dim)

    def forward(self, m: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.sigmoid(self.gate(torch.cat([m, e], 1)))
        return g * m + (1 - g) * e, g


@register_model("medn", MEDNConfig)
class MEDN(nn.Module):
    """MEDN: motion (flow CNN + AU head) and emotion (sparse ViT) branches, decoupled and gate-fused."""

    input_names = ("flow", "apex")
    output_names = ("logits", "au_logits")

    def __init__(self, config: MEDNConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or MEDNConfig()
        self.motion = MotionBranch(cfg)
        self.au_head = nn.Linear(cfg.feat_dim, len(cfg.au_names))
        self.emotion = SEViT(cfg)
        self.fusion = CoFM(cfg.feat_dim)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.feat_dim, len(cfg.class_names)))

    def forward_features(self, flow: torch.Tensor, apex: torch.Tensor) -> ModelOutput:
        m = self.motion(flow)
        e, scores = self.emotion(apex)
        fused, g = self.fusion(m, e)
        return ModelOutput(self.head(fused), self.au_head(m), m, e, g, scores)

    def forward(self, flow: torch.Tensor, apex: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.flip_tta and not self.training:
            b = flow.shape[0]
            out = self.forward_features(torch.cat([flow, mirror_flow(flow)], 0), torch.cat([apex, apex.flip(-1)], 0))
            return (out.logits[:b] + out.logits[b:]) / 2, (out.au_logits[:b] + out.au_logits[b:]) / 2
        out = self.forward_features(flow, apex)
        return out.logits, out.au_logits

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        return torch.rand(batch, 3, c.flow_size, c.flow_size), torch.randn(batch, 1, c.apex_size, c.apex_size)
