"""A trainer's command line: `--config RECIPE.yaml` plus `--key value` overrides, and `run_main`, which
prints bad input as one line (exit 2) and removes the output directory of a fresh run that failed before
its first checkpoint."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from lrt_bench.errors import LRTError
from trainers.config import TrainConfig, parse_overrides
from trainers.output import RunComplete


def parse_cli(cls: type[TrainConfig], argv: list[str] | None, prog: str) -> TrainConfig:
    """`--config RECIPE.yaml` plus `--key value` overrides of any recipe key."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=f"{cls.__doc__.splitlines()[0]} Any recipe key can be overridden with --key value.",
        epilog="Common overrides: --base, --reasoner, --dataset, --max_steps, --output_dir, --resume, --overwrite",
    )
    p.add_argument("--config", help="recipe YAML (trainers/recipes/...)")
    args, rest = p.parse_known_args(argv)
    return cls.load(args.config, parse_overrides(rest))


def run_main(main, cls: type[TrainConfig], prog: str, argv: list[str] | None = None) -> int:
    """Run a trainer; an LRTError prints one line and exits 2 (no traceback for bad input).

    A fresh run that fails before its first checkpoint leaves no output directory behind (so the
    same command can be rerun as it was); one that fails later keeps its checkpoints for --resume.
    """
    cfg = None
    created = False
    try:
        cfg = parse_cli(cls, argv, prog)
        out = Path(cfg.output_dir).expanduser()
        # this run makes the dir: it is new, empty, or replaced (--overwrite)
        created = not cfg.resume and (not out.exists() or cfg.overwrite or (out.is_dir() and not any(out.iterdir())))
        main(cfg)
    except RunComplete as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 0
    except LRTError as e:
        print(f"{prog}: error: {e}{_cleanup(cfg, created)}", file=sys.stderr)
        return 2
    except BaseException:
        note = _cleanup(cfg, created)
        if note:
            print(f"{prog}:{note}", file=sys.stderr)
        raise
    return 0


def _cleanup(cfg: TrainConfig | None, created: bool) -> str:
    """After a failure: remove an output dir this run created that holds no checkpoint; say what was kept."""
    from trainers import checkpoint as ckpt

    if cfg is None or not created or os.environ.get("RANK", "0") not in ("", "0"):
        return ""
    out = Path(cfg.output_dir).expanduser()
    if not out.is_dir():
        return ""
    if ckpt.latest_checkpoint(out) is not None:
        return f" (its checkpoints are kept in {out}: add --resume to continue the run)"
    shutil.rmtree(out, ignore_errors=True)
    return ""
