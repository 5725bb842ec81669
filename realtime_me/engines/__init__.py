"""Inference engines behind one interface (like ultralytics' AutoBackend).

``load_engine(weights_dir, backend, precision, cache_dir)`` returns an ``Engine``
whatever runs underneath: TensorRT (a plan built once and cached under
``engines/``), ONNX Runtime (CUDA/TensorRT providers when present, else CPU),
PyTorch eager (the reference), or a Triton Inference Server over gRPC. Every
engine takes and returns plain NumPy dicts keyed by the model's tensor names
(MEDN: ``flow``, ``apex`` -> ``logits``, ``au_logits``), so the pipeline never
knows which one it has. ``backend="auto"`` picks the fastest that works here and
says why in ``engine.reason``.

Backends import their heavy or optional packages (tensorrt, cuda-python,
tritonclient) only when chosen, so a CPU install never needs them.
"""
from __future__ import annotations

import hashlib
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch", "triton")
PRECISIONS = ("fp32", "fp16")
#: Largest batch the TensorRT optimisation profile and the Triton config accept.
MAX_BATCH = 8


@dataclass(frozen=True)
class ModelSpec:
    """What an engine needs to know about the model, read from the weights folder.

    ``inputs`` / ``outputs`` map tensor names to per-sample shapes (no batch axis);
    ``weights_hash`` keys every cache built from these weights.
    """

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


def weights_hash(weights_dir: str | Path) -> str:
    """sha256 over the weights file and the card: any retraining or config edit changes it."""
    from ..weights import CARD_FILE, WEIGHTS_FILE

    h = hashlib.sha256()
    for name in (WEIGHTS_FILE, CARD_FILE):
        p = Path(weights_dir) / name
        if not p.is_file():
            raise UserError(f"{p}: not found (a weights folder holds {WEIGHTS_FILE} and {CARD_FILE})")
        h.update(name.encode())
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def load_spec(weights_dir: str | Path):
    """(ModelSpec, torch model in eval mode) of a weights folder."""
    from ..weights import load_model

    model, card = load_model(weights_dir)
    example = model.example_inputs(1)
    inputs = {n: tuple(t.shape[1:]) for n, t in zip(model.input_names, example)}
    spec = ModelSpec(model.arch_name, inputs, _output_shapes(model, card, example), tuple(card.labels),
                     tuple(card.aus or ()), weights_hash(weights_dir), Path(weights_dir))
    return spec, model


def _output_shapes(model, card, example) -> dict[str, tuple[int, ...]]:
    """Per-sample output shapes. ``logits`` / ``au_logits`` follow the card's label and AU
    lists (a torch model's first forward costs most of a second, which start-up skips);
    any other output is measured with one forward pass."""
    by_card = {"logits": (len(card.labels),), "au_logits": (len(card.aus or ()),)}
    if all(n in by_card for n in model.output_names):
        return {n: by_card[n] for n in model.output_names}
    import torch

    with torch.inference_mode():
        outs = model(*example)
    return {n: tuple(t.shape[1:]) for n, t in zip(model.output_names, outs)}


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


def default_cache_dir() -> Path:
    """``engines/`` of a source checkout; ``~/.cache/realtime-me/engines`` for an installed package
    (override with REALTIME_ME_ENGINES)."""
    env = os.environ.get("REALTIME_ME_ENGINES")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file():
        return root / "engines"
    return Path.home() / ".cache" / "realtime-me" / "engines"


def cache_dir_or_default(cache_dir: str | Path | None) -> Path:
    """The engine cache a caller asked for, else ``default_cache_dir()``."""
    return Path(cache_dir) if cache_dir else default_cache_dir()


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


@dataclass
class Availability:
    """Which backends can run here, and why the others cannot."""

    tensorrt: str | None = None          # None = usable, else the reason it is not
    onnxruntime_cuda: str | None = None
    onnxruntime: str | None = None
    torch: str | None = None


def probe() -> Availability:
    """Check each backend cheaply (imports and device queries, no engine build)."""
    from .tensorrt_engine import tensorrt_unavailable

    a = Availability()
    a.tensorrt = tensorrt_unavailable()
    try:
        import onnxruntime as ort

        provs = ort.get_available_providers()
        a.onnxruntime_cuda = None if "CUDAExecutionProvider" in provs else \
            f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (providers: {', '.join(provs)})"
    except ImportError as e:
        a.onnxruntime = a.onnxruntime_cuda = f"onnxruntime not importable ({e})"
    try:
        import torch  # noqa: F401
    except ImportError as e:
        a.torch = f"torch not importable ({e})"
    return a


def load_engine(weights_dir: str | Path, backend: str = "auto", precision: str = "fp32",
                cache_dir: str | Path | None = None, warmup: bool = True, **options) -> Engine:
    """Build or load the engine for ``weights_dir``.

    ``backend``: auto | tensorrt | onnxruntime | torch | triton. ``precision``: fp32 | fp16
    (fp16 needs a GPU backend; auto falls back to fp32 on CPU and says so). ``cache_dir``
    holds the ONNX exports and TensorRT plans (default: ``default_cache_dir()``).
    ``options`` go to the backend (e.g. ``intra_op_threads`` for onnxruntime, ``url`` and
    ``model_name`` for triton).
    """
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    cache = cache_dir_or_default(cache_dir)
    spec, model = load_spec(weights_dir)
    if backend == "auto":
        engine = _auto(spec, precision, cache, options, model)
    else:
        engine = _make(backend, spec, precision, cache, options, model=model)
        engine.reason = engine.reason or f"{backend} requested"
    if warmup:
        engine.warmup()
    log.info("inference engine: %s", engine.describe())
    return engine


def _engine_class(backend: str) -> type[Engine]:
    if backend == "torch":
        from .torch_engine import TorchEngine as cls
    elif backend == "onnxruntime":
        from .ort_engine import OrtEngine as cls
    elif backend == "tensorrt":
        from .tensorrt_engine import TensorRTEngine as cls
    elif backend == "triton":
        from .triton_engine import TritonEngine as cls
    else:
        raise UserError(f"unknown backend {backend!r}")
    return cls


def _make(backend: str, spec: ModelSpec, precision: str, cache: Path, options: dict, strict: bool = True,
          model=None) -> Engine:
    """Instantiate a backend; with ``strict=False`` (auto) options it does not take are dropped.
    ``model`` (the torch module already loaded) is handed to backends that can use it."""
    import inspect

    cls = _engine_class(backend)
    params = inspect.signature(cls.__init__).parameters
    kwargs = {"precision": precision, **({"cache_dir": cache} if "cache_dir" in params else {})}
    if model is not None and "model" in params:
        kwargs["model"] = model
    for k, v in options.items():
        if k in params:
            kwargs[k] = v
        elif strict:
            raise UserError(f"the {backend} backend has no option {k!r}")
    return cls(spec, **kwargs)


def _auto(spec: ModelSpec, precision: str, cache: Path, options: dict, model=None) -> Engine:
    """tensorrt > onnxruntime-cuda > onnxruntime-cpu > torch, skipping what cannot run here."""
    avail = probe()
    why: list[str] = []
    if avail.tensorrt is None:
        try:
            e = _make("tensorrt", spec, precision, cache, options, strict=False, model=model)
            e.reason = "auto: TensorRT found a CUDA device (fastest)"
            return e
        except Exception as err:  # noqa: BLE001 - auto falls back, and says why
            log.warning("TensorRT engine failed, falling back: %s", err)
            why.append(f"tensorrt failed ({err})")
    else:
        why.append(f"no tensorrt ({avail.tensorrt})")
    if avail.onnxruntime_cuda is None:
        try:
            e = _make("onnxruntime", spec, precision, cache, {**options, "providers": ("cuda",)}, strict=False, model=model)
            if e.device != "cpu":
                e.reason = "auto: " + "; ".join(why + ["onnxruntime CUDA provider in use"])
                return e
            why.append("onnxruntime's CUDA provider fell back to CPU")
            e.close()
        except Exception as err:  # noqa: BLE001
            why.append(f"onnxruntime-cuda failed ({err})")
    elif avail.onnxruntime is None:
        why.append("no onnxruntime CUDA provider")
    if precision == "fp16":
        why.append("fp16 needs a GPU: using fp32")
        precision = "fp32"
    if avail.onnxruntime is None:
        try:
            e = _make("onnxruntime", spec, precision, cache, {**options, "providers": ("cpu",)}, strict=False, model=model)
            e.reason = "auto: " + "; ".join(why + ["onnxruntime on CPU"])
            return e
        except Exception as err:  # noqa: BLE001
            log.warning("onnxruntime engine failed, falling back to torch: %s", err)
            why.append(f"onnxruntime failed ({err})")
    else:
        why.append(avail.onnxruntime)
    if avail.torch is not None:
        raise UserError("no inference backend can run here: " + "; ".join(why + [avail.torch]))
    e = _make("torch", spec, precision, cache, options, strict=False, model=model)
    e.reason = "auto: " + "; ".join(why + ["torch eager"])
    return e


__all__ = ["BACKENDS", "DEFAULT_WEIGHTS", "MAX_BATCH", "PRECISIONS", "Availability", "Engine", "ModelSpec",
           "cache_dir_or_default", "default_cache_dir", "load_engine", "load_spec", "probe", "weights_hash"]
