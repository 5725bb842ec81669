"""Backend choice: ``load_engine`` and ``backend="auto"``'s order of fallbacks.

The backends are listed once (``_BACKENDS``: name -> module and class); each module is
imported only when its backend is chosen, so tensorrt, cuda-python and tritonclient
are never needed on a CPU install, and a backend that runs a cached ONNX graph or
TensorRT plan never imports torch.
"""
from __future__ import annotations

import importlib
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .base import PRECISIONS, Engine
from .cache import cache_dir_or_default
from .spec import ModelSpec

log = logging.getLogger(__name__)

#: backend -> (module of this package, Engine class), fastest first
_BACKENDS = {"tensorrt": ("tensorrt_engine", "TensorRTEngine"), "onnxruntime": ("ort_engine", "OrtEngine"),
             "torch": ("torch_engine", "TorchEngine"), "triton": ("triton_engine", "TritonEngine")}
#: what ``--backend`` accepts
BACKENDS = ("auto", *_BACKENDS)


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

    ``backend``: one of ``BACKENDS``. ``precision``: fp32 | fp16 (fp16 needs a GPU backend;
    auto falls back to fp32 on CPU and says so). ``cache_dir`` holds the ONNX exports and
    TensorRT plans (default: ``cache.default_cache_dir()``). ``options`` go to the backend
    (e.g. ``intra_op_threads`` for onnxruntime, ``url`` and ``model_name`` for triton).
    """
    from ..weights import read_spec

    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    cache = cache_dir_or_default(cache_dir)
    spec = read_spec(weights_dir)
    if backend == "auto":
        engine = _auto(spec, precision, cache, options)
    else:
        engine = _make(backend, spec, precision, cache, options)
        engine.reason = engine.reason or f"{backend} requested"
    if warmup:
        engine.warmup()
    log.info("inference engine: %s", engine.describe())
    return engine


def _make(backend: str, spec: ModelSpec, precision: str, cache: Path, options: dict, strict: bool = True) -> Engine:
    """Instantiate a backend; with ``strict=False`` (auto) options it does not take are dropped."""
    module, name = _BACKENDS[backend]
    cls = getattr(importlib.import_module(f"{__package__}.{module}"), name)
    params = inspect.signature(cls.__init__).parameters
    kwargs = {"precision": precision, **({"cache_dir": cache} if "cache_dir" in params else {})}
    for k, v in options.items():
        if k in params:
            kwargs[k] = v
        elif strict:
            raise UserError(f"the {backend} backend has no option {k!r}")
    return cls(spec, **kwargs)


def _auto(spec: ModelSpec, precision: str, cache: Path, options: dict) -> Engine:
    """tensorrt > onnxruntime-cuda > onnxruntime-cpu > torch, skipping what cannot run here."""
    avail = probe()
    why: list[str] = []
    if avail.tensorrt is None:
        try:
            e = _make("tensorrt", spec, precision, cache, options, strict=False)
            e.reason = "auto: TensorRT found a CUDA device (fastest)"
            return e
        except Exception as err:  # noqa: BLE001 - auto falls back, and says why
            log.warning("TensorRT engine failed, falling back: %s", err)
            why.append(f"tensorrt failed ({err})")
    else:
        why.append(f"no tensorrt ({avail.tensorrt})")
    if avail.onnxruntime_cuda is None:
        try:
            e = _make("onnxruntime", spec, precision, cache, {**options, "providers": ("cuda",)}, strict=False)
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
            e = _make("onnxruntime", spec, precision, cache, {**options, "providers": ("cpu",)}, strict=False)
            e.reason = "auto: " + "; ".join(why + ["onnxruntime on CPU"])
            return e
        except Exception as err:  # noqa: BLE001
            log.warning("onnxruntime engine failed, falling back to torch: %s", err)
            why.append(f"onnxruntime failed ({err})")
    else:
        why.append(avail.onnxruntime)
    if avail.torch is not None:
        raise UserError("no inference backend can run here: " + "; ".join(why + [avail.torch]))
    e = _make("torch", spec, precision, cache, options, strict=False)
    e.reason = "auto: " + "; ".join(why + ["torch eager"])
    return e
