#!/usr/bin/env bash
# GPU checks in one call (see the device tool): real-size latency, throughput and memory of
# think vs nothink vs latent, random weights, forced lengths. Writes JSON under $OUT (or results/bench).
# The Trainers issue's 5-step GRPO check joins this script when the trainers land.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-results/bench}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$out/gpu.txt"
python3 bench/real_size.py --model qwen3-1.7b --batch-sizes 1,16 --out "$out/real_size_qwen3-1.7b.json"
python3 bench/real_size.py --model r1-distill-qwen-1.5b --batch-sizes 1 --out "$out/real_size_r1-distill-qwen-1.5b.json"
