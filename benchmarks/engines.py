"""Inference engine latency and throughput, per available backend, at batch 1 and 8.

    .venv/bin/python -m benchmarks.engines                       # all backends that run here
    .venv/bin/python -m benchmarks.engines --backends tensorrt --cuda-graphs   # on a GPU / Jetson

Latency is wall time of ``engine.run`` (what the pipeline waits for: copies in,
inference, copies out) after a warm-up, as p50/p99 over ``--iters`` runs;
throughput is samples per second at that batch. On TensorRT the GPU time of one
launch (host-to-device copy + inference) is also taken with CUDA events, with and
without a CUDA graph. The device, versions and, on a Jetson, the power mode
(``nvpmodel -q``) and L4T release are recorded with the numbers.

Targets checked here (MEDN, this machine): ONNX Runtime CPU batch-1 p50 <= 2 ms,
and ONNX Runtime at least 2x faster than torch eager at batch 1.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]

from realtime_me.engines import load_engine, probe

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "engines.json"
SHIPPED = ROOT / "models" / "medn"


def _weights(arg: str | None) -> tuple[Path, str]:
    """The weights to time; without shipped weights, an untrained MEDN of the same shape
    (speed does not depend on the values)."""
    if arg:
        return Path(arg), "given"
    if (SHIPPED / "model.safetensors").is_file():
        return SHIPPED, "shipped models/medn"
    import torch

    from realtime_me.models import create_model
    from realtime_me.weights import ModelCard, save_model

    torch.manual_seed(0)
    m = create_model("medn").eval()
    out = Path(tempfile.mkdtemp()) / "medn"
    save_model(m, ModelCard.for_model(m), out)
    return out, "untrained MEDN, default config (no shipped weights yet)"


def _machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            # other work on the machine inflates the tails: recorded so numbers can be judged
            "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()]}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime
    import torch

    info["torch"], info["onnxruntime"] = torch.__version__, onnxruntime.__version__
    info["torch_threads"] = torch.get_num_threads()
    info["cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    from realtime_me.engines.cache import l4t_release

    info["l4t"] = l4t_release()
    if shutil.which("nvpmodel"):
        try:
            info["nvpmodel"] = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            info["nvpmodel"] = f"unavailable ({e})"
    a = probe()
    info["backends_unavailable"] = {k: v for k, v in (("tensorrt", a.tensorrt), ("onnxruntime_cuda", a.onnxruntime_cuda)) if v}
    return info


def _percentiles(ms: list[float], batch: int) -> dict:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 4), "p99_ms": round(float(np.percentile(a, 99)), 4),
            "mean_ms": round(float(a.mean()), 4), "throughput_per_s": round(batch * 1000 / float(a.mean()), 1),
            "runs": len(a)}


def time_run(engine, batch: int, iters: int, warmup: int) -> dict:
    x = engine.spec.example_batch(batch, seed=batch)
    for _ in range(warmup):
        engine.run(x)
    ms = []
    for _ in range(iters):
        t = time.perf_counter()
        engine.run(x)
        ms.append((time.perf_counter() - t) * 1e3)
    return _percentiles(ms, batch)


def time_tensorrt_gpu(engine, batch: int, iters: int, warmup: int, graph: bool) -> dict:
    """CUDA-event time of one launch (H2D copy + inference) on the engine's stream."""
    from realtime_me.engines.tensorrt_engine import _check, _cudart

    cudart = _cudart()
    start, end = _check(cudart.cudaEventCreate()), _check(cudart.cudaEventCreate())
    x = engine.spec.example_batch(batch, seed=batch)
    for _ in range(warmup):
        engine.enqueue(x, graph=graph)
        engine.fetch(batch)
    ms = []
    for _ in range(iters):
        _check(cudart.cudaEventRecord(start, engine.stream))
        engine.enqueue(x, graph=graph)
        _check(cudart.cudaEventRecord(end, engine.stream))
        engine.fetch(batch)
        ms.append(float(_check(cudart.cudaEventElapsedTime(start, end))))
    cudart.cudaEventDestroy(start)
    cudart.cudaEventDestroy(end)
    return _percentiles(ms, batch)


def configurations(requested: list[str] | None, precision: str) -> list[tuple[str, str, dict]]:
    """(label, backend, options) to time; by default everything that can run here."""
    a = probe()
    confs = [("torch", "torch", {}), ("torch-1thread", "torch", {"threads": 1})]
    if a.onnxruntime is None:
        confs += [("onnxruntime-cpu-1thread", "onnxruntime", {"providers": ("cpu",), "intra_op_threads": 1}),
                  ("onnxruntime-cpu-2threads", "onnxruntime", {"providers": ("cpu",), "intra_op_threads": 2})]
    if a.onnxruntime_cuda is None:
        confs.append(("onnxruntime-cuda", "onnxruntime", {"providers": ("cuda",)}))
    if a.tensorrt is None:
        confs.append(("tensorrt", "tensorrt", {}))
    if precision == "fp16":  # a GPU precision: what runs on CUDA
        import torch

        confs = [c for c in confs if c[1] == "tensorrt" or c[0] == "onnxruntime-cuda"
                 or (c[0] == "torch" and torch.cuda.is_available())]
    if requested:
        confs = [c for c in confs if c[1] in requested or c[0] in requested]
    return confs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="weights folder (default: models/medn, or an untrained MEDN)")
    p.add_argument("--backends", nargs="*", help="backends or labels to time (default: all available)")
    p.add_argument("--batches", type=int, nargs="*", default=[1, 8])
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--cuda-graphs", action="store_true", help="TensorRT: also time launches replayed as CUDA graphs")
    p.add_argument("--cache-dir", help="engine cache (default: a temporary folder, so builds are timed fresh)")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    weights, weights_note = _weights(args.weights)
    cache = Path(args.cache_dir) if args.cache_dir else Path(tempfile.mkdtemp(prefix="rtme-engines-"))
    results = {"machine": _machine(), "weights": weights_note, "precision": args.precision,
               "iters": args.iters, "warmup": args.warmup, "runs": []}
    confs = configurations(args.backends, args.precision)
    import torch

    torch_threads = torch.get_num_threads()
    bar = tqdm(total=len(confs) * len(args.batches), desc="engines", unit="case")
    for label, backend, opts in confs:
        t = time.perf_counter()
        engine = load_engine(weights, backend, precision=args.precision, cache_dir=cache, warmup=False, **opts)
        load_s = time.perf_counter() - t
        for batch in args.batches:
            row = {"engine": label, "backend": engine.name, "device": engine.device, "precision": engine.precision,
                   "batch": batch, "load_s": round(load_s, 3), **time_run(engine, batch, args.iters, args.warmup)}
            if "providers" in engine.details:
                row["providers"] = engine.details["providers"]
            if backend == "tensorrt":
                row["tensorrt"] = engine.details.get("tensorrt")
                row["gpu_launch"] = time_tensorrt_gpu(engine, batch, args.iters, args.warmup, graph=False)
                if args.cuda_graphs:
                    row["gpu_launch_cuda_graph"] = time_tensorrt_gpu(engine, batch, args.iters, args.warmup, graph=True)
            results["runs"].append(row)
            bar.set_postfix_str(f"{label} b{batch} p50 {row['p50_ms']:.3f} ms")
            bar.update()
        engine.close()
        if backend == "torch":
            torch.set_num_threads(torch_threads)  # undo a per-config thread count
    bar.close()
    results["targets"] = _targets(results["runs"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for r in results["runs"]:
        print(f"{r['engine']:<26} batch {r['batch']}: p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  "
              f"{r['throughput_per_s']:.0f}/s")
    for name, t in results["targets"].items():
        print(f"target {name}: {'met' if t['met'] else 'NOT met'} ({t['value']})")
    print(f"wrote {out}")
    return 0


def _targets(runs: list[dict]) -> dict:
    def p50(engine, batch=1):
        return next((r["p50_ms"] for r in runs if r["engine"] == engine and r["batch"] == batch), None)

    ort = min((v for v in (p50("onnxruntime-cpu-1thread"), p50("onnxruntime-cpu-2threads")) if v), default=None)
    torch_ms = min((v for v in (p50("torch"), p50("torch-1thread")) if v), default=None)
    out = {}
    if ort is not None:
        out["ort_cpu_batch1_p50_le_2ms"] = {"met": ort <= 2.0, "value": f"{ort:.3f} ms"}
        if torch_ms is not None:
            out["ort_2x_faster_than_torch_batch1"] = {"met": torch_ms / ort >= 2.0, "value": f"{torch_ms / ort:.2f}x"}
    return out


if __name__ == "__main__":
    sys.exit(main())
