"""FDP, fine-grained dynamic perception (after arXiv 2509.06015), sized for real time.

The paper's method, our code: frame-level features from a local-global feature-aware
transformer over the raw frames of a sample, a rank scorer that gives each frame a
score, rank features pooled over time into one dynamic representation, and that
representation shared by the recognition head and a decoder that constructs the
sample's dynamic image (the auxiliary task for scarce data).

Design choices (each to keep it real time and trainable on little data):

* **Input**: ``frames`` (B, T=8, 64, 64) grayscale, sampled evenly onset -> offset and
  framed by the onset's crop (``sequences.fdp_frames``), z-scored per sequence, as the
  reference code's 8 frames of 64x64 crops.
* **Stem**: each frame and its difference from the first frame (2 channels), a 4x4/4
  conv then a 2x2/2 conv: 8x8 = 64 tokens. ME motion is sub-pixel at 64 px; the
  difference channel lets a 0.1 M-parameter network see it without the paper's
  large-scale pretraining. Computed inside the graph, so the input stays raw frames.
* **Local-global block** (x ``depth``): local = depth-wise 3x3 conv over the token
  grid (neighbouring patches), global = multi-head self-attention over the 64 tokens,
  then an MLP; pre-norm residuals. Frame feature = mean over tokens. Width 32, 2 heads,
  2 blocks (39 k parameters): about 1.3 ms per sample in ONNX Runtime on one CPU core,
  inside the 3 ms budget (width 48 took 2-6 ms here).
* **Rank scorer**: a linear score per frame, trained by a pairwise logistic rank loss
  to increase in temporal order (the rank-pooling objective), so the frame features
  must encode how the face has changed since the onset.
* **Rank pooling**: approximate rank pooling (Bilen et al., 2016) of projected frame
  features; its coefficients are fixed by T, so the graph exports with constants only.
  The same coefficients make the decoder's target, the dynamic image of the frames.
* **Heads**: emotion logits and AU logits from the dynamic representation. The decoder
  (a linear layer and three transposed convs to 32x32) runs only in training
  (``forward_train``); the exported graph has ``logits`` and ``au_logits`` only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..types import EMOTIONS
from .medn import DEFAULT_AUS, ModelOutput
from .registry import register_model


def rank_pool_coefficients(t: int) -> torch.Tensor:
    """(T,) approximate rank pooling weights alpha_t = 2(T-t+1) - (T+1)(H_T - H_{t-1}) (Bilen et
    al., "Dynamic image networks"): early frames negative, late positive; unit L1 norm."""
    h = torch.cumsum(1.0 / torch.arange(1, t + 1, dtype=torch.float64), 0)
    h = torch.cat([torch.zeros(1, dtype=torch.float64), h])
    idx = torch.arange(1, t + 1, dtype=torch.float64)
    alpha = 2 * (t - idx + 1) - (t + 1) * (h[t] - h[idx.long() - 1])
    return (alpha / alpha.abs().sum()).float()


@dataclass(frozen=True)
class FDPConfig:
    class_names: tuple[str, ...] = EMOTIONS
    au_names: tuple[str, ...] = DEFAULT_AUS
    n_frames: int = 8
    frame_size: int = 64
    dim: int = 32                # 48 measured 2-6 ms per sample in ONNX Runtime here: over the 3 ms budget
    depth: int = 2
    heads: int = 2
    mlp_ratio: float = 2.0
    dynamic_size: int = 32       # side of the decoded dynamic image (training only)
    dropout: float = 0.2


class LocalGlobalBlock(nn.Module):
    """Depth-wise conv over the token grid (local), self-attention (global), MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, side: int) -> None:
        super().__init__()
        self.side = side
        self.norm_l = nn.LayerNorm(dim)
        self.local = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm_g = nn.LayerNorm(dim)
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)   # plain ops: exports to ONNX
        self.norm_m = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:          # x: (N, L, D), L = side^2
        n, l, d = x.shape
        g = self.norm_l(x).transpose(1, 2).reshape(n, d, self.side, self.side)   # (N, D, s, s)
        x = x + self.local(g).reshape(n, d, l).transpose(1, 2)                   # (N, L, D)
        qkv = self.qkv(self.norm_g(x)).reshape(n, l, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                                         # (N, H, L, d/H)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(-1)                # (N, H, L, L)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(n, l, d))           # (N, L, D)
        return x + self.mlp(self.norm_m(x))


@register_model("fdp", FDPConfig)
class FDP(nn.Module):
    """FDP: local-global frame transformer, rank scorer, rank pooling, dynamic-image decoder."""

    input_names = ("frames",)
    output_names = ("logits", "au_logits")

    def __init__(self, config: FDPConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or FDPConfig()
        if c.frame_size % 8 or c.dynamic_size % 8:
            raise ValueError(f"frame_size {c.frame_size} and dynamic_size {c.dynamic_size} must be multiples of 8")
        side = c.frame_size // 8
        self.stem = nn.Sequential(nn.Conv2d(2, 16, 4, stride=4), nn.GELU(), nn.BatchNorm2d(16),
                                  nn.Conv2d(16, c.dim, 2, stride=2))
        self.pos = nn.Parameter(torch.zeros(1, side * side, c.dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(LocalGlobalBlock(c.dim, c.heads, c.mlp_ratio, side) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim)
        self.scorer = nn.Linear(c.dim, 1)
        self.rank_proj = nn.Linear(c.dim, c.dim)
        self.register_buffer("alpha", rank_pool_coefficients(c.n_frames), persistent=False)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.dim, len(c.class_names))
        self.au_head = nn.Linear(c.dim, len(c.au_names))
        q = c.dynamic_size // 8
        self.dec_in = nn.Linear(c.dim, 16 * q * q)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(16, 16, 4, stride=2, padding=1), nn.GELU(),
            nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1), nn.GELU(),
            nn.ConvTranspose2d(8, 1, 4, stride=2, padding=1))

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, S, S) -> (B, T, D) one feature per frame."""
        b, t, s, _ = frames.shape
        diff = frames - frames[:, :1]                                   # (B, T, S, S) change since onset
        x = torch.stack([frames, diff], 2).reshape(b * t, 2, s, s)       # (B*T, 2, S, S)
        x = self.stem(x).flatten(2).transpose(1, 2) + self.pos           # (B*T, L, D)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x.mean(1)).reshape(b, t, -1)                    # (B, T, D)

    def forward_train(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything the losses need: logits, au_logits, per-frame rank scores, dynamic image."""
        f = self.frame_features(frames)                                  # (B, T, D)
        scores = self.scorer(f).squeeze(-1)                              # (B, T)
        rank = torch.tanh(self.rank_proj(f))                             # (B, T, D) rank features
        dyn = (rank * self.alpha.view(1, -1, 1)).sum(1)                  # (B, D) approximate rank pooling
        z = self.drop(dyn)
        q = self.config.dynamic_size // 8
        image = self.decoder(self.dec_in(dyn).reshape(-1, 16, q, q))     # (B, 1, 32, 32)
        return {"logits": self.head(z), "au_logits": self.au_head(z), "scores": scores, "dynamic": image}

    def forward_features(self, frames: torch.Tensor) -> ModelOutput:
        out = self.forward_train(frames)
        return ModelOutput(out["logits"], out["au_logits"])

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.frame_features(frames)                                  # (B, T, D)
        dyn = (torch.tanh(self.rank_proj(f)) * self.alpha.view(1, -1, 1)).sum(1)   # (B, D)
        return self.head(dyn), self.au_head(dyn)

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor]:
        c = self.config
        return (torch.randn(batch, c.n_frames, c.frame_size, c.frame_size),)
