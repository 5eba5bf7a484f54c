"""Real-size latency, throughput and memory: think vs nothink vs latent, random weights, forced lengths.

    python bench/real_size.py --model qwen3-1.7b [--think-tokens 3500] [--answer-tokens 64] \
        [--latents 256] [--batch-sizes 1,16] [--layers N] ...

A thin wrapper over `lrt-bench bench --real-size MODEL` (lrt_bench/tools/bench.py, same arguments; `--model` is
`--real-size`): writes results/bench/real_<model>.json and .md unless --out-dir / --name say otherwise.
Builds the base and a Qwen3-Embedding-0.6B-size G_φ from configs (bf16 on GPU). Random weights decide
nothing, so think mode reasons exactly --think-tokens tokens and every answer runs exactly --answer-tokens.
Paper anchor (Table 7, A100, Qwen3-1.7B, 64 MATH-500 problems): thinking 71.09 s, non-thinking
14.62 s, LRT 11.79 s. Targets: latent >= 20x faster than thinking at batch 1, <= 1.10x non-thinking.
"""

import sys

from lrt_bench.tools.bench import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    argv = ["--real-size" if a == "--model" else a.replace("--model=", "--real-size=", 1) for a in argv]
    if not any(a == "--real-size" or a.startswith("--real-size=") for a in argv):
        argv = ["--real-size", "qwen3-1.7b", *argv]
    sys.exit(main(argv))
