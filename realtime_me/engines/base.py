"""The one interface every backend implements: NumPy dicts in, NumPy dicts out.

A backend subclasses ``Engine`` and writes ``_run``; the checks every caller relies on
(input names and shapes, one batch size, the outputs the model card promises) live here
once, so the pipeline never knows which backend it has.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..errors import UserError
from .spec import ModelSpec

PRECISIONS = ("fp32", "fp16")
#: Largest batch the TensorRT optimisation profile and the Triton config accept.
MAX_BATCH = 8


class Engine(ABC):
    """One model ready to run: ``run({name: (B,...) float32}) -> {name: (B,...) float32}``.

    ``name`` is the backend (tensorrt, onnxruntime, torch, triton), ``device`` where it
    runs (as the backend reports it), ``precision`` fp32 or fp16, ``reason`` why it was
    chosen (set by ``load_engine``), ``max_batch`` the largest batch it accepts (None: any).
    """

    name: str = "engine"

    def __init__(self, spec: ModelSpec, precision: str = "fp32", max_batch: int | None = None) -> None:
        self.spec = spec
        self.precision = precision
        self.max_batch = max_batch
        self.device = "cpu"
        self.reason = ""
        self.details: dict[str, Any] = {}
        self._outputs_checked = False

    @property
    def input_names(self) -> tuple[str, ...]:
        return self.spec.input_names

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.spec.output_names

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check the batch, run it, return float32 outputs by name."""
        x = self._check(inputs)
        out = self._run(x)
        if not self._outputs_checked:
            batch = next(iter(x.values())).shape[0]
            got = {n: tuple(np.shape(out.get(n))) for n in self.output_names}
            want = {n: (batch, *s) for n, s in self.spec.outputs.items()}
            if got != want:
                raise UserError(f"{self.name} engine returned {got}, expected {want} "
                                "(does the model card's label/AU list match the weights?)")
            self._outputs_checked = True
        return out

    @abstractmethod
    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def _check(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ValueError(f"missing input(s) {missing}; the model takes {list(self.input_names)}")
        out, batch = {}, None
        for n, shape in self.spec.inputs.items():
            a = np.ascontiguousarray(inputs[n], dtype=np.float32)
            if a.ndim != len(shape) + 1 or tuple(a.shape[1:]) != shape:
                raise ValueError(f"input {n!r} must be (B, {', '.join(map(str, shape))}), got {a.shape}")
            if batch is not None and a.shape[0] != batch:
                raise ValueError(f"inputs disagree on the batch size: {batch} vs {a.shape[0]} for {n!r}")
            batch = a.shape[0]
            out[n] = a
        if batch == 0 or (self.max_batch is not None and batch > self.max_batch):
            raise ValueError(f"batch of {batch}: this {self.name} engine takes 1..{self.max_batch or 'any'}")
        return out

    def warmup(self, iterations: int = 3, batch: int = 1) -> None:
        """Run a few batches so lazy initialisation (kernels, allocations) is not timed."""
        x = self.spec.example_batch(batch)
        for _ in range(iterations):
            self.run(x)

    def describe(self) -> str:
        s = f"{self.spec.arch} on {self.name} ({self.device}, {self.precision})"
        return f"{s}: {self.reason}" if self.reason else s

    def close(self) -> None:
        """Release what the backend holds (sessions, GPU buffers); safe to call twice."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
