#!/usr/bin/env bash
# GPU checks, in parts (the device tool; one call runs at most 10 minutes, a session gets ~15 minutes):
#
#   bench/gpu.sh [PART ...]        parts, in the order given (default: decode think grpo r1)
#
#   decode  ours vs HF `generate`, side by side (bench/decode.py): Qwen3-1.7B shapes, random weights, bf16,
#           batch 1 and 32, 1,024 forced think tokens; ours eager (static cache), ours compiled (CUDA
#           graphs), HF eager, HF static cache + torch.compile; tokens/s, ms/step, per-step cost at 1/4
#           length, the bandwidth bound, and the projected wall time of MATH-500 x 4 at budget 4,096.
#           Estimated 4-6 min (two compilations per batch size, ~1 min each).
#   think   real-size latency, throughput, peak memory and time split of think vs nothink vs latent
#           (`lrt-bench bench --real-size`): Qwen3-1.7B at batch 1 and 16, think reasoning exactly 3,500
#           tokens, every answer 64, G_φ of Qwen3-Embedding-0.6B size with 256 latents. ~3 min eager.
#   grpo    GRPO at real shapes through the trainer's own step (bench/grpo_gpu.py): 5 latent steps, and an
#           explicit-policy (ShorterBetter) step with gradient checkpointing off and on. ~3 min.
#   r1      DeepSeek-R1-Distill-Qwen-1.5B at batch 1 with 1,000 think tokens, with what time is left.
#
# Suggested split for a 15-minute session: `bench/gpu.sh decode think` (LRT_GPU_DEADLINE_S=540), then
# `bench/gpu.sh grpo r1` if time is left.
# One deadline for the whole call (LRT_GPU_DEADLINE_S, default 470 s): every step runs under `timeout`
# with its share of what is left, so the script ends in time even when a step is slow. The benchmarks
# write their JSON after every cell or batch size, so a step cut short keeps what it finished
# ("complete": false). All output is teed to $OUT/gpu.log; JSON and markdown go to $OUT, or results/bench
# when OUT is unset. Exit status: 0 when every step that ran passed.
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

bench=(python3 -m lrt_bench.tools.bench --think-tokens 3500 --answer-tokens 64 --latents 256 --device cuda --out-dir "$out")
parts=("$@")
((${#parts[@]})) || parts=(decode think grpo r1)

for part in "${parts[@]}"; do
    case $part in
    decode)
        step "decode: ours vs HF generate" 330 python3 bench/decode.py --size qwen3-1.7b --device cuda \
            --dtype bfloat16 --batch-sizes 1,32 --think-tokens 1024 --rounds 2 \
            --contenders ours-static,ours-compiled,hf-eager,hf-compiled --out "$out/decode_qwen3-1.7b.json"
        ;;
    think)  # the paper's anchor (Table 7: Qwen3-1.7B), batch 1 and 16
        step "real size qwen3-1.7b" 230 "${bench[@]}" --real-size qwen3-1.7b --batch-sizes 1,16
        ;;
    grpo)  # the trainer's own set-up and step (trainers.grpo.setup / grpo_step) at real shapes, writing
        #   $OUT/grpo_gpu_<policy>_<size>.json after every step. Latent: Qwen3-1.7B base, Qwen3-Embedding-
        #   0.6B-size G_φ, K = 8, 256 latents, 1,024-token rollouts generated in chunks of 8, 5 steps.
        #   Explicit (ShorterBetter's policy): R1-Distill-Qwen-1.5B in fp32 master weights under bf16
        #   autocast, 2,048-token rollouts, two steps with gradient checkpointing off and two with it on.
        step "grpo latent 5 steps" 150 env OUT="$out" python3 bench/grpo_gpu.py --policy latent --steps 5 \
            --completion-tokens 1024 --generation-batch-size 8
        step "grpo explicit, checkpointing off/on" 150 env OUT="$out" python3 bench/grpo_gpu.py --policy explicit \
            --steps 2 --completion-tokens 2048 --gradient-checkpointing both
        ;;
    r1)  # the R1-distill base, batch 1, 1000 reasoning tokens (the later option wins)
        step "real size r1-distill-qwen-1.5b" 200 "${bench[@]}" --real-size r1-distill-qwen-1.5b --batch-sizes 1 \
            --think-tokens 1000
        ;;
    *)
        echo "== unknown part $part: use decode, think, grpo or r1"
        status=1
        ;;
    esac
done

echo "== done in $(( $(date +%s) - start )) s; files in $out:"
ls -l "$out"
exit $status
