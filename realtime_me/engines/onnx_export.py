"""Export the torch model to ONNX once per weights, and check the graph.

The export is cached under ``<cache>/onnx/`` keyed by the weights' hash, the
exporter (torch version, opset) and the precision, so start-up does not re-trace
the model. A machine without torch cannot export, nor know the exporter: it runs
any valid export of these weights found in the cache (``realtime-me export`` made
elsewhere). Only the batch axis is dynamic (1..MAX_BATCH for TensorRT); every other
dimension is fixed, which TensorRT and Triton both want.

FP16 lives in the graph itself (TensorRT 11 removed the FP16 builder flag: a
network is strongly typed, so precision must come from the ONNX): the model is
converted to half precision and wrapped so its inputs and outputs stay float32,
with the casts inside the graph. The same file then runs on TensorRT 10 (with a
strongly typed network) and 11, on ONNX Runtime's CUDA provider and on Triton.

We use torch's TorchScript exporter (``dynamo=False``): it needs no extra package
and writes TopK's K as a Constant, which TensorRT requires. If a later torch drops
it, the dynamo exporter is used (it needs ``onnxscript``).
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .cache import is_file, read_candidates, read_recorded, store_recorded
from .spec import ModelSpec, torch_model
from .trt_lint import MAX_OPSET

log = logging.getLogger(__name__)

#: 17 is the first opset with LayerNormalization (one fused TensorRT layer) and is well
#: inside what TensorRT 10.x parses (opset 9..20 for 10.0-10.3, the JetPack 6 release).
OPSET = 17
#: Bump when the export code changes in a way that changes the graph.
EXPORT_VERSION = 1


def _half_io_wrapper(model):
    """The model in half precision with float32 inputs/outputs (casts inside the graph)."""
    import torch

    class HalfIO(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m.half()

        def forward(self, *xs):
            outs = self.m(*(x.half() for x in xs))
            return tuple(o.float() for o in outs)

    return HalfIO(model).eval()


def export_bytes(model, precision: str = "fp32", opset: int = OPSET) -> bytes:
    """Serialized ONNX of ``model`` (eval mode) with a dynamic batch axis only."""
    import copy

    import torch

    if precision not in ("fp32", "fp16"):
        raise UserError(f"unknown precision {precision!r}")
    model = model.eval()
    example = tuple(model.example_inputs(2))
    net = _half_io_wrapper(copy.deepcopy(model)) if precision == "fp16" else model
    names_in, names_out = list(model.input_names), list(model.output_names)
    axes = {n: {0: "batch"} for n in names_in + names_out}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        with torch.inference_mode(False), torch.no_grad():
            try:
                torch.onnx.export(net, example, buf, dynamo=False, opset_version=opset, input_names=names_in,
                                  output_names=names_out, dynamic_axes=axes, do_constant_folding=True)
            except (TypeError, NotImplementedError, RuntimeError) as e:
                if "dynamo" not in str(e) and "TorchScript" not in str(e):
                    raise
                log.info("TorchScript exporter unavailable (%s); using the dynamo exporter", e)
                buf = io.BytesIO()
                batch = torch.export.Dim("batch", min=1, max=64)
                prog = torch.onnx.export(net, example, dynamo=True, opset_version=opset, input_names=names_in,
                                         output_names=names_out,
                                         dynamic_shapes=tuple({0: batch} for _ in names_in))
                prog.save(buf)
    return buf.getvalue()


def check_onnx(model_or_path) -> None:
    """Raise ValueError unless the graph passes onnx's full checker, has opset <= MAX_OPSET
    and a dynamic axis only in front (the batch) of every input and output."""
    import onnx

    m = onnx.load(str(model_or_path)) if isinstance(model_or_path, (str, Path)) else model_or_path
    try:
        onnx.checker.check_model(m, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ValueError(f"ONNX checker: {e}") from None
    opset = max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset > MAX_OPSET:
        raise ValueError(f"opset {opset} > {MAX_OPSET} (TensorRT 10.3 parses up to {MAX_OPSET})")
    for v in list(m.graph.input) + list(m.graph.output):
        dims = v.type.tensor_type.shape.dim
        if not dims or not dims[0].dim_param:
            raise ValueError(f"{v.name}: the batch axis is not dynamic")
        fixed = [d for d in dims[1:] if d.dim_param or d.dim_value <= 0]
        if fixed:
            raise ValueError(f"{v.name}: only the batch axis may be dynamic, got {[d.dim_param or d.dim_value for d in dims]}")


@dataclass(frozen=True)
class OnnxArtifact:
    path: Path
    sha256: str
    precision: str
    opset: int


def _export_key(spec: ModelSpec, precision: str, opset: int) -> dict:
    """What an export depends on; ``torch`` (the exporter) is None where torch is not installed."""
    return {"weights": spec.weights_hash, "arch": spec.arch, "precision": precision, "opset": opset,
            "torch": _torch_version(), "export_version": EXPORT_VERSION}


def _torch_version() -> str | None:
    if importlib.util.find_spec("torch") is None:  # asks without importing it
        return None
    import torch

    return torch.__version__


def cached_onnx(spec: ModelSpec, cache_dir: str | Path, precision: str = "fp32", opset: int = OPSET,
                model=None, refresh: bool = False) -> OnnxArtifact:
    """The ONNX file for these weights, exported now only if no valid cached copy exists.

    A cached file whose bytes do not match its sidecar's hash (truncated, edited), or that
    does not parse as this model's graph, is re-exported with a message; ``refresh`` re-exports
    regardless (a runtime refused the cached copy). ``model`` (the loaded torch module) saves
    a reload. A cache that cannot be written gets a warning and the export lives in a
    temporary folder for this run (``cache.store_recorded``).
    """
    key = _export_key(spec, precision, opset)
    found = None if refresh else _cached(spec, cache_dir, key)
    if found is not None:
        return found
    if key["torch"] is None:
        raise UserError(f"no usable ONNX export of {spec.weights_dir} ({precision}) in {Path(cache_dir) / 'onnx'}, "
                        f"and exporting one needs torch, which is not installed: run `realtime-me export --weights "
                        f"{spec.weights_dir}{' --fp16' if precision == 'fp16' else ''} --cache-dir {cache_dir}` "
                        "where it is")
    data = export_bytes(model if model is not None else torch_model(spec), precision, opset)
    import onnx

    try:
        check_onnx(onnx.load_from_string(data))
    except ValueError as e:
        raise UserError(f"the exported ONNX graph is not valid: {e}") from None
    path, sha = store_recorded(cache_dir, _rel(spec, key), data, key)
    log.info("exported %s (%d KB)", path, len(data) // 1024)
    return OnnxArtifact(path, sha, precision, opset)


def _rel(spec: ModelSpec, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path("onnx") / f"{spec.arch}-{digest}-{key['precision']}.onnx"


def _cached(spec: ModelSpec, cache_dir: str | Path, key: dict) -> OnnxArtifact | None:
    """A valid cached export for ``key``. Without torch the exporter is unknown, so every export
    of this architecture and precision is a candidate and one recorded for these weights, by any
    torch, will do; the others are passed over in silence (none could be redone anyway)."""
    any_exporter = key["torch"] is None
    if any_exporter:
        pattern = f"{spec.arch}-*-{key['precision']}.onnx"
        paths = [p for d in read_candidates(cache_dir, "onnx") for p in sorted(d.glob(pattern))]
    else:
        paths = read_candidates(cache_dir, _rel(spec, key))
    for path in paths:
        if not is_file(path):
            continue
        data, why = read_recorded(path, key, ignore=("torch",) if any_exporter else ())
        if any_exporter and why:
            continue
        why = why or _graph_problem(data, spec)
        if not why:
            return OnnxArtifact(path, hashlib.sha256(data).hexdigest(), key["precision"], key["opset"])
        log.warning("cached %s: %s%s", path, why, "" if any_exporter else "; exporting again")
    return None


def _graph_problem(data: bytes, spec: ModelSpec) -> str:
    """Why cached bytes are not this model's ONNX graph ("" if they are). The sidecar's hash
    only proves the file is what was written, not that what was written was sound."""
    import onnx

    try:
        m = onnx.load_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError, RuntimeWarning, ...
        return f"not a readable ONNX graph ({type(e).__name__})"
    names = ([i.name for i in m.graph.input], [o.name for o in m.graph.output])
    if names != (list(spec.input_names), list(spec.output_names)):
        return f"its graph has tensors {names}, not the model's"
    return ""


def reference_outputs(model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Torch eager outputs for parity checks."""
    import torch

    with torch.inference_mode():
        outs = model.eval()(*(torch.from_numpy(inputs[n]) for n in model.input_names))
    return {n: o.numpy() for n, o in zip(model.output_names, outs)}
