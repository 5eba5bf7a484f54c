"""`lrt-bench`: the command line.

    lrt-bench demo [--quick] [--out DIR]          the whole study on the tiny world, offline
    lrt-bench tiny build [--out DIR] [--quick] [--seed N] [--force]
    lrt-bench compare [--world DIR] [--reasoner DIR] [--budget N] [--limit N] [--modes think,nothink,latent]
    lrt-bench leaderboard [PATH ...] [--paper] [--markdown FILE] [--csv FILE] [--plot FILE.png]
    lrt-bench bench [--real-size qwen3-1.7b] [--reasoner DIR] [--vs-hf]
    lrt-bench redundancy --model DIR|ID --task TASK [--p 0,0.1,...] [--granularity token,step]

Errors in the user's input print one line (`lrt-bench: error: ...`) and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lrt_bench.errors import LRTError


def default_tiny_dir() -> Path:
    """Where `tiny build` writes and every tiny-world default reads: $LRT_TINY_DIR or the user cache."""
    from lrt_bench.eval.data import tiny_dir

    return tiny_dir()


def _console():
    from rich.console import Console

    return Console()


# --------------------------------------------------------------------------------------- tiny build


def cmd_tiny_build(args: argparse.Namespace) -> int:
    from lrt_bench.tiny.build import build_tiny_world

    out = Path(args.out) if args.out else default_tiny_dir()
    world = build_tiny_world(out, quick=args.quick, seed=args.seed, progress=not args.no_progress, force=args.force)
    con = _console()
    acc = world.get("accuracy", {})
    con.print(f"[bold]tiny world[/] at {out}")
    con.print(
        "  greedy accuracy on the eval split: "
        + ", ".join(f"{k} {100 * v:.1f}%" for k, v in acc.items())
    )
    for key in ("n_params", "train_seconds", "median_trace_tokens", "mean_trace_tokens"):
        if key in world:
            con.print(f"  {key}: {world[key]}")
    return 0


# ------------------------------------------------------------------------------------------ compare


def cmd_compare(args: argparse.Namespace) -> int:
    """Think vs nothink vs latent on the tiny world's eval split, greedy, one equal budget."""
    import torch
    from rich.progress import Progress
    from rich.table import Table

    from lrt_bench.core.generation import DecodeConfig, LatentLM
    from lrt_bench.core.models import load_base, untrained_reasoner
    from lrt_bench.core.reasoner import load_reasoner
    from lrt_bench.eval.grading import grade_math
    from lrt_bench.io import read_jsonl

    world = Path(args.world) if args.world else default_tiny_dir()
    if not (world / "world.json").is_file():
        raise LRTError(f"no tiny world at {world}: run `lrt-bench tiny build --out {world}` first")
    torch.manual_seed(args.seed)
    base, tok = load_base(world / "base", device="cpu")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    latent_label = "latent"
    net = None
    if "latent" in modes:
        if args.reasoner:
            net, meta = load_reasoner(args.reasoner, base)
            latent_label = f"latent (G_φ step {meta.step})"
        else:
            # No trained reasoner yet: show the pipeline with a randomly initialised G_φ, and say so.
            net = untrained_reasoner(base, world / "backbone" / "config.json", num_latents=args.num_latents).eval()
            latent_label = "latent (untrained G_φ)"
    lm = LatentLM(base, tok, net)
    rows = read_jsonl(world / "data" / "eval.jsonl")[: args.limit or None]
    results = []
    with Progress(transient=True) as progress:
        for mode in modes:
            cfg = DecodeConfig(mode=mode, max_gen_toks=args.budget, answer_allowance=args.answer_allowance)
            task = progress.add_task(f"{mode}", total=len(rows))
            gens = []
            for i in range(0, len(rows), args.batch_size):
                chunk = rows[i : i + args.batch_size]
                gens += lm.generate([r["problem"] for r in chunk], cfg)
                progress.advance(task, len(chunk))
            correct = sum(grade_math(g.text, r["answer"]) for g, r in zip(gens, rows))
            n = len(gens)
            results.append(
                {
                    "method": latent_label if mode == "latent" else mode,
                    "accuracy": correct / n,
                    "reasoning_tokens": sum(g.account.reasoning_tokens for g in gens) / n,
                    "answer_tokens": sum(g.account.answer_tokens for g in gens) / n,
                    "latents": gens[0].account.latents,
                    "seconds": sum(g.account.seconds for g in gens) / n,
                }
            )
    table = Table(title=f"tiny world, {len(rows)} problems, greedy, budget {args.budget} tokens")
    for col in ("method", "accuracy", "reasoning tok", "answer tok", "latents", "ms/sample"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in results:
        table.add_row(
            r["method"], f"{100 * r['accuracy']:.1f}%", f"{r['reasoning_tokens']:.1f}",
            f"{r['answer_tokens']:.1f}", str(r["latents"]), f"{1000 * r['seconds']:.1f}",
        )
    _console().print(table)
    if args.json:
        from lrt_bench.io import atomic_write_json

        atomic_write_json(args.json, {"world": str(world), "budget": args.budget, "results": results})
    return 0


# -------------------------------------------------------------------------------------------- main


def _nonneg_int(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lrt-bench", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    tiny = sub.add_parser("tiny", help="the tiny world: an offline task and base model built on CPU")
    tiny_sub = tiny.add_subparsers(dest="tiny_command", required=True)
    b = tiny_sub.add_parser("build", help="build (or reuse) the tiny world")
    b.add_argument("--out", help="output directory (default: $LRT_TINY_DIR or ~/.cache/lrt-bench/tiny)")
    b.add_argument("--quick", action="store_true", help="a smaller, faster build for tests and smoke runs")
    b.add_argument("--seed", type=_nonneg_int, default=0)
    b.add_argument("--force", action="store_true", help="rebuild even if a matching world exists")
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(func=cmd_tiny_build)

    c = sub.add_parser("compare", help="think vs nothink vs latent on the tiny world at one budget")
    c.add_argument("--world", help="tiny world directory (default: $LRT_TINY_DIR or ~/.cache/lrt-bench/tiny)")
    c.add_argument("--reasoner", help="reasoner checkpoint dir (default: an untrained G_φ, labelled so)")
    c.add_argument("--budget", type=int, default=256, help="max_gen_toks for every mode")
    c.add_argument("--answer-allowance", type=int, default=32)
    c.add_argument("--limit", type=int, default=0, help="first N eval problems (0 = all)")
    c.add_argument("--batch-size", type=int, default=32)
    c.add_argument("--modes", default="think,nothink,latent")
    c.add_argument("--num-latents", type=int, default=16, help="latents of the untrained G_φ")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", help="also write the results to this JSON file")
    c.set_defaults(func=cmd_compare)

    # Subcommands that own a module each; importing them loads no torch / lm_eval.
    from lrt_bench.tools import bench, demo, leaderboard, redundancy, router_sweep

    bench.add_parser(sub)
    demo.add_parser(sub)
    leaderboard.add_parser(sub)
    redundancy.add_parser(sub)
    router_sweep.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LRTError as e:
        print(f"lrt-bench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
