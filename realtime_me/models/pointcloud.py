"""Landmark point-cloud motion model: the depth paper's PointNet++ idea on webcam landmarks.

The depth paper turns onset and apex depth maps into point clouds and classifies the
per-point motion with PointNet++. Here the cloud is the face mesh's 468 surface points
(irises left out: they follow gaze, not muscles) at the onset, and where the product's
flow-points stage carries them by the apex (``sequences.point_cloud``: DIS flow on the
onset crop and the apex re-framed into it, residual head motion removed by a similarity
fit on the stable points). Each point has 4 features: onset position (x, y, centred, in
inter-ocular units) and displacement to the apex (dx, dy, in inter-ocular units times
``sequences.DISP_SCALE`` so an ME's 0.002-0.02 IOD reads about 0.4-4).

Design choices:

* **2-D, not 3-D**: the aligned face carries 2-D crop points; MediaPipe's z is a
  per-frame regression whose jitter exceeds an ME's depth change, and flow measures
  only the image plane. Position + displacement is what moves.
* **Local grouping, fixed**: PointNet++ groups each point with its neighbours. The
  face mesh has the same topology in every face, so the groups are fixed: the ``k``
  nearest points on the template (``alignment.template``), computed once, a constant
  Gather in the graph (no data-dependent ops: it exports for TensorRT). Each point's
  edge features (neighbour minus centre, position and displacement, plus the centre's
  own) go through a shared MLP and a max over the group: how a point moved relative to
  the skin around it, which separates a muscle's pull from residual head motion.
* **Motion normalised per sample** (``normalise_motion``): displacements are divided by
  their RMS over the points (plus ``motion_floor``), in the graph. The pattern of a
  movement names the emotion and AUs, its size does not, and sizes differ between
  sources: lab MEs on the six real clips move the points about 3x more than the
  generator's webcam-sized MEs (the published flow images are min-max scaled per
  image for the same reason). The spotter, not this model, decides something moved.
* **Set pooling**: a shared per-point MLP, then max and mean over the points.
* **Heads**: emotion logits and AU logits (it is an AU detector too: each AU is a
  pattern of local motion).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..types import EMOTIONS
from .medn import DEFAULT_AUS, ModelOutput
from .registry import register_model

#: face-mesh surface points used (0..467; 468..477 are the irises)
N_SURFACE = 468


def neighbour_index(k: int, n: int = N_SURFACE) -> np.ndarray:
    """(n, k) the k nearest template points of each point (itself first)."""
    from ..alignment import template

    p = template()[:n].astype(np.float64)
    d = ((p[:, None] - p[None]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k].astype(np.int64)


@dataclass(frozen=True)
class PointCloudConfig:
    class_names: tuple[str, ...] = EMOTIONS
    au_names: tuple[str, ...] = DEFAULT_AUS
    n_points: int = N_SURFACE
    in_features: int = 4
    k: int = 8
    local_dim: int = 32
    channels: tuple[int, ...] = (64, 128)
    dropout: float = 0.3
    normalise_motion: bool = True
    motion_floor: float = 0.05   # added to the RMS displacement (DISP_SCALE units) before dividing


@register_model("pointcloud", PointCloudConfig)
class PointCloudNet(nn.Module):
    """PointCloudNet: fixed local grouping, shared per-point MLP, max+mean set pooling."""

    input_names = ("cloud",)
    output_names = ("logits", "au_logits")

    def __init__(self, config: PointCloudConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or PointCloudConfig()
        if not 1 <= c.k <= c.n_points or c.n_points > N_SURFACE:
            raise ValueError(f"need 1 <= k <= n_points <= {N_SURFACE}, got k={c.k}, n_points={c.n_points}")
        idx = torch.from_numpy(neighbour_index(c.k, c.n_points)).reshape(-1)
        self.register_buffer("neighbours", idx, persistent=False)        # (N*k,) constant
        f = c.in_features
        self.local = nn.Sequential(nn.Conv2d(2 * f, c.local_dim, 1), nn.BatchNorm2d(c.local_dim), nn.ReLU(),
                                   nn.Conv2d(c.local_dim, c.local_dim, 1), nn.BatchNorm2d(c.local_dim), nn.ReLU())
        layers, prev = [], f + c.local_dim
        for ch in c.channels:
            layers += [nn.Conv1d(prev, ch, 1), nn.BatchNorm1d(ch), nn.ReLU()]
            prev = ch
        self.point_mlp = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(2 * prev, 64), nn.ReLU(), nn.Dropout(c.dropout))
        self.head = nn.Linear(64, len(c.class_names))
        self.au_head = nn.Linear(64, len(c.au_names))

    def embed(self, cloud: torch.Tensor) -> torch.Tensor:
        """(B, F, N) -> (B, 64) the pooled cloud feature."""
        b, f, n = cloud.shape
        k = self.config.k
        if self.config.normalise_motion:
            d = cloud[:, 2:4]                                                 # (B, 2, N)
            rms = d.pow(2).sum(1).mean(1).sqrt().view(b, 1, 1)                # (B, 1, 1)
            cloud = torch.cat([cloud[:, :2], d / (rms + self.config.motion_floor), cloud[:, 4:]], 1)
        nb = cloud.index_select(2, self.neighbours).reshape(b, f, n, k)       # (B, F, N, k)
        centre = cloud.unsqueeze(-1).expand(b, f, n, k)                       # (B, F, N, k)
        edge = torch.cat([nb - centre, centre], 1)                            # (B, 2F, N, k)
        local = self.local(edge).amax(-1)                                     # (B, Dl, N)
        x = self.point_mlp(torch.cat([cloud, local], 1))                      # (B, C, N)
        return self.fc(torch.cat([x.amax(-1), x.mean(-1)], 1))                # (B, 64)

    def forward_features(self, cloud: torch.Tensor) -> ModelOutput:
        z = self.embed(cloud)
        return ModelOutput(self.head(z), self.au_head(z))

    def forward(self, cloud: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.embed(cloud)
        return self.head(z), self.au_head(z)

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor]:
        c = self.config
        return (torch.randn(batch, c.in_features, c.n_points),)
