#!/usr/bin/env bash
# GPU checks in one call (the device tool; sized for 8 minutes on one H100):
#   1. real-size latency, throughput, peak memory and time split of think vs nothink vs latent, random
#      weights, forced lengths (`lrt-bench bench --real-size`): Qwen3-1.7B at batch 1 and 16 with think
#      reasoning exactly 3500 tokens, then DeepSeek-R1-Distill-Qwen-1.5B at batch 1 with 1000; every
#      answer exactly 64 tokens, G_φ of Qwen3-Embedding-0.6B size with 256 latents, bf16;
#   2. GRPO at real shapes through the trainer's own step (bench/grpo_gpu.py): 5 latent steps, and an
#      explicit-policy (ShorterBetter) step with gradient checkpointing off and on.
# One deadline for the whole script (LRT_GPU_DEADLINE_S, default 470 s): every step runs under `timeout`
# with its share of what is left, so the script ends in time even when a step is slow. The benchmark
# writes its JSON and markdown after every cell (nothink, latent, then think per batch size), so a step
# cut short keeps the cells it finished ("complete": false). All output is teed to $OUT/gpu.log; JSON and
# markdown go to $OUT, or results/bench when OUT is unset. Exit status: 0 when every step that ran passed.
#
# Expected durations on an H100 (eager PyTorch, one decode step ~20-30 ms at these sizes): ~3.6k steps
# per Qwen3 think cell, ~1.5 min each (two: batch 1 and 16); GRPO ~2 min; R1-distill ~1 min; the
# nothink/latent cells take seconds, each model build ~20-30 s. Slots: 230 + 150 + 150, and the R1-distill
# cell gets what is left (it is skipped when under 30 s remain).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-results/bench}
mkdir -p "$out"
exec > >(tee -a "$out/gpu.log") 2>&1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
start=$(date +%s)
deadline=$((start + ${LRT_GPU_DEADLINE_S:-470}))
status=0

left() { echo $((deadline - $(date +%s))); }

# step NAME MAX_SECONDS CMD...: run CMD under min(MAX_SECONDS, time left), report its exit status
step() {
    local name=$1 max=$2
    shift 2
    local t
    t=$(left)
    ((t > max)) && t=$max
    if ((t < 30)); then
        echo "== $name: SKIPPED, only $(left) s left before the deadline"
        status=1
        return
    fi
    echo "== $name (limit ${t} s, $(( $(date +%s) - start )) s into the script): $*"
    local t0 rc
    t0=$(date +%s)
    timeout --signal=INT --kill-after=15 "$t" "$@"
    rc=$?
    if ((rc == 124 || rc == 130 || rc == 137)); then
        echo "== $name: CUT at the time limit after $(( $(date +%s) - t0 )) s (partial results kept)"
        status=1
    elif ((rc != 0)); then
        echo "== $name: FAILED with exit status $rc after $(( $(date +%s) - t0 )) s"
        status=1
    else
        echo "== $name: ok in $(( $(date +%s) - t0 )) s"
    fi
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
    | tee -a "$out/gpu.txt"

bench=(python3 -m lrt_bench.bench --think-tokens 3500 --answer-tokens 64 --latents 256 --device cuda --out-dir "$out")

# 1a. The paper's anchor (Table 7: Qwen3-1.7B), batch 1 and 16.
step "real size qwen3-1.7b" 230 "${bench[@]}" --real-size qwen3-1.7b --batch-sizes 1,16

# 2. >>> GRPO CHECK (trainers at scale): the trainer's own set-up and step (trainers.grpo.setup /
#    grpo_step) at real shapes, writing $OUT/grpo_gpu_<policy>_<size>.json after every step (a cut run
#    keeps the steps it finished). Latent: Qwen3-1.7B base, Qwen3-Embedding-0.6B-size G_φ, K = 8, 256
#    latents, 1,024-token rollouts generated in chunks of 8, 5 steps. Explicit (ShorterBetter's policy):
#    R1-Distill-Qwen-1.5B trained in fp32 master weights under bf16 autocast, 2,048-token rollouts, two
#    steps with gradient checkpointing off and two with it on (peak memory of each).
step "grpo latent 5 steps" 150 env OUT="$out" python3 bench/grpo_gpu.py --policy latent --steps 5 \
    --completion-tokens 1024 --generation-batch-size 8
step "grpo explicit, checkpointing off/on" 150 env OUT="$out" python3 bench/grpo_gpu.py --policy explicit \
    --steps 2 --completion-tokens 2048 --gradient-checkpointing both
# <<< GRPO CHECK

# 1b. The R1-distill base, batch 1, with whatever time is left: 1000 reasoning tokens here (the later
#     option wins), so that its think cell fits in what the first two steps leave.
step "real size r1-distill-qwen-1.5b" 200 "${bench[@]}" --real-size r1-distill-qwen-1.5b --batch-sizes 1 \
    --think-tokens 1000

echo "== done in $(( $(date +%s) - start )) s; files in $out:"
ls -l "$out"
exit $status
