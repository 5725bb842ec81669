"""``realtime-me export``: build the ONNX graph or TensorRT plan ahead of time, and/or a
Triton model repository.

    realtime-me export --weights models/medn --backend onnx [--fp16] [--out medn.onnx]
    realtime-me export --backend tensorrt [--fp16]        # on the GPU / Jetson that will run it
    realtime-me export --triton triton_models             # ONNX model + TensorRT config for Triton

Everything lands in the engine cache (``engines/``), where ``load_engine`` finds it
at start-up, so the first live frame does not wait for an export or a build. The
ONNX is checked (onnx full check, TensorRT lint) and compared with the torch model
on one batch before it is reported as written.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from .engines import DEFAULT_WEIGHTS
from .errors import UserError

#: fp32 ONNX Runtime must match torch to this; fp16 graphs are checked loosely.
PARITY_TOL = {"fp32": 1e-4, "fp16": 5e-2}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS),
                        help="model folder (model.safetensors + model.json); default: the shipped models/medn")
    parser.add_argument("--backend", choices=["onnx", "tensorrt"], default="onnx",
                        help="onnx: export and check the graph; tensorrt: also build the plan (needs a CUDA GPU)")
    parser.add_argument("--fp16", action="store_true", help="half precision inside the graph (GPU backends)")
    parser.add_argument("--out", metavar="PATH", help="also copy the .onnx (or .plan) here")
    parser.add_argument("--triton", metavar="DIR", help="write a Triton Inference Server model repository here")
    parser.add_argument("--cache-dir", metavar="DIR", help="engine cache (default: engines/ of the checkout)")


def run(args: argparse.Namespace) -> int:
    from .engines import cache_dir_or_default, load_spec
    from .engines.onnx_export import cached_onnx
    from .engines.trt_lint import lint

    weights = Path(args.weights)
    if not weights.is_dir():
        raise UserError(f"{weights}: no such weights folder")
    precision = "fp16" if args.fp16 else "fp32"
    if args.backend == "tensorrt":
        from .engines.tensorrt_engine import tensorrt_unavailable

        why = tensorrt_unavailable()
        if why:
            raise UserError(f"TensorRT backend unavailable: {why}")
    cache = cache_dir_or_default(args.cache_dir)
    spec, model = load_spec(weights)
    art = cached_onnx(spec, cache, precision, model=model)
    issues = lint(art.path)
    if issues:
        raise UserError(f"{art.path} would not build with TensorRT:\n  " + "\n  ".join(map(str, issues)))
    diff = _parity(art.path, spec, model)
    if diff > PARITY_TOL[precision]:
        raise UserError(f"{art.path}: ONNX Runtime differs from torch by {diff:.2e} (> {PARITY_TOL[precision]})")
    print(f"onnx: {art.path} (opset {art.opset}, {precision}, batch 1..N dynamic; TensorRT lint clean; "
          f"ONNX Runtime vs torch max |diff| {diff:.1e})")
    built = art.path
    plan_path = None
    if args.backend == "tensorrt":
        from .engines.tensorrt_engine import TensorRTEngine

        engine = TensorRTEngine(spec, precision=precision, cache_dir=cache, onnx_path=art.path)
        plan_path = Path(engine.details["plan"])
        engine.close()
        built = plan_path
        print(f"tensorrt: {plan_path} (TensorRT {engine.details['tensorrt']}, {engine.device})")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, out)
        print(f"copied to {out}")
    if args.triton:
        from .engines.triton_engine import write_model_repository

        models = write_model_repository(spec, art.path, args.triton, plan_path, precision)
        for name, folder in models.items():
            note = "" if (folder / "1" / "model.onnx").exists() or (folder / "1" / "model.plan").exists() \
                else f" (no plan yet: run {folder / 'build_plan.sh'} on the Triton server)"
            print(f"triton: {folder}{note}")
    return 0


def _parity(onnx_path: Path, spec, model) -> float:
    """Max |ONNX Runtime - torch| over the outputs of one batch of 2."""
    import onnxruntime as ort

    from .engines.onnx_export import reference_outputs

    x = spec.example_batch(2, seed=1)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = dict(zip(spec.output_names, sess.run(list(spec.output_names), x)))
    ref = reference_outputs(model, x)
    return max(float(np.abs(got[n] - ref[n]).max()) for n in spec.output_names)
