"""Inference engines: ONNX export and its checks, TensorRT lint, ORT/torch parity on real
samples, the plan and ONNX caches (GPU build replaced at its one boundary), auto
selection, Triton config and request building, and GPU tests that need TensorRT."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from realtime_me.engines import ModelSpec, load_engine, load_spec, probe
from realtime_me.engines import cache as cache_mod
from realtime_me.engines import onnx_export, tensorrt_engine, trt_lint
from realtime_me.engines.cache import PlanCache, PlanKey
from realtime_me.engines.onnx_export import cached_onnx, check_onnx
from realtime_me.errors import UserError
from realtime_me.models import create_model
from realtime_me.weights import ModelCard, save_model


def _save(model, out: Path) -> Path:
    return save_model(model, ModelCard.for_model(model), out)


@pytest.fixture(scope="module")
def built_weights(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    return _save(create_model("medn").eval(), tmp_path_factory.mktemp("wb") / "medn")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="module")
def real_batch(shared_data) -> dict[str, np.ndarray]:
    """8 real composite samples (apex crop + published flow) through the model's preprocessing."""
    import cv2

    from realtime_me.data import read_labels
    from realtime_me.preprocess import sample_inputs

    root = shared_data / "composite"
    rows = read_labels(root)[::50][:8]
    xs = [sample_inputs(cv2.imread(str(root / r.apex)), cv2.imread(str(root / r.flow))) for r in rows]
    return {"flow": np.stack([x.flow for x in xs]), "apex": np.stack([x.apex for x in xs])}


def _ref(model, batch):
    return onnx_export.reference_outputs(model, batch)


# ------------------------------------------------------------------ ONNX export


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnx_passes_full_check_with_only_batch_dynamic(built_weights, cache_dir, precision):
    spec, model = load_spec(built_weights)
    art = cached_onnx(spec, cache_dir, precision, model=model)
    m = onnx.load(str(art.path))
    check_onnx(m)  # full_check=True inside
    onnx.checker.check_model(m, full_check=True)
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) <= 20
    for v in list(m.graph.input) + list(m.graph.output):
        dims = v.type.tensor_type.shape.dim
        assert dims[0].dim_param, f"{v.name}: batch axis should be symbolic"
        assert all(d.dim_value > 0 and not d.dim_param for d in dims[1:]), v.name
        assert v.type.tensor_type.elem_type == TensorProto.FLOAT  # I/O stays fp32 even for fp16 graphs
    assert [i.name for i in m.graph.input] == ["flow", "apex"]
    assert [o.name for o in m.graph.output] == ["logits", "au_logits"]
    weights_types = {t.data_type for t in m.graph.initializer if len(t.dims) >= 2}
    assert weights_types == ({TensorProto.FLOAT16} if precision == "fp16" else {TensorProto.FLOAT})


def test_check_onnx_rejects_a_fixed_batch_and_a_new_opset():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    with pytest.raises(ValueError, match="batch axis is not dynamic"):
        check_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    x2 = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3])
    g2 = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x2], [y])
    with pytest.raises(ValueError, match="opset 21"):
        check_onnx(helper.make_model(g2, opset_imports=[helper.make_opsetid("", 21)]))


def test_onnx_export_is_cached_and_a_corrupt_copy_is_reexported(built_weights, tmp_path, monkeypatch, caplog):
    spec, model = load_spec(built_weights)
    first = cached_onnx(spec, tmp_path, "fp32", model=model)

    def no_export(*a, **k):
        raise AssertionError("should have used the cached ONNX")

    monkeypatch.setattr(onnx_export, "export_bytes", no_export)
    again = cached_onnx(spec, tmp_path, "fp32", model=model)
    assert again.path == first.path and again.sha256 == first.sha256

    data = first.path.read_bytes()
    first.path.write_bytes(data[: len(data) // 2])  # truncated by a crash or a full disk
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING):
        fixed = cached_onnx(spec, tmp_path, "fp32", model=model)
    assert "exporting again" in caplog.text
    assert fixed.sha256 == first.sha256 and fixed.path.read_bytes() == data


def test_new_weights_get_a_new_onnx(tmp_path):
    torch.manual_seed(5)
    a = _save(create_model("medn").eval(), tmp_path / "a")
    b = _save(create_model("medn").eval(), tmp_path / "b")
    sa, ma = load_spec(a)
    sb, mb = load_spec(b)
    assert sa.weights_hash != sb.weights_hash
    pa, pb = cached_onnx(sa, tmp_path / "c", model=ma), cached_onnx(sb, tmp_path / "c", model=mb)
    assert pa.path != pb.path and pa.sha256 != pb.sha256


# ------------------------------------------------------------------ TensorRT lint


def test_model_graph_is_tensorrt_compatible(built_weights, cache_dir):
    spec, model = load_spec(built_weights)
    art = cached_onnx(spec, cache_dir, "fp32", model=model)
    m = onnx.load(str(art.path))
    assert trt_lint.lint(m) == []
    consts = trt_lint._constants(m.graph)
    topks = [n for n in m.graph.node if n.op_type == "TopK"]
    assert len(topks) == len(model.config.keep_counts)
    ks = sorted(int(consts[n.input[1]].reshape(-1)[0]) for n in topks)  # K is a constant, not computed
    assert ks == sorted(model.config.keep_counts)
    assert all(trt_lint._attr(n, "sorted", 1) == 1 for n in topks)
    assert not {n.op_type for n in m.graph.node} & trt_lint.DATA_DEPENDENT


def _bad_graph() -> onnx.ModelProto:
    """One of each problem TensorRT's parser would trip on."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 16])
    kin = helper.make_tensor_value_info("k", TensorProto.INT64, [1])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("v1", "v2", "v3", "u", "c")] + \
           [helper.make_tensor_value_info(n, TensorProto.INT64, None) for n in ("i1", "i2", "i3", "nz")]
    nodes = [
        helper.make_node("TopK", ["x", "k"], ["v1", "i1"], name="topk_dynamic_k"),  # K from a graph input
        helper.make_node("TopK", ["x", "k_big"], ["v2", "i2"], name="topk_huge_k"),
        helper.make_node("TopK", ["x", "k_ok"], ["v3", "i3"], name="topk_unsorted", sorted=0),
        helper.make_node("NonZero", ["x"], ["nz"], name="nonzero"),
        helper.make_node("Unique", ["x"], ["u"], name="unique"),
        helper.make_node("MyPlugin", ["x"], ["c"], name="custom", domain="com.example"),
    ]
    inits = [helper.make_tensor("k_big", TensorProto.INT64, [1], [5000]),
             helper.make_tensor("k_ok", TensorProto.INT64, [1], [4])]
    g = helper.make_graph(nodes, "bad", [x, kin], outs, initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.example", 1)])


def test_lint_flags_a_bad_graph():
    issues = trt_lint.lint(_bad_graph())
    by_node = {}
    for i in issues:
        by_node.setdefault(i.node, []).append(i.message)
    assert any("opset 21" in m for m in by_node["<model>"])
    assert any("must be a constant" in m for m in by_node["topk_dynamic_k"])
    assert any("K=5000" in m for m in by_node["topk_huge_k"])
    assert any("sorted must be 1" in m for m in by_node["topk_unsorted"])
    assert any("depends on the data" in m for m in by_node["nonzero"])
    assert any("depends on the data" in m for m in by_node["unique"])
    assert any("custom domain" in m for m in by_node["custom"])
    with pytest.raises(ValueError, match="not TensorRT-compatible"):
        trt_lint.assert_trt_compatible(_bad_graph())


def test_lint_flags_an_unsupported_op():
    x = helper.make_tensor_value_info("x", TensorProto.STRING, ["b"])
    y = helper.make_tensor_value_info("y", TensorProto.STRING, ["b"])
    g = helper.make_graph([helper.make_node("StringNormalizer", ["x"], ["y"], name="s")], "g", [x], [y])
    issues = trt_lint.lint(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    assert [(i.node, i.op) for i in issues] == [("s", "StringNormalizer")]
    assert "not supported" in issues[0].message


# ------------------------------------------------------------------ ONNX Runtime vs torch


@pytest.mark.parametrize("batch", [1, 8])
def test_onnxruntime_matches_torch_on_real_samples(weights, cache_dir, real_batch, batch):
    engine = load_engine(weights, "onnxruntime", cache_dir=cache_dir)
    torch_engine = load_engine(weights, "torch", cache_dir=cache_dir)
    x = {k: v[:batch] for k, v in real_batch.items()}
    got, ref = engine.run(x), torch_engine.run(x)
    for name in ("logits", "au_logits"):
        assert got[name].shape == ref[name].shape == (batch, *engine.spec.outputs[name])
        np.testing.assert_allclose(got[name], ref[name], atol=1e-4, rtol=0)
    assert (got["logits"].argmax(1) == ref["logits"].argmax(1)).all()
    assert engine.details["providers"] == list(engine.session.get_providers())


def test_auto_picks_the_fastest_available_and_says_why(built_weights, cache_dir):
    a = probe()
    engine = load_engine(built_weights, "auto", cache_dir=cache_dir)
    if a.tensorrt is None:
        assert engine.name == "tensorrt"
    elif a.onnxruntime_cuda is None:
        assert engine.name in ("onnxruntime", "torch")
    else:
        assert engine.name == "onnxruntime" and engine.device == "cpu"
        assert "no tensorrt" in engine.reason and "onnxruntime on CPU" in engine.reason
    assert engine.reason.startswith("auto:")
    assert engine.name in engine.describe()


def test_auto_fp16_on_cpu_falls_back_to_fp32_and_says_so(built_weights, cache_dir):
    if probe().onnxruntime_cuda is None or probe().tensorrt is None:
        pytest.skip("a GPU backend is available: fp16 would be honoured")
    engine = load_engine(built_weights, "auto", precision="fp16", cache_dir=cache_dir)
    assert engine.precision == "fp32" and "fp16 needs a GPU" in engine.reason


@pytest.mark.filterwarnings("ignore:Specified provider")  # onnxruntime's own notice of the fallback
def test_onnxruntime_silent_cpu_fallback_is_reported(built_weights, cache_dir, monkeypatch, caplog):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider; the fallback case is not reproducible")
    real = ort.get_available_providers
    # Pretend the build has CUDA (a GPU wheel on a machine whose CUDA libraries are missing):
    # onnxruntime then silently runs on CPU, and the engine must say so.
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real()])
    with caplog.at_level(logging.WARNING):
        engine = load_engine(built_weights, "onnxruntime", cache_dir=cache_dir)
    assert engine.device == "cpu" and "CUDAExecutionProvider" not in engine.details["providers"]
    assert "fell back to CPU" in caplog.text
    with pytest.raises(UserError, match="fp16"):
        load_engine(built_weights, "onnxruntime", precision="fp16", cache_dir=cache_dir)


def test_engine_rejects_bad_batches(built_weights, cache_dir):
    engine = load_engine(built_weights, "onnxruntime", cache_dir=cache_dir, warmup=False)
    good = engine.spec.example_batch(2)
    with pytest.raises(ValueError, match="missing input"):
        engine.run({"flow": good["flow"]})
    with pytest.raises(ValueError, match="must be"):
        engine.run({"flow": good["flow"][:, :2], "apex": good["apex"]})
    with pytest.raises(ValueError, match="disagree"):
        engine.run({"flow": good["flow"], "apex": good["apex"][:1]})


def test_unknown_backend_precision_and_option_are_user_errors(built_weights, cache_dir):
    with pytest.raises(UserError, match="unknown backend"):
        load_engine(built_weights, "openvino", cache_dir=cache_dir)
    with pytest.raises(UserError, match="unknown precision"):
        load_engine(built_weights, "torch", precision="int8", cache_dir=cache_dir)
    with pytest.raises(UserError, match="no option"):
        load_engine(built_weights, "torch", cache_dir=cache_dir, intra_op_threads=2)
    with pytest.raises(UserError, match="not found"):
        load_engine(built_weights.parent / "nope", "torch", cache_dir=cache_dir)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_a_card_that_disagrees_with_its_weights_is_caught(tmp_path, backend):
    torch.manual_seed(2)
    w = _save(create_model("medn").eval(), tmp_path / "w")
    card = json.loads((w / "model.json").read_text())
    card["labels"] = card["labels"][:2]  # the card claims 2 classes, the weights have 3
    (w / "model.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match="label"):
        load_engine(w, backend, cache_dir=tmp_path / "c")


def test_a_card_whose_tensors_disagree_with_its_config_is_caught(tmp_path):
    """The spec comes from the card; the module built from the config must take what it says."""
    torch.manual_seed(2)
    w = _save(create_model("medn").eval(), tmp_path / "w")
    card = json.loads((w / "model.json").read_text())
    card["inputs"]["apex"]["shape"] = ["B", 1, 64, 64]   # the config's apex_size is 56
    (w / "model.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match=r"'inputs' say .* but the medn its config builds takes"):
        load_engine(w, "torch", cache_dir=tmp_path / "c")


TORCH_FREE = """
import sys
sys.modules["torch"] = None  # every `import torch` now fails, as on a machine without it
import numpy as np
from realtime_me.classify import Classifier
from realtime_me.engines import load_engine
from realtime_me.errors import UserError
weights, cache, empty = sys.argv[1:]
try:
    load_engine(weights, "onnxruntime", cache_dir=empty)
except UserError as e:
    print("no cache:", e)
engine = load_engine(weights, "onnxruntime", cache_dir=cache)
rng = np.random.default_rng(0)
onset, apex = (rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(2))
out = engine.run(Classifier(engine).inputs(onset, apex))
print("classified:", out["logits"].shape, engine.name, engine.onnx_path)
"""


def test_a_cached_onnx_runs_where_torch_is_not_installed(built_weights, tmp_path):
    """Exported here (with torch), then loaded and run in a process where torch cannot be
    imported: the card gives the spec, the cache the graph, preprocessing is NumPy/OpenCV.
    Without a cached export the same process is told, in one line, how to make one."""
    import subprocess
    import sys

    art = load_engine(built_weights, "onnxruntime", cache_dir=tmp_path / "cache", warmup=False).onnx_path
    r = subprocess.run([sys.executable, "-c", TORCH_FREE, str(built_weights), str(tmp_path / "cache"),
                        str(tmp_path / "empty")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"classified: (1, 3) onnxruntime {art}" in r.stdout, r.stdout
    assert "no cache: no usable ONNX export" in r.stdout and "needs torch, which is not installed" in r.stdout
    assert "realtime-me export --weights" in r.stdout


def test_explicit_tensorrt_without_a_gpu_is_a_clear_user_error(built_weights, cache_dir):
    why = tensorrt_engine.tensorrt_unavailable()
    if why is None:
        pytest.skip("TensorRT works here")
    with pytest.raises(UserError, match="TensorRT backend unavailable"):
        load_engine(built_weights, "tensorrt", cache_dir=cache_dir)


# ------------------------------------------------------------------ broken / unwritable caches


@pytest.fixture
def fresh_cache_state(monkeypatch):
    """Forget which cache folders this process already reported unwritable."""
    monkeypatch.setattr(cache_mod, "_UNWRITABLE", {})


def _break_cached_onnx(path: Path, how: str) -> None:
    """Damage a cached ONNX and re-record its hash, so the sidecar check alone cannot tell."""
    key = json.loads(path.with_suffix(".json").read_text())["key"]
    if how == "garbage":
        data = b"\x08\x07garbage, not a protobuf" * 10
    else:  # parses, names the right tensors, but a node reads a tensor that is not there
        m = onnx.load(str(path))
        del m.graph.initializer[:]
        data = m.SerializeToString()
    cache_mod.write_recorded(path, data, key)


@pytest.mark.parametrize("how", ["garbage", "missing_initializers"])
@pytest.mark.parametrize("backend", ["onnxruntime", "auto"])
def test_a_cached_onnx_that_cannot_be_loaded_is_exported_again(built_weights, tmp_path, caplog, how, backend):
    first = load_engine(built_weights, "onnxruntime", cache_dir=tmp_path, warmup=False)
    good = first.run(first.spec.example_batch(2))
    path = first.onnx_path
    _break_cached_onnx(path, how)
    with caplog.at_level(logging.WARNING):
        engine = load_engine(built_weights, backend, cache_dir=tmp_path)
    assert engine.name == "onnxruntime"  # auto did not fall back to torch over a repairable cache
    assert "exporting" in caplog.text and "again" in caplog.text
    np.testing.assert_allclose(engine.run(engine.spec.example_batch(2))["logits"], good["logits"], atol=1e-5)
    assert engine.onnx_path == path
    onnx.checker.check_model(onnx.load(str(path)))  # repaired on disk: the next run loads it directly
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_engine(built_weights, "onnxruntime", cache_dir=tmp_path, warmup=False)
    assert "again" not in caplog.text


def test_an_onnx_file_given_explicitly_that_cannot_load_is_a_user_error(built_weights, tmp_path):
    from realtime_me.engines.ort_engine import OrtEngine

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    spec, _ = load_spec(built_weights)
    with pytest.raises(UserError, match="bad.onnx: onnxruntime cannot load it"):
        OrtEngine(spec, onnx_path=bad, cache_dir=tmp_path)


@pytest.mark.parametrize("where", ["proc", "file_in_the_way"])
def test_an_unwritable_cache_warns_once_and_the_run_goes_on(built_weights, tmp_path, caplog, monkeypatch,
                                                             fresh_cache_state, where):
    if where == "proc":
        cache = Path("/proc/realtime-me-test") / tmp_path.name
    else:
        (tmp_path / "blocker").write_text("a file where the cache folder should be")
        cache = tmp_path / "blocker" / "engines"
    with caplog.at_level(logging.WARNING):
        engine = load_engine(built_weights, "onnxruntime", cache_dir=cache)
    warnings_ = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings_) == 1 and "cannot be written" in warnings_[0].getMessage()
    assert str(cache) in warnings_[0].getMessage()
    assert engine.onnx_path.is_file() and not engine.onnx_path.is_relative_to(cache)
    assert engine.run(engine.spec.example_batch(1))["logits"].shape == (1, 3)

    # Later loads in this run reuse the temporary export, without a second warning.
    monkeypatch.setattr(onnx_export, "export_bytes", lambda *a, **k: pytest.fail("exported twice"))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = load_engine(built_weights, "onnxruntime", cache_dir=cache)
    assert again.onnx_path == engine.onnx_path and not caplog.records


def test_a_read_only_cache_is_still_read(built_weights, tmp_path, monkeypatch, fresh_cache_state):
    """A cache prepared ahead (``realtime-me export``) and mounted read-only: its files are used."""
    spec, model = load_spec(built_weights)
    art = cached_onnx(spec, tmp_path, "fp32", model=model)
    monkeypatch.setattr(onnx_export, "export_bytes", lambda *a, **k: pytest.fail("should use the cached file"))
    monkeypatch.setattr(cache_mod, "write_recorded", lambda *a, **k: pytest.fail("nothing to write"))
    assert cached_onnx(spec, tmp_path, "fp32", model=model).path == art.path


def test_a_plan_cache_that_cannot_be_written_keeps_the_plan_for_this_run(tmp_path, caplog, fresh_cache_state):
    (tmp_path / "blocker").write_text("")
    trt = FakeTRT()
    cache = PlanCache(tmp_path / "blocker" / "plans")
    with caplog.at_level(logging.WARNING):
        e1 = cache.get_or_build(_key(), trt.build, trt.deserialize)
        e2 = cache.get_or_build(_key(), trt.build, trt.deserialize)
    assert e1 == e2 and trt.builds == 1
    assert cache.stored_path(_key()).is_file() and "blocker" not in str(cache.stored_path(_key()))
    assert sum("cannot be written" in r.getMessage() for r in caplog.records) == 1


def test_run_with_an_unwritable_cache_dir_goes_on(tmp_path):
    """Through the CLI (its own process, as a user runs it): ``--cache-dir`` that cannot be
    written is one warning line, and the demo runs on ONNX Runtime."""
    import subprocess
    import sys

    cache = Path("/proc/realtime-me-test") / tmp_path.name
    r = subprocess.run([sys.executable, "-m", "realtime_me.cli", "--demo", "--as-fast-as-possible", "--quiet",
                        "--backend", "onnxruntime", "--cache-dir", str(cache)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "model: medn on onnxruntime" in r.stderr
    said = [ln for ln in r.stderr.splitlines() if "cannot be written" in ln]
    assert len(said) == 1 and str(cache) in said[0], r.stderr


def test_the_pipeline_builds_its_engine_in_the_cache_dir_it_is_given(tmp_path):
    """``PipelineConfig.cache_dir`` (``--cache-dir`` of run and serve) reaches ``load_engine``."""
    from realtime_me.pipeline import Pipeline, PipelineConfig

    pipeline = Pipeline(PipelineConfig(backend="onnxruntime", cache_dir=str(tmp_path / "mine")))
    assert pipeline.classifier.engine.onnx_path.parent == tmp_path / "mine" / "onnx"
    assert list((tmp_path / "mine" / "onnx").glob("medn-*-fp32.onnx"))


# ------------------------------------------------------------------ plan cache


def _key(**over) -> PlanKey:
    base = dict(model="medn", onnx_sha256="a" * 64, tensorrt="10.3.0", gpu="Orin", compute_capability="8.7",
                precision="fp16", profile=(1, 1, 8), platform="Linux-aarch64", l4t="R36.3.0")
    return PlanKey(**{**base, **over})


class FakeTRT:
    """Stands in for the builder and runtime: a 'plan' is bytes, an 'engine' the bytes it came from."""

    def __init__(self):
        self.builds = 0

    def build(self) -> bytes:
        self.builds += 1
        return b"PLAN" + bytes(range(64)) * 4

    @staticmethod
    def deserialize(data: bytes):
        return ("engine", data) if data.startswith(b"PLAN") else None


def test_plan_cache_builds_once_then_loads(tmp_path):
    trt = FakeTRT()
    cache = PlanCache(tmp_path)
    e1 = cache.get_or_build(_key(), trt.build, trt.deserialize)
    e2 = cache.get_or_build(_key(), trt.build, trt.deserialize)
    assert trt.builds == 1 and e1 == e2
    meta = json.loads(cache.plan_path(_key()).with_suffix(".json").read_text())
    assert meta["key"]["tensorrt"] == "10.3.0" and meta["key"]["l4t"] == "R36.3.0"


@pytest.mark.parametrize("field,value", [("tensorrt", "10.4.0"), ("gpu", "RTX 4090"), ("compute_capability", "8.9"),
                                         ("precision", "fp32"), ("profile", (1, 4, 16)), ("onnx_sha256", "b" * 64),
                                         ("platform", "Linux-x86_64"), ("l4t", "R36.4.0")])
def test_any_key_change_rebuilds_and_says_what_changed(tmp_path, caplog, field, value):
    trt = FakeTRT()
    cache = PlanCache(tmp_path)
    cache.get_or_build(_key(), trt.build, trt.deserialize)
    new = _key(**{field: value})
    assert new.digest() != _key().digest()
    with caplog.at_level(logging.INFO):
        cache.get_or_build(new, trt.build, trt.deserialize)
    assert trt.builds == 2
    assert f"{field}:" in caplog.text and "building" in caplog.text


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage_sidecar", "no_sidecar"])
def test_a_corrupt_plan_is_rebuilt_not_used(tmp_path, caplog, damage):
    trt = FakeTRT()
    cache = PlanCache(tmp_path)
    good = cache.get_or_build(_key(), trt.build, trt.deserialize)
    path = cache.plan_path(_key())
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[:10])
    elif damage == "flip":
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    elif damage == "garbage_sidecar":
        path.with_suffix(".json").write_text("{not json")
    else:
        path.with_suffix(".json").unlink()
    with caplog.at_level(logging.INFO):
        again = cache.get_or_build(_key(), trt.build, trt.deserialize)
    assert trt.builds == 2 and again == good
    assert "; rebuilding" in caplog.text, caplog.text   # said so, not taken for a first build
    assert path.read_bytes() == data  # repaired


def test_a_plan_the_runtime_refuses_is_rebuilt_once(tmp_path, caplog):
    cache = PlanCache(tmp_path)
    trt = FakeTRT()
    cache.get_or_build(_key(), trt.build, trt.deserialize)
    refusals = iter([None])  # the installed TensorRT refuses the cached plan once (null engine)

    def picky(data):
        return next(refusals, None) if trt.builds == 1 else FakeTRT.deserialize(data)

    with caplog.at_level(logging.WARNING):
        engine = cache.get_or_build(_key(), trt.build, picky)
    assert engine is not None and trt.builds == 2 and "null engine" in caplog.text
    with pytest.raises(RuntimeError, match="could not deserialize"):
        PlanCache(tmp_path / "x").get_or_build(_key(), trt.build, lambda d: None)


def test_l4t_release_parsing(tmp_path):
    f = tmp_path / "nv_tegra_release"
    f.write_text("# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64, DATE: Mon May 6 2024\n")
    assert cache_mod.l4t_release(f) == "R36.3.0"
    assert cache_mod.l4t_release(tmp_path / "missing") is None


def test_load_or_build_calls_the_builder_once_with_the_model_profile(built_weights, tmp_path, monkeypatch):
    """The real key/ONNX/cache path, with only the GPU build replaced."""
    spec, model = load_spec(built_weights)
    calls = []

    def fake_build_plan(onnx_bytes, input_shapes, profile, workspace_mb, timing_cache):
        m = onnx.load_from_string(onnx_bytes)
        trt_lint.assert_trt_compatible(m)
        calls.append((input_shapes, profile, workspace_mb, timing_cache))
        return b"PLAN" + onnx_bytes[:32]

    monkeypatch.setattr(tensorrt_engine, "build_plan", fake_build_plan)
    env = tensorrt_engine.TrtEnv("10.3.0", "Orin", "8.7", "Linux-aarch64", "R36.3.0")
    cached_onnx(spec, tmp_path, "fp16", model=model)
    eng, key = tensorrt_engine.load_or_build(spec, tmp_path, "fp16", env, FakeTRT.deserialize)
    assert eng[0] == "engine" and len(calls) == 1
    shapes, profile, workspace, timing = calls[0]
    assert shapes == {"flow": (3, 28, 28), "apex": (1, 56, 56)} and profile == (1, 1, 8)
    assert timing.parent == tmp_path and "Orin" in timing.name
    assert key.precision == "fp16" and key.tensorrt == "10.3.0" and key.l4t == "R36.3.0"
    tensorrt_engine.load_or_build(spec, tmp_path, "fp16", env, FakeTRT.deserialize)
    assert len(calls) == 1  # cached
    env11 = tensorrt_engine.TrtEnv("11.0.0", "Orin", "8.7", "Linux-aarch64", "R36.3.0")
    tensorrt_engine.load_or_build(spec, tmp_path, "fp16", env11, FakeTRT.deserialize)
    assert len(calls) == 2  # new TensorRT: new plan


def test_load_or_build_refuses_a_graph_that_fails_the_lint(tmp_path, monkeypatch):
    bad = tmp_path / "bad.onnx"
    onnx.save(_bad_graph(), str(bad))
    monkeypatch.setattr(tensorrt_engine, "build_plan", lambda *a: pytest.fail("must not reach the builder"))
    spec = ModelSpec("bad", {"x": (16,)}, {"v1": (4,)}, ("a",), (), "0" * 64, tmp_path)
    env = tensorrt_engine.TrtEnv("10.3.0", "Orin", "8.7", "Linux-aarch64", None)
    with pytest.raises(UserError, match="NonZero"):
        tensorrt_engine.load_or_build(spec, tmp_path, "fp32", env, FakeTRT.deserialize, onnx_path=bad)


# ------------------------------------------------------------------ Triton


def test_triton_repository_configs_parse_as_model_config(built_weights, tmp_path, cache_dir):
    from realtime_me.engines.triton_engine import write_model_repository

    spec, model = load_spec(built_weights)
    art = cached_onnx(spec, cache_dir, "fp32", model=model)
    models = write_model_repository(spec, art.path, tmp_path / "repo")
    assert set(models) == {"medn_onnx", "medn_trt"}
    assert (models["medn_onnx"] / "1" / "model.onnx").read_bytes() == art.path.read_bytes()
    assert "trtexec --onnx=../medn_onnx/1/model.onnx" in (models["medn_trt"] / "build_plan.sh").read_text()
    mc = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                             reason="tritonclient not installed (pip install '.[triton]'); cannot parse config.pbtxt")
    from google.protobuf import text_format

    for name, platform in (("medn_onnx", "onnxruntime_onnx"), ("medn_trt", "tensorrt_plan")):
        cfg = text_format.Parse((models[name] / "config.pbtxt").read_text(), mc.ModelConfig())
        assert cfg.name == name and cfg.platform == platform and cfg.max_batch_size == 8
        assert cfg.HasField("dynamic_batching") and cfg.dynamic_batching.max_queue_delay_microseconds > 0
        assert [(i.name, list(i.dims), i.data_type) for i in cfg.input] == \
            [("flow", [3, 28, 28], mc.TYPE_FP32), ("apex", [1, 56, 56], mc.TYPE_FP32)]
        assert [(o.name, list(o.dims)) for o in cfg.output] == [("logits", [3]), ("au_logits", [11])]


def test_triton_engine_builds_real_requests(built_weights, cache_dir, real_batch, monkeypatch):
    """The gRPC client is replaced at its boundary by a fake server that decodes the request
    bytes and answers with ONNX Runtime: the round trip must equal a local run."""
    grpc = pytest.importorskip("tritonclient.grpc", reason="tritonclient not installed (pip install '.[triton]')")
    local = load_engine(built_weights, "onnxruntime", cache_dir=cache_dir)
    seen = []

    class Result:
        def __init__(self, outs):
            self.outs = outs

        def as_numpy(self, name):
            return self.outs[name]

    class FakeClient:
        def __init__(self, url, **kw):
            self.url = url

        def is_model_ready(self, name, version=""):
            return name == "medn_onnx"

        def infer(self, model_name, inputs, model_version="", outputs=None, client_timeout=None, **kw):
            feeds = {i.name(): np.frombuffer(i._get_content(), np.float32).reshape(i.shape()) for i in inputs}
            seen.append((model_name, [(i.name(), i.datatype(), i.shape()) for i in inputs], [o.name() for o in outputs]))
            return Result(local.run(feeds))

        def close(self):
            pass

    monkeypatch.setattr(grpc, "InferenceServerClient", FakeClient)
    engine = load_engine(built_weights, "triton", cache_dir=cache_dir, url="triton.local:8001")
    x = {k: v[:3] for k, v in real_batch.items()}
    got = engine.run(x)
    ref = local.run(x)
    for n in ref:
        np.testing.assert_array_equal(got[n], ref[n])
    model, ins, outs = seen[-1]
    assert model == "medn_onnx" and outs == ["logits", "au_logits"]
    assert ins == [("flow", "FP32", [3, 3, 28, 28]), ("apex", "FP32", [3, 1, 56, 56])]
    assert engine.device == "triton grpc://triton.local:8001/medn_onnx"
    with pytest.raises(UserError, match="no ready model"):
        load_engine(built_weights, "triton", cache_dir=cache_dir, model_name="other")


# ------------------------------------------------------------------ GPU (torch on CUDA, TensorRT)


@pytest.mark.gpu
@pytest.mark.parametrize("precision,tol", [("fp32", 5e-3), ("fp16", 5e-2)])
def test_torch_on_cuda_matches_cpu(weights, real_batch, precision, tol):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device torch can see")
    engine = load_engine(weights, "torch", precision=precision)
    assert engine.device.startswith("cuda") and engine.precision == precision
    spec, model = load_spec(weights)
    got, ref = engine.run(real_batch), _ref(model, real_batch)
    for n in ref:
        np.testing.assert_allclose(got[n], ref[n], atol=tol, rtol=0)
    assert (got["logits"].argmax(1) == ref["logits"].argmax(1)).all()


@pytest.fixture(scope="module")
def trt_ready():
    why = tensorrt_engine.tensorrt_unavailable()
    if why:
        if os.environ.get("REQUIRE_TRT") == "1":
            pytest.fail(f"REQUIRE_TRT=1 but TensorRT cannot build here: {why}")
        pytest.skip(f"needs a CUDA device that can create a TensorRT builder: {why}")


@pytest.mark.gpu
@pytest.mark.parametrize("precision,tol", [("fp32", 5e-3), ("fp16", 5e-2)])
def test_tensorrt_matches_torch(trt_ready, weights, tmp_path, real_batch, precision, tol):
    engine = load_engine(weights, "tensorrt", precision=precision, cache_dir=tmp_path)
    spec, model = load_spec(weights)
    for b in (1, 8):
        x = {k: v[:b] for k, v in real_batch.items()}
        got, ref = engine.run(x), _ref(model, x)
        for n in ref:
            np.testing.assert_allclose(got[n], ref[n], atol=tol, rtol=0)
        assert (got["logits"].argmax(1) == ref["logits"].argmax(1)).all()
    engine.enqueue(x, graph=True)  # the same launch replayed as a CUDA graph
    np.testing.assert_allclose(engine.fetch(8)["logits"], got["logits"], atol=1e-5)
    assert Path(engine.details["plan"]).is_file()
    engine.close()


@pytest.mark.gpu
def test_tensorrt_plan_is_reused_and_a_corrupt_one_rebuilt(trt_ready, built_weights, tmp_path, monkeypatch, caplog):
    first = load_engine(built_weights, "tensorrt", cache_dir=tmp_path)
    plan = Path(first.details["plan"])
    first.close()
    real_build = tensorrt_engine.build_plan
    monkeypatch.setattr(tensorrt_engine, "build_plan", lambda *a, **k: pytest.fail("plan should come from the cache"))
    load_engine(built_weights, "tensorrt", cache_dir=tmp_path).close()
    plan.write_bytes(plan.read_bytes()[:100])
    monkeypatch.setattr(tensorrt_engine, "build_plan", real_build)
    with caplog.at_level(logging.WARNING):
        again = load_engine(built_weights, "tensorrt", cache_dir=tmp_path)
    assert "corrupt" in caplog.text and plan.stat().st_size > 100
    again.close()
