"""`--model lrt` (mode=think) against lm-eval's stock `--model hf` on the tiny world: same results, wall time.

    python bench/parity.py [--world DIR] [--limit 64] [--batch-size 32] [--max-gen-toks 200] [--repeats 3] \
        [--out results/bench/parity_tiny.json]

(`lrt-bench bench --vs-hf` runs the same comparison beside the latency benchmark.)

Both backends run one after the other in this process with the same flags on the parity task
`lrt_tiny_parity` (bench/tasks/lrt_tiny_parity.yaml: `lrt_tiny` with the assistant turn opened by
`<think>\\n`, lm-eval's gen_prefix). The tiny tokenizer's chat template, like Qwen3's, does not write
`<think>` in the generation prompt, and the lrt backend's think mode appends `<think>\\n` itself
(docs/design.md §4.1); with the prefix, hf is given the very tokens lrt generates from. On the command line:

    lm_eval --model hf  --model_args pretrained=$LRT_TINY_DIR/base \\
        --include_path bench/tasks --tasks lrt_tiny_parity --apply_chat_template \\
        --gen_kwargs do_sample=false,temperature=0,max_gen_toks=200 --batch_size 32 --limit 64 --device cpu
    lm_eval --model lrt --model_args pretrained=$LRT_TINY_DIR/base,mode=think   (the same flags)

Two settings:
  greedy  : temperature 0 (gen_kwargs above). The task's 4 repeats are the same text: `lrt` generates each
            prompt once and copies it, `hf` generates all 4. Per-document results must be equal.
  sampled : temperature 0.6, top_p 0.95 (do_sample=true): both generate all 4 samples (lrt from one prefill
            per prompt); results differ by sampling only.
Timed: each backend's `generate_until` (the generation) and the whole `simple_evaluate` (model loading
included). Target: lrt / hf wall time <= 1.05 (the backend adds no overhead over `hf`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lrt_bench.eval.data import tiny_dir
from lrt_bench.tools.bench import _environment
from lrt_bench.tools.bench_parity import vs_hf
from lrt_bench.tools.bench_render import write


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", default=None, help="tiny world (default: $LRT_TINY_DIR or ~/.cache/lrt-bench/tiny)")
    p.add_argument("--limit", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-gen-toks", type=int, default=200)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=1, help="runs per backend, taking turns; the fastest counts")
    p.add_argument("--out", default="results/bench/parity_tiny.json")
    args = p.parse_args()
    world = Path(args.world).expanduser().resolve() if args.world else tiny_dir()
    if not (world / "world.json").is_file():
        print(f"lrt-bench: error: no tiny world at {world}: run `lrt-bench tiny build` or pass --world", file=sys.stderr)
        return 2
    res = vs_hf(world, limit=args.limit, batch_size=args.batch_size, max_gen_toks=args.max_gen_toks, device=args.device,
                 repeats=args.repeats)
    write(args.out, {"env": _environment(args.device), "world": str(world), **res})
    print(f"wrote {args.out}")
    greedy = res["settings"].get("greedy")
    return 0 if greedy is None or greedy["per_document_pass@1_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
