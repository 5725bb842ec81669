"""What an engine knows about a model, read from its card (``weights.read_spec``).

The spec is plain data, so a backend that runs a cached ONNX graph or TensorRT plan
never builds the torch module: only ``torch_model`` (for an export or the torch
backend) does, and it refuses weights that do not take and give what the card says.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError


@dataclass(frozen=True)
class ModelSpec:
    """``inputs`` / ``outputs`` map tensor names, in the model's order, to per-sample shapes
    (no batch axis); ``weights_hash`` keys every cache built from these weights."""

    arch: str
    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]
    labels: tuple[str, ...]
    aus: tuple[str, ...]
    weights_hash: str
    weights_dir: Path

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self.outputs)

    def example_batch(self, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
        """Random inputs of the right shapes (for warm-up and shape checks only)."""
        rng = np.random.default_rng(seed)
        return {k: rng.standard_normal((batch, *s)).astype(np.float32) for k, s in self.inputs.items()}


def torch_model(spec: ModelSpec):
    """The torch module of ``spec``'s weights (eval mode, CPU), refused unless its inputs
    (names, order, shapes) and outputs are the ones the card gave the spec."""
    from ..weights import CARD_FILE, load_model

    model, _ = load_model(spec.weights_dir)
    built = {n: tuple(t.shape[1:]) for n, t in zip(model.input_names, model.example_inputs(1))}
    if list(built.items()) != list(spec.inputs.items()) or tuple(model.output_names) != spec.output_names:
        raise UserError(f"{spec.weights_dir / CARD_FILE}: 'inputs' say {spec.inputs} -> {list(spec.output_names)}, "
                        f"but the {spec.arch} its config builds takes {built} -> {list(model.output_names)}")
    return model


def load_spec(weights_dir: str | Path):
    """(ModelSpec, torch model in eval mode) of a weights folder, for callers that need both
    (``realtime-me export``, parity checks)."""
    from ..weights import read_spec

    spec = read_spec(weights_dir)
    return spec, torch_model(spec)


def _shipped_weights(name: str = "medn") -> Path:
    """The shipped weights: ``models/<name>`` of a source checkout (editable installs too: that
    folder is the source of truth), else the copy a wheel installs as ``realtime_me/_models/<name>``."""
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent / "models" / name
    if (package.parent / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    return package / "_models" / name


#: the default model (MEDN), wherever this package was installed from
DEFAULT_WEIGHTS = _shipped_weights()
