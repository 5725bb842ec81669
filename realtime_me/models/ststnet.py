"""STSTNet baseline (Liong et al., 2019): three shallow conv streams on the 28x28 flow image.

As published: 3x3 convolutions with 3, 5 and 8 filters over the same (u, v,
strain) input, ReLU, 3x3 max-pool stride 3 ('same' padding: 28->10), the 16
maps concatenated, 2x2 average pool (->5x5x16=400) and one linear layer. Like the
common PyTorch ports we add BatchNorm after each conv and dropout before the
classifier, which make it train stably with plain Adam in our harness.
It ignores the apex crop: ``input_names`` is just ``("flow",)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..types import EMOTIONS
from .medn import ModelOutput
from .registry import register_model


@dataclass(frozen=True)
class STSTNetConfig:
    class_names: tuple[str, ...] = EMOTIONS
    flow_size: int = 28
    channels: tuple[int, ...] = (3, 5, 8)
    dropout: float = 0.5


@register_model("ststnet", STSTNetConfig)
class STSTNet(nn.Module):
    """STSTNet: shallow triple-stream 3D CNN (three 2D streams over u, v, strain)."""

    input_names = ("flow",)
    output_names = ("logits",)

    def __init__(self, config: STSTNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or STSTNetConfig()
        self.streams = nn.ModuleList(
            nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(c),
                          nn.MaxPool2d(3, stride=3, padding=1))
            for c in cfg.channels)
        side = (cfg.flow_size + 2 - 3) // 3 + 1
        self.pool = nn.AvgPool2d(2, stride=2)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(cfg.dropout),
                                  nn.Linear(sum(cfg.channels) * (side // 2) ** 2, len(cfg.class_names)))

    def forward_features(self, flow: torch.Tensor, apex: torch.Tensor | None = None) -> ModelOutput:
        x = torch.cat([s(flow) for s in self.streams], 1)
        return ModelOutput(self.head(self.pool(x)))

    def forward(self, flow: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.forward_features(flow).logits,)

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor]:
        return (torch.rand(batch, 3, self.config.flow_size, self.config.flow_size),)
