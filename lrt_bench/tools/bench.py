"""`lrt-bench bench`: think (full trajectory) vs nothink vs latent, measured side by side in one run.

    lrt-bench bench [--world DIR] [--reasoner DIR] [--problems 64] [--batch-sizes 1,32] [--vs-hf]
    lrt-bench bench --real-size qwen3-1.7b [--think-tokens 3500] [--answer-tokens 64] [--latents 256] \\
        [--batch-sizes 1,16] [--layers N]

(`python -m lrt_bench.tools.bench ...` takes the same arguments.)

Every mode runs on the same prompts, the same base, the same batch sizes, in one process, one after
the other, each (mode, batch size) after a short warm-up batch of its own shape. What is reported
are ratios inside that one run (timings on a shared machine are noisy; their ratios much less so).
Per cell:

* latency: seconds per problem (amortised over the batch) and per batch (what one request waits);
* throughput: generated tokens / s, and with the N latents counted as tokens;
* peak memory: on CUDA `torch.cuda.max_memory_allocated`, reset before each cell (absolute, and its
  increase over the memory allocated when the cell starts: KV cache, activations, logits). On CPU the
  process's resident set size (RSS) sampled every 5 ms during the cell, absolute and its increase
  over the RSS at the cell's start. RSS counts what the allocator holds, not what tensors use; memory
  freed by an earlier cell and reused is not counted again, so the increase is a lower bound;
* the time split of `LatentLM.last_timings`, summed over batches: prefill of X (the pass that yields
  H_X and the KV cache; includes tokenisation), G_φ, latent prefill ([z, suffix]) and answer decode
  (the step loop; in think mode reasoning, forced close and answer); `other` is what is left
  (harness overhead);
* token counts: reasoning, forced and answer tokens per problem; decode steps (sampled positions) and
  ms per decode forward (decode time / (steps - 1 per batch): the decode loop's cost per token).

Suites (which decode settings the three modes get):

* tiny world, `natural`: think reasons until its own `</think>` (budget `--budget`, s1 forcing if it
  is reached) and answers within `--answer-allowance`; nothink and latent answer within `--budget`;
  EOS ends every answer. An untrained G_φ does not answer like a trained one and may run long: the
  answer token counts are reported beside the times.
* tiny world, `equal-answer`: the same, but every answer is exactly `--answer-tokens` tokens
  (`DecodeConfig(ignore_eos=True)` caps; default: think's mean answer length in `natural`, rounded
  up), so latent, nothink and think differ only by what comes before the answer.
* `--real-size`: `forced`. Random weights decide nothing: think reasons exactly `--think-tokens`
  tokens (the base's `</think>` logit is zeroed in lrt_bench.core.realsize), then the forced close, then
  exactly `--answer-tokens`; nothink and latent answer exactly `--answer-tokens` (ignore_eos).

`--vs-hf` (tiny world) also runs lm-eval on the parity task (`lrt_tiny` with the assistant turn opened
by `<think>\\n`, lm-eval's gen_prefix; `--apply_chat_template`) with `--model lrt --model_args
mode=think` and with lm-eval's stock `--model hf`, same documents, batch size and gen_kwargs, greedy and
sampled, and reports the wall-time ratio of their `generate_until` and of the whole evaluation, and
whether the per-document results are equal (greedy).

Writes `<out-dir>/<name>.json` and `<name>.md` (atomically, after every cell, so a run cut short
keeps what it measured; `"complete": false` until the end).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lrt_bench.errors import LRTError
from lrt_bench.io import check_writable_dir
from lrt_bench.tools.bench_measure import (
    MODES,
    REAL_TARGETS,
    TINY_TARGETS,
    Cell,
    check_targets,
    ratios,
    time_cell,
)
from lrt_bench.tools.bench_parity import vs_hf
from lrt_bench.tools.bench_render import _console, _fmt_mem, _write_outputs, print_report

# ----------------------------------------------------------------------------------------- setup


def _environment(device) -> dict:
    import torch

    dev = str(device)
    name = torch.cuda.get_device_name() if dev.startswith("cuda") else (platform.processor() or platform.machine() or "cpu")
    env = {
        "torch": torch.__version__,
        "device": dev,
        "device_name": name,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    try:
        import transformers

        env["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover
        pass
    return env


def environment() -> dict:
    """Kept for older scripts: the environment of a CPU or CUDA run."""
    import torch

    return _environment("cuda" if torch.cuda.is_available() else "cpu")


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(b < 1 for b in sizes):
        raise LRTError(f"--batch-sizes must be positive integers separated by commas, got {text!r}")
    return sizes


def _setup_tiny(args) -> dict:
    import torch

    from lrt_bench.core.generation import LatentLM
    from lrt_bench.core.models import load_base, resolve_dtype, untrained_reasoner
    from lrt_bench.core.reasoner import load_reasoner
    from lrt_bench.eval.data import tiny_dir
    from lrt_bench.eval.grading import grade_math
    from lrt_bench.io import read_jsonl

    world = Path(args.world).expanduser().resolve() if args.world else tiny_dir()
    if not (world / "world.json").is_file():
        raise LRTError(f"no tiny world at {world}: run `lrt-bench tiny build --out {world}` first, or pass --world")
    device = args.device or "cpu"
    dtype = resolve_dtype(args.dtype, device, what="--dtype")
    torch.manual_seed(args.seed)
    base, tok = load_base(world / "base", device=device, dtype=dtype)
    if args.reasoner:
        net, meta = load_reasoner(args.reasoner, base, device=device)
        net.to(dtype=dtype)
        trainer = (meta.recipe or {}).get("trainer")  # "sft" | "grpo" | "untrained" | None (not recorded)
        bits = [b for b in (trainer, None if meta.step is None else f"step {meta.step}") if b]
        label = f"latent (G_φ {Path(args.reasoner).name}" + (f": {' '.join(bits)}" if bits else "") + ")"
        reasoner = {"path": str(args.reasoner), "trained": None if trainer is None else trainer != "untrained",
                    "trainer": trainer, "step": meta.step, "num_latents": net.num_latents,
                    "fusion": meta.network.fusion}
    else:
        latents = args.latents or 16
        net = untrained_reasoner(base, world / "backbone" / "config.json", num_latents=latents)
        net = net.to(device=device, dtype=dtype).eval()
        label = "latent (untrained G_φ)"
        reasoner = {"path": None, "trained": False, "num_latents": latents, "fusion": net.config.fusion,
                    "note": "randomly initialised G_φ sized from the world's backbone config: same shapes "
                            "and cost as a trained one, answers not meaningful"}
    rows = read_jsonl(world / "data" / "eval.jsonl")[: 64 if args.problems is None else args.problems]
    if not rows:
        raise LRTError(f"--problems must be >= 1 (the world has {len(read_jsonl(world / 'data' / 'eval.jsonl'))})")
    return {
        "lm": LatentLM(base, tok, net), "prompts": [r["problem"] for r in rows],
        "answers": [r["answer"] for r in rows], "grade": grade_math, "label": label,
        "setup": {"kind": "tiny", "world": str(world), "reasoner": reasoner, "problems": len(rows),
                  "dtype": str(dtype).replace("torch.", ""),
                  "base_params": sum(p.numel() for p in base.parameters())},
    }


def _setup_real(args) -> dict:
    import torch

    from lrt_bench.core.generation import LatentLM
    from lrt_bench.core.models import resolve_dtype
    from lrt_bench.core.realsize import BASES, build, synthetic_prompt

    if args.real_size not in BASES:
        raise LRTError(f"unknown --real-size {args.real_size!r}: use one of {', '.join(BASES)}")
    if args.reasoner:
        raise LRTError("--reasoner needs a trained base: --real-size builds random weights, use the tiny world "
                       "or a real checkpoint through lm_eval --model lrt")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = resolve_dtype(args.dtype, device, what="--dtype")
    latents = args.latents or 256
    torch.manual_seed(args.seed)
    base, tok, net = build(args.real_size, num_latents=latents, device=device, dtype=dtype, layers=args.layers)
    n = args.problems or max(_parse_sizes(args.batch_sizes))
    prompts = [synthetic_prompt(args.prompt_words, i) for i in range(n)]
    cfg = base.config
    return {
        "lm": LatentLM(base, tok, net), "prompts": prompts, "answers": None, "grade": None,
        "label": "latent (random G_φ, Qwen3-Embedding-0.6B size)",
        "setup": {"kind": "real_size", "model": args.real_size, "layers": cfg.num_hidden_layers,
                  "layers_overridden": args.layers is not None, "problems": n, "prompt_words": args.prompt_words,
                  "dtype": str(dtype).replace("torch.", ""),
                  "base_params": sum(p.numel() for p in base.parameters()),
                  "reasoner": {"trained": False, "num_latents": latents,
                               "backbone_layers": net.backbone.config.num_hidden_layers,
                               "params": sum(p.numel() for p in net.parameters())}},
    }


def _suites(args, lm) -> list[tuple[str, dict, dict | None]]:
    """[(suite, {mode: DecodeConfig}, {mode: expected counts} or None)]; the tiny equal-answer suite
    is added after `natural` has run (its default length comes from it)."""
    from lrt_bench.core.generation import DecodeConfig

    if args.real_size:
        T, A = args.think_tokens, args.answer_tokens or 64
        F = len(lm._forced_ids)
        cfgs = {
            "think": DecodeConfig(mode="think", max_gen_toks=T, answer_allowance=A, ignore_eos=True),
            "nothink": DecodeConfig(mode="nothink", max_gen_toks=A, ignore_eos=True),
            "latent": DecodeConfig(mode="latent", max_gen_toks=A, ignore_eos=True),
        }
        expected = {
            "think": {"reasoning_tokens": T, "forced_tokens": F, "answer_tokens": A},
            "nothink": {"reasoning_tokens": 0, "forced_tokens": 0, "answer_tokens": A},
            "latent": {"reasoning_tokens": 0, "forced_tokens": 0, "answer_tokens": A},
        }
        return [("forced", cfgs, expected)]
    cfgs = {
        "think": DecodeConfig(mode="think", max_gen_toks=args.budget, answer_allowance=args.answer_allowance),
        "nothink": DecodeConfig(mode="nothink", max_gen_toks=args.budget),
        "latent": DecodeConfig(mode="latent", max_gen_toks=args.budget),
    }
    return [("natural", cfgs, None)]


def _equal_answer_suite(args, cells: list[Cell]):
    from lrt_bench.core.generation import DecodeConfig

    A = args.answer_tokens
    if not A:
        think = [c.answer_tokens for c in cells if c.suite == "natural" and c.mode == "think"]
        A = max(1, math.ceil(max(think))) if think else 16
    cfgs = {
        "think": DecodeConfig(mode="think", max_gen_toks=args.budget, answer_allowance=A, ignore_eos=True),
        "nothink": DecodeConfig(mode="nothink", max_gen_toks=A, ignore_eos=True),
        "latent": DecodeConfig(mode="latent", max_gen_toks=A, ignore_eos=True),
    }
    expected = {m: {"answer_tokens": A} for m in MODES}
    return ("equal-answer", cfgs, expected), A


# ------------------------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> int:
    import torch

    con = _console()
    if args.vs_hf and args.real_size:
        raise LRTError("--vs-hf runs lm-eval on the tiny world's parity task: leave out --real-size")
    if args.layers is not None and not args.real_size:
        raise LRTError("--layers shrinks a --real-size model: use it with --real-size")
    sizes = _parse_sizes(args.batch_sizes or ("1,16" if args.real_size else "1,32"))
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise LRTError(f"--modes takes {', '.join(MODES)} (comma separated), got {args.modes!r}")
    if args.repeats < 1:
        raise LRTError(f"--repeats must be >= 1, got {args.repeats}")
    if args.device is not None:
        try:
            dev = torch.device(args.device)
        except (RuntimeError, ValueError):
            raise LRTError(f"--device {args.device!r} is not a torch device: use cpu, cuda or cuda:N") from None
        if dev.type not in ("cpu", "cuda"):
            raise LRTError(f"--device {args.device!r}: lrt-bench bench runs on cpu or cuda")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise LRTError(f"--device {args.device!r}: no CUDA device is available here; use --device cpu")
    check_writable_dir(args.out_dir, "--out-dir")
    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = _setup_real(args) if args.real_size else _setup_tiny(args)
    lm, prompts = ctx["lm"], ctx["prompts"]
    setup = ctx["setup"]
    name = args.name or (f"real_{args.real_size}" + (f"_L{args.layers}" if args.layers else "")
                         if args.real_size else "tiny")
    out_dir = Path(args.out_dir)
    title = (f"{args.real_size}, random weights, think {args.think_tokens} + answer {args.answer_tokens or 64} tokens, "
             f"{setup['reasoner']['num_latents']} latents" if args.real_size
             else f"tiny world, {len(prompts)} problems, budget {args.budget}")
    payload: dict[str, Any] = {
        "title": title, "complete": False, "env": _environment(lm.device), "setup": setup,
        "args": {k: v for k, v in vars(args).items() if k != "func"}, "cells": [], "ratios": {}, "targets": [],
    }
    targets = REAL_TARGETS if args.real_size else TINY_TARGETS

    def save(pending: list[Cell] = ()) -> None:
        done = cells + list(pending)
        payload["ratios"] = ratios(done)
        payload["targets"] = check_targets(payload["ratios"], targets)
        payload["cells"] = done
        _write_outputs(out_dir, name, payload)

    cells: list[Cell] = []
    suites = _suites(args, lm)
    i = 0
    while i < len(suites):
        suite, cfgs, expected = suites[i]
        for bs in sizes:
            batch_prompts = prompts if not args.real_size or args.problems else prompts[:bs]
            answers = ctx["answers"][: len(batch_prompts)] if ctx["answers"] else None
            best: dict[str, Cell] = {}
            for rep in range(args.repeats):
                # nothink and latent first: a think cell cut short by a time limit leaves the rest measured.
                # With --repeats the modes take turns, so load on a shared machine hits them alike.
                for mode in [m for m in ("nothink", "latent", "think") if m in modes]:
                    label = ctx["label"] if mode == "latent" else mode
                    # accuracy only where answers end naturally (forced lengths append text after the answer)
                    grade = ctx["grade"] if expected is None else None
                    cell = time_cell(lm, batch_prompts, cfgs[mode], bs, suite=suite, label=label, answers=answers,
                                     grade=grade, expected=(expected or {}).get(mode),
                                     warmup=rep == 0 and not args.no_warmup)
                    runs = (best[mode].runs_s if mode in best else []) + [cell.seconds]
                    if mode not in best or cell.seconds < best[mode].seconds:
                        best[mode] = cell
                    best[mode].runs_s = runs
                    if best[mode].exact is not False and cell.exact is False:
                        best[mode].exact = False
                    con.print(f"[{suite}] bs={bs:<3d} {label:32s} {cell.seconds:9.3f} s  "
                              f"{cell.seconds_per_problem * 1000:9.2f} ms/problem  reason {cell.reasoning_tokens:7.1f}  "
                              f"answer {cell.answer_tokens:6.1f} tok  {cell.ms_per_forward:7.2f} ms/forward  "
                              f"mem {_fmt_mem(cell.memory)} MiB", highlight=False, markup=False)
                    save([best[m] for m in MODES if m in best])
            cells.extend(best[m] for m in MODES if m in best)
            save()
        if suite == "natural" and not args.no_equal_answer and ("think" in modes or args.answer_tokens):
            extra, A = _equal_answer_suite(args, cells)
            payload["equal_answer_tokens"] = A
            suites.append(extra)
        i += 1
    if args.vs_hf:
        world = Path(setup["world"])
        payload["vs_hf"] = vs_hf(world, limit=args.hf_limit, batch_size=args.hf_batch_size,
                                 max_gen_toks=args.hf_max_gen_toks, device=str(lm.device), repeats=args.repeats,
                                 log=lambda s: con.print(s, highlight=False, markup=False))
    payload["complete"] = True
    save()
    print_report(json.loads(json.dumps(payload, default=lambda o: asdict(o))), con)
    js, md = _write_outputs(out_dir, name, payload)
    con.print(f"wrote {js} and {md}")
    if any(c.exact is False for c in cells):
        return 1
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--world", help="tiny world directory (default: $LRT_TINY_DIR or ~/.cache/lrt-bench/tiny)")
    p.add_argument("--reasoner", help="reasoner checkpoint dir (default: an untrained G_φ, labelled so)")
    p.add_argument("--problems", type=int, default=None,
                   help="problems per cell (tiny: first N eval problems, default 64; real size: default one "
                        "batch of each batch size)")
    p.add_argument("--batch-sizes", default=None, help="comma separated (default 1,32; real size 1,16)")
    p.add_argument("--modes", default="think,nothink,latent")
    p.add_argument("--budget", type=int, default=256, help="tiny: max_gen_toks of every mode (think's reasoning cap)")
    p.add_argument("--answer-allowance", type=int, default=32, help="tiny: think mode's answer allowance")
    p.add_argument("--answer-tokens", type=int, default=None,
                   help="forced answer length (real size: default 64; tiny equal-answer suite: default think's "
                        "mean answer length)")
    p.add_argument("--no-equal-answer", action="store_true", help="tiny: skip the equal-answer suite")
    p.add_argument("--latents", type=int, default=None, help="latents of the untrained G_φ (tiny 16, real size 256)")
    p.add_argument("--real-size", choices=("qwen3-1.7b", "r1-distill-qwen-1.5b"),
                   help="random-weight base of this size + a Qwen3-Embedding-0.6B-size G_φ (bf16 on GPU)")
    p.add_argument("--think-tokens", type=int, default=3500, help="real size: reasoning tokens of think mode")
    p.add_argument("--prompt-words", type=int, default=150, help="real size: synthetic prompt length (tokens)")
    p.add_argument("--layers", type=int, default=None, help="real size: override the depth (CPU smoke tests)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: tiny cpu; real size cuda if available)")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on cuda, fp32 on cpu) | float32 | bfloat16 | float16")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs per cell, modes taking turns; each cell reports its fastest run (all runs in runs_s)")
    p.add_argument("--vs-hf", action="store_true",
                   help="also time --model lrt (mode=think) against lm-eval's --model hf on the parity task")
    p.add_argument("--hf-limit", type=int, default=64, help="--vs-hf: documents")
    p.add_argument("--hf-batch-size", type=int, default=32, help="--vs-hf: batch size of both backends")
    p.add_argument("--hf-max-gen-toks", type=int, default=200, help="--vs-hf: max_gen_toks of both backends")
    p.add_argument("--out-dir", default="results/bench", help="where <name>.json and <name>.md go")
    p.add_argument("--name", default=None, help="file name stem (default: tiny, or real_<model>[_L<layers>])")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `lrt-bench bench` on an argparse subparsers object."""
    p = subparsers.add_parser("bench", help="latency, throughput, memory of think vs nothink vs latent (one run)",
                              description=__doc__.split("\n\n")[0], allow_abbrev=False)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lrt_bench.tools.bench", description=__doc__.split("\n\n")[0],
                                allow_abbrev=False)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except LRTError as e:
        print(f"lrt-bench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
