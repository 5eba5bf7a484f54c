"""Real-size latency, throughput and memory: think vs nothink vs latent, random weights, forced lengths.

    python bench/real_size.py --model qwen3-1.7b [--think-tokens 3500] [--answer-tokens 64] \
        [--latents 256] [--batch-sizes 1,16] [--out results/bench/real_size.json]

Builds the base and a Qwen3-Embedding-0.6B-size G_φ from configs (bf16 on GPU). Random weights decide
nothing, so think mode is cut at --think-tokens and every answer runs to --answer-tokens (ignore_eos).
Paper anchor (Table 7, A100, Qwen3-1.7B, 64 MATH-500 problems): thinking 71.09 s, non-thinking
14.62 s, LRT 11.79 s. Targets: latent >= 20x faster than thinking at batch 1, <= 1.10x non-thinking.
"""

from __future__ import annotations

import argparse
import time

import torch

from lrt_bench.bench import environment, write
from lrt_bench.generation import DecodeConfig, LatentLM
from lrt_bench.realsize import build, synthetic_prompt


def run(lm, prompts, cfg, device) -> dict:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    gens = lm.generate(prompts, cfg)
    if device == "cuda":
        torch.cuda.synchronize()
    sec = time.perf_counter() - t0
    tm = lm.last_timings
    gen_tok = sum(g.account.generated_tokens for g in gens)
    lat = gens[0].account.latents * len(gens)
    return {
        "mode": cfg.mode, "batch_size": len(prompts), "seconds": sec, "seconds_per_problem": sec / len(prompts),
        "generated_tokens_per_problem": gen_tok / len(gens), "latents": gens[0].account.latents,
        "tokens_per_s": gen_tok / sec, "tokens_per_s_with_latents": (gen_tok + lat) / sec,
        "peak_mem_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
        "split_s": {"prefill": tm.prefill, "reasoner": tm.reasoner, "latent_prefill": tm.latent_prefill,
                    "decode": tm.decode, "steps": tm.steps},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="qwen3-1.7b")
    p.add_argument("--think-tokens", type=int, default=3500)
    p.add_argument("--answer-tokens", type=int, default=64)
    p.add_argument("--latents", type=int, default=256)
    p.add_argument("--prompt-words", type=int, default=150)
    p.add_argument("--batch-sizes", default="1,16")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default="results/bench/real_size.json")
    args = p.parse_args()

    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    base, tok, net = build(args.model, num_latents=args.latents, device=args.device, dtype=dtype)
    lm = LatentLM(base, tok, net)
    cfgs = {
        "think": DecodeConfig(mode="think", max_gen_toks=args.think_tokens, answer_allowance=args.answer_tokens,
                              ignore_eos=True),
        "nothink": DecodeConfig(mode="nothink", max_gen_toks=args.answer_tokens, ignore_eos=True),
        "latent": DecodeConfig(mode="latent", max_gen_toks=args.answer_tokens, ignore_eos=True),
    }
    warm = [synthetic_prompt(args.prompt_words, 999)]
    for mode in cfgs:  # warm-up: kernels, allocator, cuBLAS handles
        lm.generate(warm, DecodeConfig(mode=mode, max_gen_toks=8, answer_allowance=4, ignore_eos=True))
    cells = []
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        prompts = [synthetic_prompt(args.prompt_words, i) for i in range(bs)]
        for mode, cfg in cfgs.items():
            cell = run(lm, prompts, cfg, args.device)
            cells.append(cell)
            print(f"bs={bs:3d} {mode:8s} {cell['seconds']:8.2f} s  {cell['generated_tokens_per_problem']:7.0f} tok/problem "
                  f"{cell['tokens_per_s']:8.0f} tok/s  peak {cell['peak_mem_mb'] or 0:8.0f} MiB  split {cell['split_s']}",
                  flush=True)
    by = {(c["mode"], c["batch_size"]): c for c in cells}
    ratios = {}
    for bs in sorted({c["batch_size"] for c in cells}):
        ratios[f"think_over_latent_time@bs{bs}"] = by["think", bs]["seconds"] / by["latent", bs]["seconds"]
        ratios[f"latent_over_nothink_time@bs{bs}"] = by["latent", bs]["seconds"] / by["nothink", bs]["seconds"]
    for k, v in ratios.items():
        print(f"{k:36s} {v:7.2f}x")
    write(args.out, {"env": environment(), "model": args.model, "args": vars(args), "cells": cells, "ratios": ratios})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
