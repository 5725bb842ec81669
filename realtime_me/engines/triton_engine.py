"""Scale-out: a Triton Inference Server model repository, and an engine that calls it.

``write_model_repository`` lays out what ``tritonserver --model-repository DIR``
loads: ``<arch>_onnx`` (platform ``onnxruntime_onnx``) and ``<arch>_trt``
(``tensorrt_plan``), each with a ``config.pbtxt`` declaring ``max_batch_size`` and
dynamic batching, so many clients' batch-1 requests are merged on the server.
Inputs and outputs are float32 in both (an FP16 graph casts inside).

A TensorRT plan only runs on the TensorRT version and GPU that built it, so the
``_trt`` model gets ``1/model.plan`` only when one is passed in (built on the
server's machine); otherwise the folder holds ``build_plan.sh`` with the
``trtexec`` line that builds it there.

``TritonEngine`` sends requests over gRPC with tritonclient (``pip install
'.[triton]'``); it behaves like every other ``Engine``.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import UserError
from .base import MAX_BATCH, Engine
from .spec import ModelSpec
from .tensorrt_engine import DEFAULT_WORKSPACE_MB

log = logging.getLogger(__name__)

DEFAULT_URL = "localhost:8001"
#: How long the server may hold a request to grow a batch (microseconds): well under
#: a frame at 200 fps, so batching never costs the live path more than it saves.
MAX_QUEUE_DELAY_US = 500


def _dims(shape: tuple[int, ...]) -> str:
    return "[ " + ", ".join(str(int(d)) for d in shape) + " ]"


def model_config_text(name: str, platform: str, spec: ModelSpec, max_batch: int = MAX_BATCH,
                      instance_kind: str = "KIND_AUTO") -> str:
    """config.pbtxt (protobuf text format of Triton's ModelConfig)."""
    def tensors(items):
        return ",\n".join(f'  {{\n    name: "{n}"\n    data_type: TYPE_FP32\n    dims: {_dims(s)}\n  }}'
                          for n, s in items)

    preferred = sorted({b for b in (max_batch // 2, max_batch) if b >= 1})
    return (f'name: "{name}"\n'
            f'platform: "{platform}"\n'
            f"max_batch_size: {max_batch}\n"
            f"input [\n{tensors(spec.inputs.items())}\n]\n"
            f"output [\n{tensors(spec.outputs.items())}\n]\n"
            "dynamic_batching {\n"
            f"  preferred_batch_size: {_dims(tuple(preferred))}\n"
            f"  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}\n"
            "}\n"
            f"instance_group [\n  {{\n    count: 1\n    kind: {instance_kind}\n  }}\n]\n"
            "version_policy: { latest { num_versions: 1 } }\n")


def trtexec_command(spec: ModelSpec, onnx_path: str, plan_path: str, fp16_graph: bool, max_batch: int = MAX_BATCH) -> str:
    def shapes(b):
        return ",".join(f"{n}:{b}x" + "x".join(map(str, s)) for n, s in spec.inputs.items())

    typed = " --stronglyTyped" if fp16_graph else ""
    return (f"trtexec --onnx={onnx_path} --saveEngine={plan_path} --minShapes={shapes(1)} "
            f"--optShapes={shapes(1)} --maxShapes={shapes(max_batch)} --memPoolSize=workspace:{DEFAULT_WORKSPACE_MB}{typed}")


def write_model_repository(spec: ModelSpec, onnx_path: str | Path, out_dir: str | Path,
                           plan_path: str | Path | None = None, precision: str = "fp32",
                           max_batch: int = MAX_BATCH) -> dict[str, Path]:
    """Write (or refresh) the two model folders; returns {model name: its folder}."""
    out = Path(out_dir)
    onnx_name, trt_name = f"{spec.arch}_onnx", f"{spec.arch}_trt"
    written = {}
    d = out / onnx_name
    (d / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, d / "1" / "model.onnx")
    (d / "config.pbtxt").write_text(model_config_text(onnx_name, "onnxruntime_onnx", spec, max_batch))
    written[onnx_name] = d

    d = out / trt_name
    (d / "1").mkdir(parents=True, exist_ok=True)
    (d / "config.pbtxt").write_text(model_config_text(trt_name, "tensorrt_plan", spec, max_batch, "KIND_GPU"))
    script = d / "build_plan.sh"
    if plan_path is not None:
        shutil.copyfile(plan_path, d / "1" / "model.plan")
        script.unlink(missing_ok=True)
    else:
        (d / "1" / "model.plan").unlink(missing_ok=True)  # a plan of earlier weights would be wrong
        cmd = trtexec_command(spec, f"../{onnx_name}/1/model.onnx", "1/model.plan", precision == "fp16", max_batch)
        script.write_text("#!/bin/sh\n"
                          "# Build the TensorRT plan on the Triton server's machine, with the TensorRT version of\n"
                          "# its Triton release (a plan runs only where it was built). Until then, start Triton\n"
                          f"# with --model-control-mode=explicit --load-model={onnx_name}.\n"
                          f'cd "$(dirname "$0")" && {cmd}\n')
        script.chmod(0o755)
    written[trt_name] = d
    return written


class TritonEngine(Engine):
    """Runs the model on a Triton server (gRPC). ``url`` defaults to $REALTIME_ME_TRITON_URL
    or localhost:8001; ``model_name`` to ``<arch>_onnx``."""

    name = "triton"

    def __init__(self, spec: ModelSpec, url: str | None = None, model_name: str | None = None,
                 model_version: str = "", timeout_s: float = 5.0, precision: str = "fp32", **_ignored) -> None:
        super().__init__(spec, precision, max_batch=MAX_BATCH)
        try:
            import tritonclient.grpc as grpcclient
            from tritonclient.utils import InferenceServerException
        except ImportError as e:
            raise UserError(f"the triton backend needs tritonclient ({e}); pip install '.[triton]'") from None
        self._grpc, self._error = grpcclient, InferenceServerException
        self.url = url or os.environ.get("REALTIME_ME_TRITON_URL", DEFAULT_URL)
        self.model_name = model_name or f"{spec.arch}_onnx"
        self.model_version = model_version
        self.timeout_s = timeout_s
        self.client = grpcclient.InferenceServerClient(url=self.url)
        try:
            ready = self.client.is_model_ready(self.model_name, self.model_version)
        except InferenceServerException as e:
            raise UserError(f"Triton server at {self.url} not reachable: {e}") from None
        if not ready:
            raise UserError(f"Triton at {self.url} has no ready model {self.model_name!r}")
        self.device = f"triton grpc://{self.url}/{self.model_name}"

    def build_request(self, inputs: dict[str, np.ndarray]):
        """tritonclient InferInput / InferRequestedOutput objects for one batch."""
        g = self._grpc
        ins = []
        for n in self.input_names:
            a = inputs[n]
            i = g.InferInput(n, list(a.shape), "FP32")
            i.set_data_from_numpy(a)
            ins.append(i)
        return ins, [g.InferRequestedOutput(n) for n in self.output_names]

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ins, outs = self.build_request(inputs)
        try:
            res = self.client.infer(self.model_name, ins, model_version=self.model_version, outputs=outs,
                                    client_timeout=self.timeout_s)
        except self._error as e:
            raise RuntimeError(f"Triton inference failed: {e}") from None
        return {n: np.asarray(res.as_numpy(n), dtype=np.float32) for n in self.output_names}

    def close(self) -> None:
        client, self.client = getattr(self, "client", None), None
        if client is not None:
            client.close()
