#!/usr/bin/env bash
# The prepared GPU run of issue 15 (one command; ~5 minutes on an H100). Writes everything to $OUT.
#   OUT=/tmp/gpu scripts/gpu_check.sh
# 1. bench_gpu.py: reference-equivalent vs parity vs fast for human3r-896-L and human3r-672-S (JSON);
# 2. the CUDA-only tests (TF32 switches, fast mode on the GPU vs fp32 on the CPU, the pinned frame copy,
#    CUDA graphs vs eager, device preprocessing) and the pipeline tests;
# 3. bench_engine.py end to end on a generated 1920-px clip (tiny checkpoint: the host pipeline's ceiling).
set -u
OUT=${OUT:-/tmp/human3r-gpu}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
export PYTHONPATH=$PWD HUMAN3R_SHARED=${HUMAN3R_SHARED:-$PWD/../shared}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
timeout 240 "$PY" scripts/bench_gpu.py --json "$OUT/bench_gpu.json" 2>&1 | tee "$OUT/bench_gpu.txt"
timeout 180 "$PY" -m pytest tests/engine/test_fast_mode.py tests/engine/test_host_copy.py tests/engine/test_graphs.py \
    tests/video/test_device_preprocess.py tests/engine/test_device_input.py -k cuda -q -rs -p no:cacheprovider 2>&1 | tee "$OUT/cuda_tests.txt"
timeout 150 "$PY" scripts/bench_engine.py --device cuda --clip-width 1920 --size 512 --frames 60 --reps 3 \
    --skip-memory 2>&1 | tee "$OUT/bench_engine.txt"
