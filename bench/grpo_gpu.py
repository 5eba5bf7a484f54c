"""Five GRPO steps at real shapes: step time, rollout tokens/s, peak memory (the Trainers issue's GPU check).

    python bench/grpo_gpu.py [--real-size qwen3-1.7b] [--steps 5] [--prompts 1] [--num-generations 8]
                             [--latents 256] [--completion-tokens 1024] [--device cuda] [--layers N]

A Qwen3-1.7B-config base and a Qwen3-Embedding-0.6B-size backbone with random weights (bf16 on GPU;
lrt_bench/realsize.py). Each step is the trainer's own: `LatentPolicy.rollout` (z once per prompt, K
samples sharing one prefill), log-probs through `LatentPolicy.logprobs` (gradients into φ through
the frozen base), `grpo_core.grpo_loss` with the k3 KL to a frozen reference copy of G_φ, AdamW.
Random weights decide nothing, so rollouts are forced to exactly `--completion-tokens` tokens
(`ignore_eos`), and rewards are random draws (a constant reward would give zero advantages and no
gradient, so nothing would be timed). JSON goes to $OUT (or results/bench) as grpo_gpu_<size>.json.
`--layers 2 --device cpu --completion-tokens 8` is a CPU smoke run of the same code.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import torch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real-size", default="qwen3-1.7b")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--prompts", type=int, default=1, help="prompts per step (x num_generations completions)")
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--latents", type=int, default=256)
    p.add_argument("--completion-tokens", type=int, default=1024)
    p.add_argument("--prompt-words", type=int, default=128)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--layers", type=int, default=None, help="shrink depth (CPU smoke runs)")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--beta", type=float, default=2e-3)
    args = p.parse_args()

    from lrt_bench import realsize
    from lrt_bench.generation import DecodeConfig, LatentLM
    from lrt_bench.io import atomic_write_json
    from trainers import grpo_core
    from trainers.policies import LatentPolicy

    dev = torch.device(args.device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    base, tok, net = realsize.build(args.real_size, num_latents=args.latents, device=args.device, dtype=dtype,
                                    layers=args.layers)
    net.float().train()  # φ trains in fp32 under bf16 autocast, as in trainers/grpo.py
    ref = copy.deepcopy(net).eval().requires_grad_(False)
    lm = LatentLM(base, tok, net)
    policy = LatentPolicy(lm, net, ref)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr)
    K = args.num_generations
    decode = DecodeConfig(mode="latent", max_gen_toks=args.completion_tokens, temperature=1.0, ignore_eos=True)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    steps: list[dict] = []
    out = Path(os.environ.get("OUT") or Path(__file__).resolve().parents[1] / "results" / "bench")

    def write(done: list[dict], complete: bool) -> None:
        """After every step, so a run cut by the time limit keeps what it measured."""
        summary = {**_summary(args, done, net, dtype, dev, K), "complete": complete}
        atomic_write_json(out / f"grpo_gpu_{args.real_size}.json", summary)
        if complete:
            print(json.dumps({k: v for k, v in summary.items() if k != "steps"}, indent=1))

    for step in range(args.steps):
        prompts = [realsize.synthetic_prompt(args.prompt_words, seed=step * 1000 + i) for i in range(args.prompts)]
        sync()
        t0 = time.perf_counter()
        ro = policy.rollout(prompts, K, DecodeConfig(**{**decode.__dict__, "seed": step}))
        sync()
        t_roll = time.perf_counter() - t0
        n_tok = sum(len(c) for c in ro.completions)
        rewards = torch.rand(len(ro.completions), generator=torch.Generator().manual_seed(step))
        adv = grpo_core.group_advantages(rewards, K).to(dev)
        with autocast:
            ref_logp = policy.ref_logprobs(ro)
            logp, mask = policy.logprobs(ro, net)
            loss, stats = grpo_core.grpo_loss(logp, logp.detach(), adv, mask, epsilon=0.2, beta=args.beta,
                                              ref_logp=ref_logp)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        total = time.perf_counter() - t0
        rec = {"step": step + 1, "seconds": total, "rollout_seconds": t_roll, "train_seconds": total - t_roll,
               "completion_tokens": n_tok, "rollout_tokens_per_s": n_tok / t_roll, "kl": stats.get("kl", 0.0)}
        if dev.type == "cuda":
            rec["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        steps.append(rec)
        print(json.dumps(rec), flush=True)
        write(steps, complete=step + 1 == args.steps)
    return 0


def _summary(args, steps, net, dtype, dev, K) -> dict:
    warm = steps[1:] or steps
    return {
        "real_size": args.real_size, "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "layers": args.layers or "as published", "prompts_per_step": args.prompts, "num_generations": K,
        "latents": args.latents, "completion_tokens": args.completion_tokens, "dtype": str(dtype),
        "mean_step_seconds_after_first": sum(s["seconds"] for s in warm) / len(warm),
        "mean_rollout_tokens_per_s_after_first": sum(s["rollout_tokens_per_s"] for s in warm) / len(warm),
        "peak_allocated_gib": max((s.get("peak_allocated_gib", 0.0) for s in steps), default=0.0),
        "params_phi": sum(p.numel() for p in net.parameters()), "steps": steps,
        "note": "random weights, forced lengths, random rewards: a speed and memory check, not training",
    }


if __name__ == "__main__":
    raise SystemExit(main())
