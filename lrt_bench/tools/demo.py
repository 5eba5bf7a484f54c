"""`lrt-bench demo`: the whole study on the tiny world, offline, in one command.

    lrt-bench demo [--quick] [--out DIR] [--world DIR]

1. builds the tiny world (cached: a finished world is reused);
2. trains the LRT reasoner with the tiny SFT and GRPO recipes, and the ShorterBetter and LC-R1
   baselines with their tiny recipes (trainers/recipes/tiny/*.yaml);
3. evaluates think, nothink, LRT (untrained, after SFT, after GRPO) and the baselines through the
   `lrt` lm-eval backend on `lrt_tiny` over a budget sweep (16, 64, 512 tokens for think, NoThinking
   and LRT; the smallest and largest for the baselines; --quick: 16 and 512);
4. runs the redundancy analysis on the base;
5. writes every lm-eval result, training log and plot under --out, and OUT/commands.sh: the documented
   command of every stage it ran (`python -m trainers.sft --config ...`, `lm_eval --model lrt ...`,
   `lrt-bench redundancy ...`). The trainers run in-process through their command-line entry point
   (`trainers.cli.run_main`, the same argv); lm-eval runs in-process with the command's arguments,
   because its CLI would index its thousands of built-in tasks again for each of the ~20 evaluations
   (tests/test_demo.py runs a recorded lm_eval command and gets the demo's samples);
6. prints the leaderboard (and writes it as OUT/LEADERBOARD.md, OUT/leaderboard.csv/.png: accuracy
   against budget and against generated tokens, per method);
7. writes OUT/FINDINGS.md: each of the paper's findings, its target, ours, the paired bootstrap 95%
   interval of each difference, met or not (`lrt_bench.tools.findings`).

--quick uses the quick world and fewer steps and problems: a smoke run of every path, whose numbers
are not the study's.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SMALL_BUDGET = 16  # tokens: below the tiny base's shortest traces, so think mode is cut
# Rows per decode batch (64 prompts x 4 samples). On 2 cores a tiny base's step costs little more at 256
# rows than at 64, so larger batches take fewer steps in all: think at B=64 took 47 s instead of 73-91 s
# for 512 rows (measured under load, alternating).
EVAL_BATCH_SIZE = 256


@dataclass(frozen=True)
class Plan:
    """How much of each stage a demo runs (the full plan uses the recipes' own step counts)."""

    quick: bool
    sft_steps: int | None
    grpo_steps: int | None
    baseline_steps: int | None
    eval_limit: int | None
    redundancy_limit: int
    budgets: tuple[int, ...] = (512, SMALL_BUDGET)


# The budget sweep of the full run: 16 and 64 tokens cut the tiny base's traces (~80 tokens), 512 none.
# think, NoThinking and LRT run at every budget; the baselines at the smallest and the largest; the
# other LRT stages at the largest. (Each think-mode cell at a small budget decodes the 106-token forced
# close: on 1,000 problems x 4 samples that is ~3 min on 2 cores, so the sweep is kept short.)
SWEEP = (16, 64, 512)
SWEEP_METHODS = ("think", "nothink", "lrt")
FULL = Plan(quick=False, sft_steps=None, grpo_steps=None, baseline_steps=None, eval_limit=None, redundancy_limit=100,
            budgets=SWEEP)


def budgets_of(method: str, budgets: tuple[int, ...]) -> tuple[int, ...]:
    """The budgets a method is evaluated at (see SWEEP)."""
    if method in SWEEP_METHODS:
        return budgets
    if method in ("lrt-sft", "lrt-untrained"):
        return (max(budgets),)
    return tuple(sorted({min(budgets), max(budgets)}))
QUICK = Plan(quick=True, sft_steps=150, grpo_steps=8, baseline_steps=4, eval_limit=24, redundancy_limit=16)


def recipes_dir() -> Path:
    import trainers

    return Path(trainers.__file__).resolve().parent / "recipes" / "tiny"


def _world_dir(args: argparse.Namespace) -> Path:
    from lrt_bench.eval.data import tiny_dir

    if args.world:
        return Path(args.world).expanduser()
    base = tiny_dir()
    return base.with_name(base.name + "-quick") if args.quick else base


def _shown(path: Path) -> str:
    """A path as a command shows it: relative to the working directory when it lies inside it."""
    p = Path(path).resolve()
    return str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else str(p)


def _world_seed(args: argparse.Namespace, world: Path) -> int:
    """--seed, else the seed of the world already in `world` (so `--world DIR` uses DIR's world as it
    is, whatever its seed), else 0."""
    from lrt_bench.tiny.build import read_world

    if args.seed is not None:
        return args.seed
    seed = (read_world(world) or {}).get("seed", 0)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else 0


def _train(kind: str, recipe: str, overrides: dict[str, Any], console, commands: list[str]) -> Path:
    """Run `python -m trainers.<kind> --config <tiny recipe> --key value ...` in-process: the trainer's
    command-line entry point with that argv, recorded in `commands`.

    A stage whose output is complete (train_summary.json is written last) is reused, so an
    interrupted demo picks up where it stopped; --overwrite starts afresh.
    """
    from lrt_bench.errors import LRTError
    from trainers import grpo, sft
    from trainers.cli import run_main
    from trainers.config import GRPOConfig, SFTConfig

    prog = f"python -m trainers.{kind}"
    argv = ["--config", _shown(recipes_dir() / recipe),
            *[a for k, v in overrides.items() for a in (f"--{k}", str(v))], "--overwrite"]
    command = shlex.join([*prog.split(), *argv])
    commands.append(command)
    out = Path(overrides["output_dir"])
    if (out / "train_summary.json").is_file():
        console.print(f"[dim]reusing {out} (finished earlier; --overwrite retrains)")
        return out
    console.rule(f"[bold]train: {recipe}")
    module, cls = (sft, SFTConfig) if kind == "sft" else (grpo, GRPOConfig)
    rc = run_main(module.main, cls, prog, argv)
    if rc != 0 or not (out / "train_summary.json").is_file():
        raise LRTError(f"training stopped (exit {rc}, its error is above): rerun `{command}` to see it alone")
    return out


def _untrained_reasoner(world: Path, out: Path) -> Path:
    """The SFT recipe's G_φ before any step (initialised from the base), saved so lm-eval can load it."""
    import torch

    from lrt_bench.core.reasoner import save_reasoner
    from trainers.config import SFTConfig
    from trainers.models import build_reasoner, load_base

    cfg = SFTConfig.load(recipes_dir() / "sft.yaml", {"output_dir": str(out)})
    torch.manual_seed(cfg.seed)
    base, _ = load_base(cfg, torch.device("cpu"))
    net = build_reasoner(cfg, base)
    return save_reasoner(net.eval(), out / "reasoner", base_id=str(world / "base"),
                         recipe={"trainer": "untrained", **cfg.to_dict()}, step=0)


def run_demo(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    from lrt_bench.eval.evaluate import lm_eval_command, run_lm_eval
    from lrt_bench.io import atomic_write_bytes, atomic_write_json, atomic_write_text, check_writable_dir
    from lrt_bench.provenance import provenance
    from lrt_bench.tiny.build import build_tiny_world
    from lrt_bench.tools import leaderboard
    from lrt_bench.tools.findings import write_findings
    from lrt_bench.tools.redundancy import run_redundancy

    console = Console()
    plan = QUICK if args.quick else FULL
    out = check_writable_dir(args.out, "--out")
    if args.world:
        check_writable_dir(args.world, "--world")
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    prov = provenance()  # before anything is written: the commit is the code's, not dirtied by the outputs

    # 1. the world (cached), and every tiny: path pointing at it
    world = _world_dir(args)
    console.rule("[bold]tiny world")
    reused: list[str] = []  # stages an earlier run finished: this run's times do not include them
    if (world / "world.json").is_file():
        reused.append(f"world {world}")
    world_meta = build_tiny_world(world, quick=plan.quick, seed=_world_seed(args, world), progress=True)
    os.environ["LRT_TINY_DIR"] = str(world)
    timings["world"] = time.perf_counter() - t0
    if out.exists() and args.overwrite:
        shutil.rmtree(out)
    reused += [f"train/{d.parent.name}" for d in sorted((out / "train").glob("*/train_summary.json"))]
    train = out / "train"
    commands: list[str] = []  # every stage's documented command, in order (OUT/commands.sh)

    # 2. training: LRT (SFT then GRPO from the SFT reasoner), then the two explicit baselines
    def steps(n: int | None) -> dict[str, Any]:
        return {} if n is None else {"max_steps": n, "warmup_steps": 0, "save_steps": 0,
                                     "eval_steps": 0, "logging_steps": max(1, n // 10)}

    def trained(kind: str, recipe: str, overrides: dict[str, Any]) -> Path:
        return _train(kind, recipe, overrides, console, commands)

    t = time.perf_counter()
    untrained = train / "untrained" / "reasoner"
    if not untrained.is_dir():
        _untrained_reasoner(world, train / "untrained")
    sft_dir = trained("sft", "sft.yaml", {"output_dir": _shown(train / "sft"), **steps(plan.sft_steps)})
    grpo_dir = trained("grpo", "grpo.yaml", {"output_dir": _shown(train / "grpo"),
                                             "reasoner": _shown(sft_dir / "reasoner"), **steps(plan.grpo_steps)})
    baselines = {}
    for name in ("shorterbetter", "lcr1"):
        if (recipes_dir() / f"{name}.yaml").is_file():
            d = trained("grpo", f"{name}.yaml", {"output_dir": _shown(train / name), **steps(plan.baseline_steps)})
            baselines[name] = d / "model"
    timings["train"] = time.perf_counter() - t

    # 3. evaluation through the lrt backend, every method at every budget
    t = time.perf_counter()
    base = _shown(world / "base")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    methods: dict[str, dict[str, Any]] = {
        "think": {"pretrained": base, "mode": "think"},
        "nothink": {"pretrained": base, "mode": "nothink"},
        "lrt-untrained": {"pretrained": base, "mode": "latent", "reasoner": _shown(untrained)},
        "lrt-sft": {"pretrained": base, "mode": "latent", "reasoner": _shown(sft_dir / "reasoner")},
        "lrt": {"pretrained": base, "mode": "latent", "reasoner": _shown(grpo_dir / "reasoner")},
        **{name: {"pretrained": _shown(d), "mode": "think"} for name, d in baselines.items()},
    }
    results_dir = out / "results"
    for budget in plan.budgets:
        for name, margs in methods.items():
            if not plan.quick and budget not in budgets_of(name, plan.budgets):
                continue
            where = results_dir / f"b{budget}" / name
            how = dict(gen_kwargs={"max_gen_toks": budget}, limit=plan.eval_limit, batch_size=EVAL_BATCH_SIZE,
                       device=device)
            commands.append(shlex.join(lm_eval_command(margs, ["lrt_tiny"], _shown(where), **how)))
            if any(where.rglob("results_*.json")):
                console.print(f"[dim]reusing {where}")
                reused.append(f"results/b{budget}/{name}")
                continue
            console.rule(f"[bold]evaluate: {name}, budget {budget}")
            run_lm_eval(margs, ["lrt_tiny"], where, **how)
    timings["evaluate"] = time.perf_counter() - t

    # 4. redundancy of the base's own traces
    t = time.perf_counter()
    console.rule("[bold]redundancy analysis")
    commands.append(shlex.join(["lrt-bench", "redundancy", "--model", _shown(world), "--task", "lrt_tiny",
                                "--limit", str(plan.redundancy_limit), "--out", _shown(out / "redundancy")]))
    run_redundancy(model=str(world), task="lrt_tiny", limit=plan.redundancy_limit, out=out / "redundancy",
                   console=console)
    timings["redundancy"] = time.perf_counter() - t

    # 5-6. leaderboard
    notes: list[str] = []
    rows = leaderboard.load_results([results_dir], notes=notes)
    atomic_write_text(out / "LEADERBOARD.md", leaderboard.render(rows, "markdown", notes=notes,
                                                                 title="Leaderboard: the tiny world (lrt-bench demo)"))
    atomic_write_text(out / "leaderboard.csv", leaderboard.render(rows, "csv"))
    atomic_write_bytes(out / "leaderboard.png", leaderboard.plot_png(rows))
    console.print(leaderboard.render_rich(rows, notes=notes))
    timings["total"] = time.perf_counter() - t0
    commands.append(shlex.join(["python", "-m", "lrt_bench.tools.findings", _shown(out)]))
    atomic_write_text(out / "commands.sh", "#!/usr/bin/env bash\n# The documented command of every stage of this "
                      "demo run, in order (the leaderboard and the untrained G_φ are written by the demo itself).\n"
                      "set -euo pipefail\n" + "".join(c + "\n" for c in commands))
    atomic_write_json(out / "demo.json", {
        "quick": plan.quick, "world": str(world), "plan": plan.__dict__,
        "world_code_version": world_meta.get("code_version"), "world_seed": world_meta.get("seed"),
        "reused": reused, "commands": commands, "provenance": prov, "seconds": {k: round(v, 1) for k, v in timings.items()}})
    # 7. the paper's findings against their targets, with paired intervals
    console.print(write_findings(out))
    console.print(f"demo done in {timings['total'] / 60:.1f} min: results, logs and plots under {out}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    from lrt_bench.errors import nonneg_int

    p = subparsers.add_parser("demo", help="the whole study on the tiny world, offline: train, evaluate, analyse")
    p.add_argument("--quick", action="store_true", help="quick world, fewer steps and problems (a smoke run)")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--world", help="tiny world directory (default: $LRT_TINY_DIR, or its -quick sibling with --quick)")
    p.add_argument("--seed", type=nonneg_int, default=None,
                   help="the tiny world's seed (default: that of the world already in --world, else 0); a world "
                        "with another seed is rebuilt, as `lrt-bench tiny build --seed` does")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh (default: reuse the finished stages of an earlier run in --out)")
    p.set_defaults(func=run_demo)
    return p
