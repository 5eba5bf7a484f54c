"""GRPO steps at real shapes through the trainer's own set-up and step: step time, rollout tokens/s, peak memory.

    python bench/grpo_gpu.py [--policy latent|explicit] [--real-size NAME] [--steps 5] [--prompts 1]
                             [--num-generations 8] [--latents 256] [--completion-tokens 1024]
                             [--generation-batch-size N] [--gradient-checkpointing on|off|both]
                             [--device cuda] [--layers N]

latent (default): a Qwen3-1.7B-config base, frozen in bf16, and a Qwen3-Embedding-0.6B-size G_φ
(fp32 master weights under bf16 autocast), K = 8, 256 latents, 1,024-token rollouts.
explicit: the base itself trains, as ShorterBetter does (`--real-size r1-distill-qwen-1.5b
--completion-tokens 2048 --gradient-checkpointing both`): one run per setting, each with its peak memory.

Everything between the models and the numbers is the trainer's: the random-weight models
(lrt_bench/core/realsize.py) are written to a temporary directory in safetensors and loaded by
`trainers.grpo.setup` like any base, and each step is `trainers.grpo.grpo_step` (chunked rollouts,
log-probs at the sampling temperature, the clipped loss with the k3 KL, accelerate's accumulation,
AdamW). Random weights decide nothing, so rollouts are forced to full length (`ignore_eos`) and the
rewards are random draws (`grpo_step`'s `score`; a constant reward would give zero advantages and no
gradient, so nothing would be timed). JSON goes to $OUT (or results/bench) as
grpo_gpu_<policy>_<size>.json, rewritten after every step. `--layers 1 --device cpu
--vocab 2048 --completion-tokens 6` is a CPU smoke run of the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--policy", choices=("latent", "explicit"), default="latent")
    p.add_argument("--real-size", default=None, help="default: qwen3-1.7b (latent), r1-distill-qwen-1.5b (explicit)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--prompts", type=int, default=1, help="prompts per step (x num_generations completions)")
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--latents", type=int, default=256)
    p.add_argument("--completion-tokens", type=int, default=1024)
    p.add_argument("--generation-batch-size", type=int, default=None)
    p.add_argument("--gradient-checkpointing", choices=("on", "off", "both"), default="off")
    p.add_argument("--prompt-words", type=int, default=128)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--layers", type=int, default=None, help="shrink depth (CPU smoke runs)")
    p.add_argument("--vocab", type=int, default=None, help="shrink the vocabulary (CPU smoke runs)")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--beta", type=float, default=2e-3)
    args = p.parse_args()
    size = args.real_size or ("qwen3-1.7b" if args.policy == "latent" else "r1-distill-qwen-1.5b")
    if args.device == "cpu" and torch.cuda.is_available():
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the trainer's accelerator picks the device itself

    from lrt_bench.io import atomic_write_json

    out = Path(os.environ.get("OUT") or Path(__file__).resolve().parents[1] / "results" / "bench")
    path = out / f"grpo_gpu_{args.policy}_{size}.json"
    settings = {"on": [True], "off": [False], "both": [False, True]}[args.gradient_checkpointing]
    result = {"policy": args.policy, "real_size": size, "device": _device_name(args.device), "torch": torch.__version__,
              "layers": args.layers or "as published", "vocab": args.vocab or "as published", "prompts_per_step": args.prompts,
              "num_generations": args.num_generations, "latents": args.latents if args.policy == "latent" else None,
              "completion_tokens": args.completion_tokens, "generation_batch_size": args.generation_batch_size,
              "runs": [], "complete": False,
              "note": "random weights, forced lengths, random rewards: a speed and memory check, not training"}
    with tempfile.TemporaryDirectory(prefix="grpo_gpu_") as tmp:
        base_dir, backbone = _write_models(size, Path(tmp), args)
        for gc in settings:
            run = {"gradient_checkpointing": gc, "steps": []}
            result["runs"].append(run)
            _bench(args, base_dir, backbone, gc, run, lambda: atomic_write_json(path, result))
    result["complete"] = True
    atomic_write_json(path, result)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
    for run in result["runs"]:
        print(json.dumps({k: v for k, v in run.items() if k != "steps"}))
    return 0


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device.startswith("cuda") and torch.cuda.is_available() else "cpu"


def _write_models(size: str, tmp: Path, args) -> tuple[Path, Path]:
    """The random-weight base (bf16 on GPU) and tokenizer as a model directory; G_φ's backbone config."""
    from lrt_bench.core import realsize
    from lrt_bench.core.models import resolve_dtype

    dtype = resolve_dtype("auto", args.device)
    base, tok, _ = realsize.build(size, num_latents=4, device="cpu", dtype=dtype, layers=args.layers,
                                  vocab_size=args.vocab)
    base.config.tie_word_embeddings = False  # realsize unties the head (its </think> row is zeroed): keep it so
    base.save_pretrained(tmp / "base", safe_serialization=True)
    tok.save_pretrained(tmp / "base")
    backbone = dict(realsize.QWEN3_EMBEDDING_0P6B)
    if args.layers is not None:
        backbone["num_hidden_layers"] = args.layers
    (tmp / "backbone.json").write_text(json.dumps(backbone))
    del base
    return tmp / "base", tmp / "backbone.json"


def _bench(args, base_dir: Path, backbone: Path, gc: bool, run: dict, write) -> None:
    from lrt_bench.core import realsize
    from trainers.accelerator import make_accelerator
    from trainers.config import GRPOConfig
    from trainers.grpo import grpo_step, setup

    K = args.num_generations
    cfg = GRPOConfig(
        base=str(base_dir), dataset="(synthetic prompts)", output_dir="(not written)", policy=args.policy,
        backbone_config=str(backbone), num_latents=args.latents, num_generations=K,
        per_device_train_batch_size=K, gradient_accumulation_steps=args.prompts,
        generation_batch_size=args.generation_batch_size, max_completion_length=args.completion_tokens,
        answer_allowance=64 if args.policy == "explicit" else None, temperature=1.0,
        learning_rate=args.lr, lr_scheduler_type="constant", beta=args.beta, max_steps=max(1, args.steps),
        gradient_checkpointing=gc, max_prompt_length=4096, progress=False,
    )
    acc = make_accelerator(cfg)
    dev = acc.device
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer, _ = setup(cfg, acc)
    trainer.decode = replace(trainer.decode, ignore_eos=True)  # random weights: decode to the caps
    run["params_trained"] = sum(p.numel() for p in trainer.params)
    run["memory_after_setup_gib"] = torch.cuda.memory_allocated() / 2**30 if dev.type == "cuda" else None
    rng = random.Random(0)

    def score(texts, golds, correct):
        return [rng.random() for _ in texts]

    for step in range(args.steps):
        prompts = [realsize.synthetic_prompt(args.prompt_words, seed=step * 1000 + i) for i in range(args.prompts)]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        rec = grpo_step(trainer, prompts, ["0"] * len(prompts), step, list(range(len(prompts))), score=score)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        rec = {"step": step + 1, "wall_seconds": time.perf_counter() - t0,
               **{k: rec[k] for k in ("seconds", "rollout_seconds", "completion_tokens", "rollout_tokens_per_s",
                                      "loss", "kl", "grad_norm")}}
        if dev.type == "cuda":
            rec["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        run["steps"].append(rec)
        print(json.dumps({"gradient_checkpointing": gc, **rec}), flush=True)
        warm = run["steps"][1:] or run["steps"]
        run["mean_step_seconds_after_first"] = sum(s["seconds"] for s in warm) / len(warm)
        run["mean_rollout_tokens_per_s_after_first"] = sum(s["rollout_tokens_per_s"] for s in warm) / len(warm)
        run["peak_allocated_gib"] = max((s.get("peak_allocated_gib", 0.0) for s in run["steps"]), default=0.0)
        write()
    del trainer
    if dev.type == "cuda":
        torch.cuda.empty_cache()


if __name__ == "__main__":
    raise SystemExit(main())
