"""timm-like model registry: ``create_model(name, **overrides)``.

Each architecture is a frozen config dataclass plus an ``nn.Module`` built from it.
The weight card stores ``name`` and ``config_to_dict(config)``, so ``load_model``
rebuilds exactly the trained module without pickling anything.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ..errors import UserError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    config_cls: type
    builder: Callable[[Any], nn.Module]
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, config_cls: type, description: str = ""):
    """Class decorator: register ``cls(config)`` under ``name``."""
    def deco(cls):
        _REGISTRY[name] = ModelEntry(name, config_cls, cls, description or (cls.__doc__ or "").strip().splitlines()[0])
        cls.arch_name = name
        return cls
    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def _entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    return _REGISTRY[name]


def make_config(name: str, **overrides):
    """The default config of ``name`` with ``overrides`` (lists become tuples, unknown keys are an error)."""
    cls = _entry(name).config_cls
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - fields
    if unknown:
        raise UserError(f"model {name!r} has no config field(s) {sorted(unknown)}; fields: {sorted(fields)}")
    clean = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return cls(**clean)


def create_model(name: str, **overrides) -> nn.Module:
    """Build the registered architecture ``name`` with config ``overrides``; the module has
    ``.config``, ``.arch_name``, ``.input_names``, ``.output_names`` and ``example_inputs(batch)``."""
    return _entry(name).builder(make_config(name, **overrides))


def config_to_dict(config) -> dict[str, Any]:
    """JSON-ready dict of a config dataclass (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
