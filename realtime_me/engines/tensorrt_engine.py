"""TensorRT engine: ONNX -> serialized plan (cached under ``engines/``) -> execute_async_v3.

Build (``build_plan``, the only function that calls TensorRT's builder): the
network comes from TensorRT's ONNX parser, with a workspace memory-pool limit, one
optimisation profile for batch 1..MAX_BATCH (optimised for batch 1, the live
case) and a timing cache kept beside the plans so rebuilds after a model change
reuse kernel timings.

Precision: TensorRT 11 removed ``BuilderFlag.FP16`` (networks are always strongly
typed), so FP16 is in the ONNX itself (see ``onnx_export``); on TensorRT 10 the
network is created with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` (11.x accepts
and ignores it), so both versions build the same thing from the same file.

Run: the plan is deserialised at start-up (a null engine is refused and, if it came
from the cache, rebuilt), device buffers are allocated once for the largest batch,
and each batch sets its input shapes and tensor addresses, then
``execute_async_v3`` on our CUDA stream. CUDA memory and streams come from
cuda-python (``cuda.bindings.runtime``, or ``cuda.cudart`` before cuda-python 13),
part of the ``tensorrt`` extra, so a Jetson does not need a CUDA build of torch.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .base import MAX_BATCH, Engine
from .cache import (PlanCache, PlanKey, atomic_write, cache_dir_or_default, is_file, l4t_release, platform_tag,
                    write_target)
from .spec import ModelSpec

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE_MB = 256
PROFILE = (1, 1, MAX_BATCH)  # min, opt, max batch


def _import_trt():
    import tensorrt as trt

    return trt


@functools.lru_cache(maxsize=1)
def _cudart():
    """cuda-python's runtime bindings under either module layout (looked up once: every
    CUDA call on the inference path goes through ``_check``)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart
    return cudart


def _check(result):
    """cuda-python calls return (err, *values): raise on error, return the value(s)."""
    cudart = _cudart()
    err, rest = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        name = cudart.cudaGetErrorName(err)[1]
        raise RuntimeError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
    return rest[0] if len(rest) == 1 else (rest or None)


def _handle(obj) -> int:
    """Integer handle of a cuda-python object (stream, event)."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle

        return int(get_cuda_native_handle(obj))
    except ImportError:
        return int(obj)


@functools.lru_cache(maxsize=1)
def tensorrt_unavailable() -> str | None:
    """None when TensorRT can build here; else why not. An import is not enough: this
    needs a CUDA device on which a TensorRT builder can actually be created."""
    try:
        trt = _import_trt()
    except (ImportError, OSError) as e:
        return f"tensorrt not installed ({e.__class__.__name__}: {e})"
    try:
        cudart = _cudart()
    except (ImportError, OSError) as e:
        return f"cuda-python not installed ({e}); pip install '.[tensorrt]'"
    try:
        n = _check(cudart.cudaGetDeviceCount())
    except Exception as e:  # noqa: BLE001 - no driver, no device, ...
        return f"no CUDA device ({e})"
    if not n:
        return "no CUDA device"
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception as e:  # noqa: BLE001
        return f"TensorRT {trt.__version__} cannot create a builder ({e})"
    if builder is None:
        return f"TensorRT {trt.__version__} cannot create a builder on this device"
    del builder
    return None


@dataclass(frozen=True)
class TrtEnv:
    """The parts of a plan key that come from the machine."""

    tensorrt: str
    gpu: str
    compute_capability: str
    platform: str
    l4t: str | None


def trt_env(device: int = 0) -> TrtEnv:
    trt, cudart = _import_trt(), _cudart()
    prop = _check(cudart.cudaGetDeviceProperties(device))
    name = prop.name.decode(errors="replace").rstrip("\x00") if isinstance(prop.name, bytes) else str(prop.name)
    return TrtEnv(trt.__version__, name, f"{prop.major}.{prop.minor}", platform_tag(), l4t_release())


def plan_key(spec: ModelSpec, onnx_sha256: str, precision: str, env: TrtEnv, profile=PROFILE) -> PlanKey:
    return PlanKey(spec.arch, onnx_sha256, env.tensorrt, env.gpu, env.compute_capability, precision,
                   tuple(profile), env.platform, env.l4t)


def build_plan(onnx_bytes: bytes, input_shapes: dict[str, tuple[int, ...]], profile=PROFILE,
               workspace_mb: int = DEFAULT_WORKSPACE_MB, timing_cache: Path | None = None) -> bytes:
    """Parse the ONNX and build a serialized engine (the GPU-only step)."""
    trt = _import_trt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    if builder is None:
        raise RuntimeError("TensorRT could not create a builder")
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        # Needed on 10.x for the graph's own types to rule; accepted and ignored on 11.x,
        # where every network is strongly typed.
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT's ONNX parser rejected the graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    opt = builder.create_optimization_profile()
    lo, best, hi = profile
    for name, shape in input_shapes.items():
        opt.set_shape(name, (lo, *shape), (best, *shape), (hi, *shape))
    config.add_optimization_profile(opt)
    cache = _load_timing_cache(config, timing_cache)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("TensorRT failed to build the engine (its log above says why)")
    if timing_cache is not None and cache is not None:
        try:
            atomic_write(timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
        except Exception as e:  # noqa: BLE001 - a lost timing cache only slows the next build
            log.warning("could not save the TensorRT timing cache %s: %s", timing_cache, e)
    return bytes(memoryview(plan))


def _load_timing_cache(config, path: Path | None):
    """Start from the saved kernel timings; an unreadable or mismatched cache starts empty."""
    blob = b""
    if path is not None and is_file(path):
        try:
            blob = path.read_bytes()
        except OSError as e:
            log.warning("TensorRT timing cache %s unreadable (%s); starting a new one", path, e)
    for data in ((blob, b"") if blob else (b"",)):
        try:
            cache = config.create_timing_cache(data)
            if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
                return cache
        except Exception as e:  # noqa: BLE001
            log.warning("TensorRT timing cache %s unusable (%s); starting a new one", path, e)
    return None


def load_or_build(spec: ModelSpec, cache_dir: str | Path, precision: str, env: TrtEnv, deserialize,
                  onnx_path: Path | None = None, workspace_mb: int = DEFAULT_WORKSPACE_MB, profile=PROFILE):
    """The deserialised engine for these weights on this machine, from the plan cache or
    built now (``build_plan``). ``deserialize(bytes) -> engine | None`` is the runtime's."""
    import hashlib

    from .onnx_export import cached_onnx
    from .trt_lint import assert_trt_compatible

    if onnx_path is None:
        art = cached_onnx(spec, cache_dir, precision)   # hashed once, there
        path, sha = art.path, art.sha256
    else:
        path, sha = Path(onnx_path), hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()
    key = plan_key(spec, sha, precision, env, profile)
    plans = PlanCache(cache_dir)

    def build() -> bytes:
        try:
            assert_trt_compatible(path)
        except ValueError as e:
            raise UserError(str(e)) from None
        log.info("building the TensorRT engine for %s (%s, batch %d..%d); this takes a minute once",
                 spec.arch, precision, profile[0], profile[2])
        timing = write_target(cache_dir, plans.timing_cache_path(key).name)
        return build_plan(path.read_bytes(), spec.inputs, profile, workspace_mb, timing)

    return plans.get_or_build(key, build, deserialize), key


class TensorRTEngine(Engine):
    name = "tensorrt"

    def __init__(self, spec: ModelSpec, precision: str = "fp32", cache_dir: str | Path | None = None,
                 workspace_mb: int = DEFAULT_WORKSPACE_MB, device: int = 0, onnx_path: str | Path | None = None) -> None:
        super().__init__(spec, precision, max_batch=PROFILE[2])
        cache_dir = cache_dir_or_default(cache_dir)
        why = tensorrt_unavailable()
        if why:
            raise UserError(f"TensorRT backend unavailable: {why}")
        trt, cudart = _import_trt(), _cudart()
        self._trt, self._cudart = trt, cudart
        _check(cudart.cudaSetDevice(device))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        env = trt_env(device)
        self.engine, self.key = load_or_build(spec, cache_dir, precision, env, self._runtime.deserialize_cuda_engine,
                                              Path(onnx_path) if onnx_path else None, workspace_mb)
        if self.engine is None:
            raise UserError("TensorRT returned a null engine")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise UserError("TensorRT could not create an execution context (out of GPU memory?)")
        self.device = f"cuda:{device} ({env.gpu}, sm {env.compute_capability})"
        self.details = {"tensorrt": env.tensorrt, "plan": str(PlanCache(cache_dir).stored_path(self.key)),
                        "l4t": env.l4t}
        self.stream = _check(cudart.cudaStreamCreate())
        self._stream_handle = _handle(self.stream)
        self._buffers: dict[str, tuple[int, np.dtype]] = {}
        self._graphs: dict[int, object] = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            per_sample = spec.inputs.get(name) or spec.outputs.get(name)
            if per_sample is None:
                raise UserError(f"the TensorRT engine has a tensor {name!r} the model does not")
            nbytes = int(np.prod((self.max_batch, *per_sample))) * dtype.itemsize
            self._buffers[name] = (_check(cudart.cudaMalloc(nbytes)), dtype)
            self.context.set_tensor_address(name, self._buffers[name][0])

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.enqueue(inputs)
        return self.fetch(next(iter(inputs.values())).shape[0])

    def enqueue(self, inputs: dict[str, np.ndarray], graph: bool = False) -> None:
        """Copy inputs in and launch (asynchronously) on the engine's stream."""
        cudart = self._cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        batch = next(iter(inputs.values())).shape[0]
        self._staged = []  # host arrays the async copies read until the stream syncs
        for name, arr in inputs.items():
            ptr, dtype = self._buffers[name]
            a = np.ascontiguousarray(arr, dtype=dtype)
            self.context.set_input_shape(name, a.shape)
            _check(cudart.cudaMemcpyAsync(ptr, a.ctypes.data, a.nbytes, h2d, self.stream))
            self._staged.append(a)
        if graph:
            _check(cudart.cudaGraphLaunch(self._graph_for(batch), self.stream))
        elif not self.context.execute_async_v3(self._stream_handle):
            raise RuntimeError("TensorRT execute_async_v3 failed")

    def fetch(self, batch: int) -> dict[str, np.ndarray]:
        """Copy the outputs back and wait for the stream."""
        cudart = self._cudart
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        outs = {}
        for name in self.output_names:
            ptr, dtype = self._buffers[name]
            out = np.empty((batch, *self.spec.outputs[name]), dtype=dtype)
            _check(cudart.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes, d2h, self.stream))
            outs[name] = out
        _check(cudart.cudaStreamSynchronize(self.stream))
        return {k: v.astype(np.float32, copy=False) for k, v in outs.items()}

    def _graph_for(self, batch: int):
        """A CUDA graph of execute_async_v3 at this batch size (captured once; addresses are fixed)."""
        if batch not in self._graphs:
            cudart = self._cudart
            if not self.context.execute_async_v3(self._stream_handle):  # TensorRT wants one run before capture
                raise RuntimeError("TensorRT execute_async_v3 failed")
            _check(cudart.cudaStreamSynchronize(self.stream))
            _check(cudart.cudaStreamBeginCapture(self.stream, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal))
            self.context.execute_async_v3(self._stream_handle)
            graph = _check(cudart.cudaStreamEndCapture(self.stream))
            self._graphs[batch] = _check(cudart.cudaGraphInstantiate(graph, 0))
            cudart.cudaGraphDestroy(graph)  # the instantiated executable keeps what it needs
        return self._graphs[batch]

    def close(self) -> None:
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        for ptr, _ in getattr(self, "_buffers", {}).values():
            cudart.cudaFree(ptr)
        self._buffers = {}
        for g in getattr(self, "_graphs", {}).values():
            cudart.cudaGraphExecDestroy(g)
        self._graphs = {}
        if getattr(self, "stream", None) is not None:
            cudart.cudaStreamDestroy(self.stream)
            self.stream = None
        self.context = self.engine = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - CUDA may already be torn down at interpreter exit
            pass
