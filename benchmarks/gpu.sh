#!/usr/bin/env bash
# The GPU checks in one go, on a machine with an NVIDIA GPU or a Jetson and the project installed
# with its TensorRT extra (pip install -e ".[dev,tensorrt]"):
#     bash benchmarks/gpu.sh TAG     # TAG names the machine, e.g. h200, orin-nx
# writes benchmarks/results/engines_TAG.json, engines_TAG_fp16.json and pipeline_TAG.json.
# REQUIRE_TRT=1 turns the TensorRT tests' skips into failures.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:?usage: bash benchmarks/gpu.sh TAG}
py=${PYTHON:-python}
out=benchmarks/results
"$py" -m pytest -q -rs -m gpu tests/test_engines.py
"$py" -m benchmarks.engines --cuda-graphs --out "$out/engines_$tag.json"
"$py" -m benchmarks.engines --precision fp16 --cuda-graphs --out "$out/engines_${tag}_fp16.json"
"$py" -m benchmarks.pipeline --quick --out "$out/pipeline_$tag.json"
