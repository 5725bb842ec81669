"""Model weights on disk: ``model.safetensors`` + ``model.json`` (the model card).

Loading never unpickles: tensors come from safetensors, everything else from
JSON, and the card's architecture name + config rebuild the module through the
registry before the tensors are checked (names, shapes) and loaded. Every
failure is a ``UserError`` that names the file and what is wrong.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import UserError
from .models.registry import config_to_dict, create_model

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
CARD_VERSION = 1


@dataclass
class ModelCard:
    """What a weights folder is: enough to rebuild, feed and trust the model."""

    architecture: str
    config: dict[str, Any]
    labels: list[str]
    aus: list[str] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)       # name -> shape, dtype, normalisation
    preprocess_version: int = 0
    training: dict[str, Any] = field(default_factory=dict)     # data, subjects, epochs, seed, ...
    loso: dict[str, Any] = field(default_factory=dict)         # UF1/UAR overall and per dataset
    date: str = ""
    seed: int = 0
    notes: str = ""
    card_version: int = CARD_VERSION

    @classmethod
    def for_model(cls, model: nn.Module, **fields: Any) -> "ModelCard":
        """The card of a freshly built model: its labels and AUs from its config, plus ``fields``."""
        base = {"architecture": model.arch_name, "config": {}, "labels": list(model.config.class_names),
                "aus": list(getattr(model.config, "au_names", ()))}
        return cls(**{**base, **fields})

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: Path) -> "ModelCard":
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [k for k in ("architecture", "config", "labels") if k not in d]
        if missing:
            raise UserError(f"{path}: model card lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in d.items() if k in names})


def save_model(model: nn.Module, card: ModelCard, out_dir: str | Path) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``out_dir`` (created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    card.architecture = model.arch_name
    card.config = config_to_dict(model.config)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE), metadata={"architecture": model.arch_name})
    (out / CARD_FILE).write_text(json.dumps(dataclasses.asdict(card), indent=2) + "\n")
    return out


def read_card(weights_dir: str | Path) -> ModelCard:
    path = Path(weights_dir) / CARD_FILE
    if not path.is_file():
        raise UserError(f"{path}: model card not found (expected a folder with {CARD_FILE} and {WEIGHTS_FILE})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return ModelCard.from_dict(data, path)


def load_model(weights_dir: str | Path) -> tuple[nn.Module, ModelCard]:
    """Rebuild the model from the card and load its tensors; eval mode, CPU."""
    card = read_card(weights_dir)
    card_path, path = Path(weights_dir) / CARD_FILE, Path(weights_dir) / WEIGHTS_FILE
    if not isinstance(card.config, dict):
        raise UserError(f"{card_path}: 'config' must be an object")
    try:
        model = create_model(card.architecture, **card.config)
    except (TypeError, ValueError) as e:
        raise UserError(f"{card_path}: cannot build {card.architecture!r} from its config ({e})") from None
    if not path.is_file():
        raise UserError(f"{path}: weights file not found")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{path}: not a readable safetensors file ({e})") from None
    _check_state(model, state, path)
    model.load_state_dict(state, strict=True)
    return model.eval(), card


def _check_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise UserError(f"{path}: tensors do not match architecture {model.arch_name!r} "
                        f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected {extra[:3]}{'...' if len(extra) > 3 else ''})")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise UserError(f"{path}: tensor {k} has shape {tuple(state[k].shape)}, architecture "
                            f"{model.arch_name!r} expects {tuple(v.shape)}")
        if state[k].dtype != v.dtype:
            raise UserError(f"{path}: tensor {k} is {state[k].dtype}, expected {v.dtype}")
