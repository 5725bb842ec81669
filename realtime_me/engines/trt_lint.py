"""TensorRT-compatibility lint of an ONNX graph, without TensorRT.

Catches, on a CPU-only machine, what would make TensorRT's ONNX parser reject the
model on a user's GPU or Jetson: operators it does not implement, custom domains,
a TopK whose K is not a build-time constant (or exceeds TensorRT's limit, or is
unsorted), inputs that must be constants but are computed, ops whose output shape
depends on the data (NonZero & co), and an opset newer than JetPack 6's TensorRT 10.3.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Operators marked supported ("Y") in onnx-tensorrt's docs/operators.md for TensorRT 10.x
#: (github.com/onnx/onnx-tensorrt, docs/operators.md, 10.x releases), restricted to those
#: already there in TensorRT 10.0-10.3 (JetPack 6 ships 10.3): later additions such as
#: Attention, RotaryEmbedding, RMSNormalization and TensorScatter are left out. NonZero and
#: NonMaxSuppression are parsed by TensorRT but have data-dependent output shapes, which
#: this project does not allow (see DATA_DEPENDENT), so they are not listed either.
TRT_SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization
Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum
DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor
Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater
GreaterOrEqual GridSample GroupNormalization GRU HardSigmoid HardSwish Hardmax Identity If
ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log
LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization
Min Mish Mod Mul Neg Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal
RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum
ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape
Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu
Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt
Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

#: Output shape depends on the values, not just the input shapes: no static engine profile.
DATA_DEPENDENT = frozenset({"NonZero", "NonMaxSuppression", "Unique", "Compress"})

#: TensorRT's ITopKLayer handles K up to 3840 (onnx-tensorrt operators.md, TopK row).
TOPK_MAX_K = 3840
MAX_OPSET = 20

#: op -> input indices TensorRT needs as build-time constants (operators.md restrictions).
CONSTANT_INPUTS: dict[str, tuple[int, ...]] = {
    "TopK": (1,),
    "Squeeze": (1,), "Unsqueeze": (1,),
    **{op: (1,) for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
                           "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")},
    "CumSum": (1,),
    "OneHot": (1,),
}


@dataclass(frozen=True)
class LintIssue:
    node: str
    op: str
    message: str

    def __str__(self) -> str:
        return f"{self.op} {self.node!r}: {self.message}"


def _constants(graph) -> dict[str, np.ndarray]:
    """Tensors known at build time: initializers and Constant node outputs."""
    from onnx import numpy_helper

    out = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = numpy_helper.to_array(a.t)
                elif a.name in ("value_int", "value_ints"):
                    out[n.output[0]] = np.array(a.i if a.name == "value_int" else list(a.ints), dtype=np.int64)
    return out


def _attr(node, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return a.i
    return default


def lint(model_or_path) -> list[LintIssue]:
    """All TensorRT-compatibility problems found in the graph (empty list: none)."""
    import onnx

    m = onnx.load(str(model_or_path)) if isinstance(model_or_path, (str, Path)) else model_or_path
    issues: list[LintIssue] = []
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx") and o.version > MAX_OPSET:
            issues.append(LintIssue("<model>", "opset", f"opset {o.version} > {MAX_OPSET} (TensorRT 10.3's parser)"))
    consts = _constants(m.graph)
    for i, n in enumerate(m.graph.node):
        name = n.name or f"#{i}"
        if n.domain not in ("", "ai.onnx"):
            issues.append(LintIssue(name, n.op_type, f"custom domain {n.domain!r} needs a TensorRT plugin"))
            continue
        if n.op_type in DATA_DEPENDENT:
            issues.append(LintIssue(name, n.op_type, "output shape depends on the data (no static TensorRT profile)"))
            continue
        if n.op_type not in TRT_SUPPORTED_OPS:
            issues.append(LintIssue(name, n.op_type, "not supported by TensorRT's ONNX parser (10.x)"))
            continue
        for idx in CONSTANT_INPUTS.get(n.op_type, ()):
            if idx < len(n.input) and n.input[idx] and n.input[idx] not in consts:
                issues.append(LintIssue(name, n.op_type, f"input {idx} ({n.input[idx]!r}) must be a constant initializer"))
        if n.op_type == "TopK":
            issues += _lint_topk(n, name, consts)
    return issues


def _lint_topk(n, name: str, consts: dict[str, np.ndarray]) -> list[LintIssue]:
    issues = []
    if _attr(n, "sorted", 1) != 1:
        issues.append(LintIssue(name, "TopK", "sorted must be 1"))
    k = consts.get(n.input[1]) if len(n.input) > 1 else None
    if k is not None:
        kv = int(np.asarray(k).reshape(-1)[0])
        if not 1 <= kv <= TOPK_MAX_K:
            issues.append(LintIssue(name, "TopK", f"K={kv} outside 1..{TOPK_MAX_K}"))
    return issues


def assert_trt_compatible(model_or_path) -> None:
    """Raise ValueError listing every problem ``lint`` finds."""
    issues = lint(model_or_path)
    if issues:
        raise ValueError("graph is not TensorRT-compatible:\n  " + "\n  ".join(map(str, issues)))
