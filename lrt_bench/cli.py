"""`lrt-bench`: the command line.

    lrt-bench demo [--quick] [--out DIR]          the whole study on the tiny world, offline
    lrt-bench tiny build [--out DIR] [--quick] [--seed N] [--force]
    lrt-bench leaderboard [PATH ...] [--paper] [--markdown FILE] [--csv FILE] [--plot FILE.png]
    lrt-bench bench [--real-size qwen3-1.7b] [--reasoner DIR] [--vs-hf]   think vs nothink vs latent
    lrt-bench redundancy --model DIR|ID --task TASK [--p 0,0.1,...] [--granularity token,step]
    lrt-bench router-sweep --reasoner DIR --points CSV --out DIR

Errors in the user's input print one line (`lrt-bench: error: ...`) and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lrt_bench.errors import LRTError, nonneg_int, positive_int


def default_tiny_dir() -> Path:
    """Where `tiny build` writes and every tiny-world default reads: $LRT_TINY_DIR or the user cache."""
    from lrt_bench.eval.data import tiny_dir

    return tiny_dir()


def _console():
    from rich.console import Console

    return Console()


# --------------------------------------------------------------------------------------- tiny build


def cmd_tiny_build(args: argparse.Namespace) -> int:
    from lrt_bench.tiny.build import TRAIN_THREADS, build_tiny_world

    out = Path(args.out) if args.out else default_tiny_dir()
    world = build_tiny_world(out, quick=args.quick, seed=args.seed, progress=not args.no_progress, force=args.force,
                             threads=args.threads or TRAIN_THREADS)
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


# -------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lrt-bench", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    tiny = sub.add_parser("tiny", help="the tiny world: an offline task and base model built on CPU")
    tiny_sub = tiny.add_subparsers(dest="tiny_command", required=True)
    b = tiny_sub.add_parser("build", help="build (or reuse) the tiny world")
    b.add_argument("--out", help="output directory (default: $LRT_TINY_DIR or ~/.cache/lrt-bench/tiny)")
    b.add_argument("--quick", action="store_true", help="a smaller, faster build for tests and smoke runs")
    b.add_argument("--seed", type=nonneg_int, default=0)
    b.add_argument("--force", action="store_true", help="rebuild even if a matching world exists")
    b.add_argument("--threads", type=positive_int, default=None,
                   help="torch CPU threads for the build (default 2, 1 on a one-core machine; the weights do not "
                        "depend on it): pass 1 when two builds share two cores")
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(func=cmd_tiny_build)

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
