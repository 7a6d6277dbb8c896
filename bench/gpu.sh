#!/usr/bin/env bash
# The GPU benchmarks and GPU tests in one go, for a session lent a GPU (each step sized for the device's 10-minute
# limit per command; not yet run: no GPU has been lent to this project so far).
# Run from the repository root with the package installed; results land in bench/results/cuda-*.json.
# The reference loop runs with batch 400 (the size the paper's commands use for its GPU runs is not recorded in its logs;
# 400 keeps ResNet-50 within memory everywhere); randsmooth uses larger batches, which is part of what it does.
set -euo pipefail
PY=${PY:-python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY -m pytest -q tests/test_fast.py -k cuda
$PY bench/certify_speed.py --device cuda --dataset cifar10 --random-weights --inputs 5 --batch 400 --fast-batch 4000 \
    --variants float32 float32+channels_last bf16+channels_last bf16+channels_last+cuda_graphs --predict-inputs 1000 --profile
$PY bench/certify_speed.py --device cuda --dataset imagenet --random-weights --inputs 3 --batch 400 --fast-batch 1000 \
    --variants float32 float32+channels_last bf16+channels_last bf16+channels_last+cuda_graphs --predict-inputs 200 --profile
