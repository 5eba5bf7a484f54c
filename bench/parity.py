"""`--model lrt` (mode=think) against lm-eval's stock `--model hf` on lrt_tiny: same results, wall time.

    python bench/parity.py [--world DIR] [--limit 64] [--out results/bench/parity_tiny.json]

Both runs use the same base, task, documents and batch size, one after the other in this process.
`hf` gets `--apply_chat_template` (our backend renders the template itself); the tiny base writes
`<think>\\n` itself under hf, so greedy continuations are identical. Two settings:
  greedy  : the task's 4 repeats at temperature 0. `lrt` generates each prompt once and copies it;
            `hf` generates all 4.
  sampled : the task's sampling (temperature 0.6, top_p 0.95): both generate all 4 samples.
Target (lm-eval issue): lrt / hf wall time <= 1.05.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from lrt_bench.bench import environment, write
from lrt_bench.cli import default_tiny_dir


def timed(model: str, model_args: str, limit: int, gen_kwargs: dict, batch_size: int, **kw) -> tuple[float, dict]:
    import lm_eval

    t0 = time.perf_counter()
    res = lm_eval.simple_evaluate(model=model, model_args=model_args, tasks=["lrt_tiny"], limit=limit,
                                  gen_kwargs=gen_kwargs, batch_size=batch_size, device="cpu",
                                  log_samples=True, bootstrap_iters=0, **kw)
    return time.perf_counter() - t0, res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", default=None)
    p.add_argument("--limit", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-gen-toks", type=int, default=200)
    p.add_argument("--out", default="results/bench/parity_tiny.json")
    args = p.parse_args()
    world = Path(args.world) if args.world else default_tiny_dir()
    os.environ["LRT_TINY_DIR"] = str(world)
    base = world / "base"
    settings = {
        "greedy": {"do_sample": False, "temperature": 0, "max_gen_toks": args.max_gen_toks},
        "sampled": {"do_sample": True, "temperature": 0.6, "top_p": 0.95, "max_gen_toks": args.max_gen_toks},
    }
    rows = {}
    for name, gk in settings.items():
        t_hf, hf = timed("hf", f"pretrained={base}", args.limit, gk, args.batch_size, apply_chat_template=True)
        t_lrt, lrt = timed("lrt", f"pretrained={base},mode=think", args.limit, gk, args.batch_size)
        same = None
        if name == "greedy":
            a = {s["doc_id"]: s["pass@1"] for s in lrt["samples"]["lrt_tiny"]}
            b = {s["doc_id"]: s["pass@1"] for s in hf["samples"]["lrt_tiny"]}
            same = a == b
        rows[name] = {
            "hf_seconds": t_hf, "lrt_seconds": t_lrt, "lrt_over_hf": t_lrt / t_hf,
            "hf_pass@1": hf["results"]["lrt_tiny"]["pass@1,none"],
            "lrt_pass@1": lrt["results"]["lrt_tiny"]["pass@1,none"],
            "lrt_reasoning_tokens": lrt["results"]["lrt_tiny"]["reasoning_tokens,none"],
            "per_document_results_equal": same,
        }
        print(f"{name:8s} hf {t_hf:7.1f} s   lrt {t_lrt:7.1f} s   lrt/hf {t_lrt / t_hf:5.2f}x   "
              f"pass@1 hf {rows[name]['hf_pass@1']:.3f} lrt {rows[name]['lrt_pass@1']:.3f}"
              + ("" if same is None else f"   per-doc equal: {same}"), flush=True)
    write(args.out, {"env": environment(), "world": str(world), "limit": args.limit,
                     "batch_size": args.batch_size, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
