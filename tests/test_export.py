"""``realtime-me export``: ONNX (and a Triton repository) from real weights, through the CLI."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from realtime_me.cli import main
from realtime_me.engines import load_spec, onnx_export, trt_lint
from realtime_me.engines.tensorrt_engine import tensorrt_unavailable


def test_export_onnx_and_triton_repository(weights, tmp_path, capsys):
    out, repo = tmp_path / "out" / "medn.onnx", tmp_path / "triton"
    rc = main(["export", "--weights", str(weights), "--backend", "onnx", "--cache-dir", str(tmp_path / "engines"),
               "--out", str(out), "--triton", str(repo)])
    assert rc == 0
    said = capsys.readouterr().out
    assert "TensorRT lint clean" in said and "triton:" in said
    m = onnx.load(str(out))
    onnx.checker.check_model(m, full_check=True)
    assert trt_lint.lint(m) == []
    cached = list((tmp_path / "engines" / "onnx").glob("medn-*-fp32.onnx"))
    assert len(cached) == 1 and cached[0].read_bytes() == out.read_bytes()
    assert (repo / "medn_onnx" / "1" / "model.onnx").read_bytes() == out.read_bytes()
    assert 'platform: "onnxruntime_onnx"' in (repo / "medn_onnx" / "config.pbtxt").read_text()
    assert 'platform: "tensorrt_plan"' in (repo / "medn_trt" / "config.pbtxt").read_text()
    assert (repo / "medn_trt" / "build_plan.sh").is_file()

    # The written file runs and agrees with the weights it came from.
    spec, model = load_spec(weights)
    x = spec.example_batch(4, seed=7)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(["logits"], x)[0]
    np.testing.assert_allclose(got, onnx_export.reference_outputs(model, x)["logits"], atol=1e-4, rtol=0)


def test_export_fp16_keeps_float32_io(weights, tmp_path):
    out = tmp_path / "medn16.onnx"
    assert main(["export", "--weights", str(weights), "--fp16", "--cache-dir", str(tmp_path / "e"),
                 "--out", str(out)]) == 0
    m = onnx.load(str(out))
    assert {t.data_type for t in m.graph.initializer if len(t.dims) >= 2} == {onnx.TensorProto.FLOAT16}
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in list(m.graph.input) + list(m.graph.output))
    spec, model = load_spec(weights)
    x = spec.example_batch(2, seed=2)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(["logits"], x)[0]
    np.testing.assert_allclose(got, onnx_export.reference_outputs(model, x)["logits"], atol=5e-2, rtol=0)


def test_export_tensorrt_without_a_gpu_fails_with_one_clear_line(weights, tmp_path, capsys):
    why = tensorrt_unavailable()
    if why is None:
        pytest.skip("TensorRT works here; the GPU test in test_engines builds plans")
    rc = main(["export", "--weights", str(weights), "--backend", "tensorrt", "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "TensorRT backend unavailable" in err and "Traceback" not in err


def test_export_missing_weights_is_a_user_error(tmp_path, capsys):
    rc = main(["export", "--weights", str(tmp_path / "nope"), "--cache-dir", str(tmp_path)])
    assert rc == 2 and "no such weights folder" in capsys.readouterr().err
