"""PyTorch eager engine: the reference every other backend is checked against.

On a CUDA device it can also run through torch-tensorrt's dynamo compiler
(``compile="tensorrt"``), a second way to TensorRT that needs no ONNX.
"""
from __future__ import annotations

import logging

import numpy as np

from ..errors import UserError
from .base import MAX_BATCH, Engine
from .spec import ModelSpec, torch_model

log = logging.getLogger(__name__)


class TorchEngine(Engine):
    name = "torch"

    def __init__(self, spec: ModelSpec, precision: str = "fp32", device: str | None = None,
                 compile: str | None = None, threads: int | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)  # process-wide: torch has no per-module setting

        super().__init__(spec, precision)
        model = torch_model(spec)
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if precision == "fp16" and not dev.startswith("cuda"):
            raise UserError("fp16 with the torch backend needs a CUDA device; use --precision fp32 on CPU")
        self._torch = torch
        self._device = torch.device(dev)
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = model.eval().to(self._device, self._dtype)
        self.device = dev if dev == "cpu" else f"{dev} ({torch.cuda.get_device_name(self._device)})"
        if compile == "tensorrt":
            self.model = _compile_torch_tensorrt(self.model, spec, self._dtype)
            self.name = "torch-tensorrt"
            self.max_batch = MAX_BATCH
        elif compile:
            raise UserError(f"unknown torch compile mode {compile!r} (supported: tensorrt)")

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            xs = [torch.from_numpy(inputs[n]).to(self._device, self._dtype) for n in self.input_names]
            outs = self.model(*xs)
        return {n: o.float().cpu().numpy() for n, o in zip(self.output_names, outs)}


def _compile_torch_tensorrt(model, spec: ModelSpec, dtype):
    """torch-tensorrt dynamo path with the same batch range as our TensorRT plans.

    The module is already in ``dtype``; torch-tensorrt's explicit typing (its default,
    ``enabled_precisions`` is deprecated) keeps that precision, as TensorRT 11 requires."""
    try:
        import torch_tensorrt
    except ImportError as e:
        raise UserError(f"torch-tensorrt is not installed ({e}); pip install '.[tensorrt]'") from None
    from .tensorrt_engine import PROFILE

    lo, opt, hi = PROFILE
    inputs = [torch_tensorrt.Input(min_shape=(lo, *s), opt_shape=(opt, *s), max_shape=(hi, *s), dtype=dtype)
              for s in spec.inputs.values()]
    log.info("compiling with torch-tensorrt (dynamo), %s", dtype)
    return torch_tensorrt.compile(model, ir="dynamo", inputs=inputs)
