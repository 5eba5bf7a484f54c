"""Proof that training works on the tiny world: latent accuracy at each stage, through the `lrt` backend.

    python bench/tiny_proof.py [--train runs/demo/train] [--out results/tiny/proof] [--limit N]

Evaluates on `lrt_tiny` (the tiny eval split) at the task's budget of 512 tokens, greedy
(`do_sample=false`) and sampled (the task's temperature 0.6, top-p 0.95, 4 samples: pass@1 is their
mean), for NoThinking and LRT with the untrained, SFT and SFT+GRPO reasoners found under --train (the
layout `lrt-bench demo` writes: untrained/, sft/, grpo/). Prints the table and writes proof.json plus
every lm-eval results file under --out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", default="runs/demo/train")
    p.add_argument("--out", default="results/tiny/proof")
    p.add_argument("--world", default=None, help="tiny world (default $LRT_TINY_DIR or the user cache)")
    p.add_argument("--limit", type=int, default=None)
    args = p.parse_args()

    import os

    from rich.console import Console
    from rich.table import Table

    from lrt_bench.eval.data import tiny_dir
    from lrt_bench.eval.evaluate import metric, run_lm_eval
    from lrt_bench.io import atomic_write_json

    world = Path(args.world).expanduser() if args.world else tiny_dir()
    os.environ["LRT_TINY_DIR"] = str(world)
    train, out = Path(args.train), Path(args.out)
    base = str(world / "base")
    methods = {
        "NoThinking": {"pretrained": base, "mode": "nothink"},
        "LRT untrained": {"pretrained": base, "mode": "latent", "reasoner": train / "untrained" / "reasoner"},
        "LRT after SFT": {"pretrained": base, "mode": "latent", "reasoner": train / "sft" / "reasoner"},
        "LRT after SFT+GRPO": {"pretrained": base, "mode": "latent", "reasoner": train / "grpo" / "reasoner"},
    }
    rows = []
    for name, margs in methods.items():
        row = {"method": name, "model_args": {k: str(v) for k, v in margs.items()}}
        for decoding, gen in (("greedy", {"do_sample": "false", "temperature": 0}), ("sampled", {})):
            res = run_lm_eval(margs, ["lrt_tiny"], out / decoding / name.replace(" ", "_").replace("+", "-"),
                              gen_kwargs=gen or None, limit=args.limit, batch_size=64)
            row[f"pass@1 {decoding}"] = metric(res, "lrt_tiny", "pass@1")
            if decoding == "sampled":
                row["pass@4 sampled"] = metric(res, "lrt_tiny", "pass@4")
        rows.append(row)
    atomic_write_json(out / "proof.json", {"world": str(world), "task": "lrt_tiny", "budget": 512, "rows": rows})
    table = Table(title="tiny world: latent accuracy by training stage (lrt_tiny, budget 512)")
    for col in ("method", "pass@1 greedy", "pass@1 sampled", "pass@4 sampled"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in rows:
        table.add_row(r["method"], *(f"{100 * r[c]:.1f}%" for c in ("pass@1 greedy", "pass@1 sampled", "pass@4 sampled")))
    Console().print(table)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
