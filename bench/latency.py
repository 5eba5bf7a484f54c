"""Tiny-world latency: think (full trajectory) vs nothink vs latent at batch 1 and batch 32, one run.

    python bench/latency.py [--world DIR] [--reasoner DIR] [--problems 64] [--out results/bench/tiny_latency.json]

Targets (Core issue): latent >= 3x faster than full thinking at the same batch size; latent within
1.3x of nothink; batch 32 >= 6x the throughput of batch 1. Without --reasoner an untrained G_φ is
timed (same shapes and cost; its answers are not meaningful, and answer lengths are reported).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lrt_bench.bench import environment, ratios, report, time_mode, write
from lrt_bench.cli import default_tiny_dir
from lrt_bench.generation import LatentLM
from lrt_bench.reasoner import ReasoningNetwork, load_reasoner
from lrt_bench.tiny.task import grade, read_jsonl


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", default=None)
    p.add_argument("--reasoner", default=None)
    p.add_argument("--problems", type=int, default=64)
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--budget", type=int, default=256, help="large enough for the full trajectory")
    p.add_argument("--answer-allowance", type=int, default=32)
    p.add_argument("--num-latents", type=int, default=16)
    p.add_argument("--out", default="results/bench/tiny_latency.json")
    args = p.parse_args()

    world = Path(args.world) if args.world else default_tiny_dir()
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(world / "base")
    tok = AutoTokenizer.from_pretrained(world / "base")
    if args.reasoner:
        net, _ = load_reasoner(args.reasoner, base)
    else:
        bb = json.loads((world / "backbone" / "config.json").read_text())
        net = ReasoningNetwork.for_base(base, backbone_config=bb, num_latents=args.num_latents).eval()
    lm = LatentLM(base, tok, net)
    rows = read_jsonl(world / "data" / "eval.jsonl")[: args.problems]
    prompts, answers = [r["problem"] for r in rows], [r["answer"] for r in rows]
    cells = []
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        for mode in ("think", "nothink", "latent"):
            cells.append(time_mode(lm, prompts, mode, bs, args.budget, args.answer_allowance, grade, answers))
    rat = ratios(cells)
    report(cells, rat, f"tiny world, {len(prompts)} problems, budget {args.budget}")
    write(args.out, {"env": environment(), "world": str(world), "reasoner": args.reasoner,
                     "cells": cells, "ratios": rat})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
