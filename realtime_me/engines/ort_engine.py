"""ONNX Runtime engine: CPU everywhere, CUDA or TensorRT execution providers when present.

ONNX Runtime silently falls back to CPU when a requested GPU provider cannot
load (missing CUDA libraries, no device), so the engine reports the providers the
session actually uses (``session.get_providers()``) and warns on a fallback.

A cached ONNX that ONNX Runtime cannot load is exported again once and retried: a
broken cache is repaired, not a reason to fail (or, under ``auto``, to fall back to
the slower torch engine on every run). Running a cached ONNX needs no torch: only an
export does.

Threads: ``intra_op_threads`` (else $REALTIME_ME_ORT_THREADS, else 1; 0 is ONNX
Runtime's own default, one per core) sizes the pool that runs one operator; with 1 the
graph runs on the calling thread and no pool exists. Operators run one after another
(``ORT_SEQUENTIAL``), so there are no inter-op threads (``inter_op_num_threads`` 1).
``run`` may be called from several threads at once: ONNX Runtime's ``Run`` is thread-safe
and the engine keeps no per-call state.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from .base import Engine
from .cache import cache_dir_or_default, write_target
from .spec import ModelSpec

log = logging.getLogger(__name__)

PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
#: One intra-op thread. A second one takes batch 1 from 0.99 to 0.86 ms p50 but its p99 from
#: 1.30 to 1.44 ms (benchmarks/results/engines.json, 2 cores), and in the live pipeline the
#: other core is the face tracker's, which a spinning pool thread would take from it.
DEFAULT_INTRA_OP_THREADS = 1


class OrtEngine(Engine):
    name = "onnxruntime"

    def __init__(self, spec: ModelSpec, precision: str = "fp32", cache_dir: str | Path | None = None,
                 providers: tuple[str, ...] | None = None, intra_op_threads: int | None = None,
                 onnx_path: str | Path | None = None) -> None:
        import onnxruntime as ort

        super().__init__(spec, precision)
        cache_dir = cache_dir_or_default(cache_dir)
        wanted = tuple(providers) if providers else ("cuda", "cpu")
        unknown = [p for p in wanted if p not in PROVIDERS]
        if unknown:
            raise UserError(f"unknown onnxruntime provider(s) {unknown}; choose from {', '.join(PROVIDERS)}")
        if "cpu" not in wanted:
            wanted = (*wanted, "cpu")
        available = set(ort.get_available_providers())
        chosen = [p for p in wanted if PROVIDERS[p] in available]
        gpu_requested = [p for p in chosen if p != "cpu"]
        if precision == "fp16" and not gpu_requested:
            raise UserError("fp16 needs onnxruntime's CUDA or TensorRT provider, which this onnxruntime "
                            f"({ort.__version__}) lacks; use fp32 on CPU")
        from_cache = onnx_path is None
        if from_cache:
            from .onnx_export import cached_onnx

            onnx_path = cached_onnx(spec, cache_dir, precision).path
        self.onnx_path = Path(onnx_path)

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        threads = intra_op_threads if intra_op_threads is not None else _env_threads()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        provider_list = [(PROVIDERS[p], _provider_options(p, precision, cache_dir)) for p in chosen]

        def session():
            return ort.InferenceSession(str(self.onnx_path), sess_options=opts, providers=provider_list)

        try:
            self.session = session()
        except Exception as e:  # noqa: BLE001 - ORT's pybind errors (InvalidProtobuf, Fail, ...) share no base
            if not from_cache:
                raise UserError(f"{self.onnx_path}: onnxruntime cannot load it ({_first_line(e)})") from None
            log.warning("onnxruntime cannot load the cached %s (%s); exporting it again", self.onnx_path, _first_line(e))
            self.onnx_path = cached_onnx(spec, cache_dir, precision, refresh=True).path
            try:
                self.session = session()
            except Exception as e2:  # noqa: BLE001
                raise UserError(f"onnxruntime cannot load the freshly exported {self.onnx_path} "
                                f"({_first_line(e2)})") from None
        self.providers = tuple(self.session.get_providers())
        if gpu_requested and not any(PROVIDERS[p] in self.providers for p in gpu_requested):
            log.warning("onnxruntime fell back to CPU: asked for %s, session uses %s",
                        [PROVIDERS[p] for p in gpu_requested], list(self.providers))
        on_gpu = any(p in self.providers for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider"))
        if precision == "fp16" and not on_gpu:
            raise UserError(f"fp16 needs a GPU provider, but onnxruntime runs on {list(self.providers)}")
        self.device = "cuda" if on_gpu else "cpu"
        self.details = {"providers": list(self.providers), "intra_op_threads": threads, "onnx": str(self.onnx_path),
                        "onnxruntime": ort.__version__}
        graph = {v.name: tuple(v.shape[1:]) for v in [*self.session.get_inputs(), *self.session.get_outputs()]}
        if graph != {**spec.inputs, **spec.outputs}:
            raise UserError(f"{self.onnx_path}: tensors {graph} do not match the model's "
                            f"{ {**spec.inputs, **spec.outputs} } (a card whose labels/AUs disagree with the weights?)")

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self.session.run(list(self.output_names), inputs)  # _check kept exactly the graph's inputs
        return {n: np.asarray(o, dtype=np.float32) for n, o in zip(self.output_names, outs)}

    def describe(self) -> str:
        return super().describe() + f" [providers: {', '.join(self.providers)}]"

    def close(self) -> None:
        self.session = None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:200]}" if text else type(e).__name__


def _env_threads() -> int:
    v = os.environ.get("REALTIME_ME_ORT_THREADS")
    return int(v) if v and v.isdigit() else DEFAULT_INTRA_OP_THREADS


def _provider_options(p: str, precision: str, cache_dir: Path) -> dict:
    if p == "tensorrt":
        # ORT's TensorRT provider keeps its own engine cache; put it beside ours.
        return {"trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(write_target(cache_dir, "ort-tensorrt", folder=True)),
                "trt_timing_cache_enable": True, "trt_fp16_enable": precision == "fp16"}
    return {}
