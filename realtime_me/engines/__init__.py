"""Inference engines behind one interface (like ultralytics' AutoBackend).

``load_engine(weights_dir, backend, precision, cache_dir)`` returns an ``Engine``
whatever runs underneath: TensorRT (a plan built once and cached under
``engines/``), ONNX Runtime (CUDA/TensorRT providers when present, else CPU),
PyTorch eager (the reference), or a Triton Inference Server over gRPC. Every
engine takes and returns plain NumPy dicts keyed by the model's tensor names
(MEDN: ``flow``, ``apex`` -> ``logits``, ``au_logits``), so the pipeline never
knows which one it has. ``backend="auto"`` picks the fastest that works here and
says why in ``engine.reason``.

* ``base``: the ``Engine`` interface and the checks every backend shares;
* ``spec``: ``ModelSpec``, what an engine knows about a model (built by its card);
* ``auto``: ``load_engine``, the backend list and auto's fallbacks;
* ``cache``: where exports and plans are kept, and how a stale one is caught;
* one module per backend, and ``onnx_export`` / ``trt_lint`` for the graph.
"""
from .auto import BACKENDS, Availability, load_engine, probe
from .base import MAX_BATCH, PRECISIONS, Engine
from .cache import cache_dir_or_default, default_cache_dir
from .spec import DEFAULT_WEIGHTS, ModelSpec, load_spec, torch_model

__all__ = ["BACKENDS", "DEFAULT_WEIGHTS", "MAX_BATCH", "PRECISIONS", "Availability", "Engine", "ModelSpec",
           "cache_dir_or_default", "default_cache_dir", "load_engine", "load_spec", "probe", "torch_model"]
