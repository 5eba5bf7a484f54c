"""Sweep G_φ's shape on the tiny world: fusion (concat, hadamard) x latents (4, 8, 16, 32), SFT only.

    python bench/tiny_sweep.py [--steps 500] [--out results/tiny_sweep.json] [--runs runs/sweep]

Each cell is one short SFT run of trainers/recipes/tiny/sft.yaml with `fusion` and `num_latents`
overridden, then greedy latent-mode accuracy on the whole eval split through `LatentLM.generate` (the
path the `lrt` backend uses). Same seed, data order and step count for every cell, so the cells differ
only in shape. Cells run one after the other; the JSON is rewritten after each, so a killed sweep
keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lrt_bench.io import atomic_write_json, read_jsonl

RECIPE = Path(__file__).resolve().parents[1] / "trainers" / "recipes" / "tiny" / "sft.yaml"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--fusions", default="concat,hadamard")
    p.add_argument("--latents", default="4,8,16,32")
    p.add_argument("--runs", default="runs/sweep")
    p.add_argument("--out", default="results/tiny_sweep.json")
    args = p.parse_args()

    from trainers import sft
    from trainers.config import SFTConfig

    out = Path(args.out)
    cells = json.loads(out.read_text())["cells"] if out.is_file() else []
    have = {(c["fusion"], c["num_latents"]) for c in cells}
    for fusion in args.fusions.split(","):
        for n in [int(x) for x in args.latents.split(",")]:
            if (fusion, n) in have:
                continue
            run_dir = Path(args.runs) / f"{fusion}-{n}"
            cfg = SFTConfig.load(RECIPE, {
                "fusion": fusion, "num_latents": n, "max_steps": args.steps, "output_dir": str(run_dir),
                "overwrite": True, "eval_steps": args.steps, "save_steps": 0, "progress": False,
                "warmup_steps": min(50, args.steps // 10),
            })
            t0 = time.perf_counter()
            sft.main(cfg)
            seconds = time.perf_counter() - t0
            last = read_jsonl(run_dir / "log.jsonl")[-1]
            cells.append({"fusion": fusion, "num_latents": n, "steps": args.steps, "eval_accuracy": last["eval_accuracy"],
                          "final_loss": last["loss"], "seconds": round(seconds, 1)})
            atomic_write_json(out, {"recipe": str(RECIPE.relative_to(RECIPE.parents[3])), "cells": cells,
                                    "note": "greedy latent-mode accuracy on the tiny eval split (200 problems)"})
            print(json.dumps(cells[-1]))


if __name__ == "__main__":
    main()
