"""`lrt-bench demo`: the whole study on the tiny world, offline, in one command.

    lrt-bench demo [--quick] [--out DIR] [--world DIR] [--jobs N]

1. builds the tiny world (cached: a finished world is reused);
2. trains the LRT reasoner with the tiny SFT and GRPO recipes, and the ShorterBetter and LC-R1
   baselines with their tiny recipes (trainers/recipes/tiny/*.yaml);
3. evaluates think, nothink, LRT (untrained, after SFT, after GRPO) and the baselines through the
   `lrt` lm-eval backend on `lrt_tiny` over a budget sweep (16, 64, 512 tokens for think, NoThinking
   and LRT; the smallest and largest for the baselines; --quick: 16 and 512);
4. runs the redundancy analysis on the base, and samples groups of 8 traces per problem from it
   (`lrt_bench.tools.traces`: how much shorter the shortest right one is than the group's mean);
   (2-4 are stages that each start once what they need is there, --jobs at a time, each in a worker
   process at one torch thread, its output in OUT/logs/<stage>.log: `lrt_bench.tools.stages`)
5. writes every lm-eval result, training log and plot under --out, and OUT/commands.sh: the documented
   command of every stage (`python -m trainers.sft --config ...`, `lm_eval --model lrt ...`,
   `lrt-bench redundancy ...`); run one after another, at one thread each (OMP_NUM_THREADS=1), they
   give the same numbers. The trainers run in their worker through their command-line entry point
   (`trainers.cli.run_main`, the same argv); lm-eval runs in its worker with the command's arguments,
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
# Rough seconds of each stage on 2 cores at one thread (the committed seed-0 run): they only order the
# ready stages, longest remaining chain first (lrt_bench.tools.stages), so that SFT -> GRPO -> LRT's
# evaluations, the longest chain, starts at once and the short evaluations fill the gaps.
TRAIN_COST_S = {"sft": 725, "grpo": 86, "shorterbetter": 378, "lcr1": 315}
EVAL_COST_S = {"think": 80, "nothink": 20, "latent": 20, "hybrid": 40}  # per (method, budget) cell
REDUNDANCY_COST_S = 15
TRACES_COST_S = 30


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
    traces_problems: int = 100


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
QUICK = Plan(quick=True, sft_steps=150, grpo_steps=8, baseline_steps=4, eval_limit=24, redundancy_limit=16,
             traces_problems=16)


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


def _train_command(kind: str, recipe: str, overrides: dict[str, Any]) -> tuple[list[str], str]:
    """The argv (after the program) and the documented command of `python -m trainers.<kind> --config <tiny
    recipe> --key value ... --overwrite`."""
    argv = ["--config", _shown(recipes_dir() / recipe),
            *[a for k, v in overrides.items() for a in (f"--{k}", str(v))], "--overwrite"]
    return argv, shlex.join(["python", "-m", f"trainers.{kind}", *argv])


def _train(kind: str, argv: list[str], out: str) -> None:
    """A stage: the trainer's command-line entry point with that argv, in-process (`trainers.cli.run_main`).
    Its output is complete when train_summary.json, written last, is there. (A failure's message gets
    the command that reruns it from the scheduler, `stages.run_stages`.)"""
    from lrt_bench.errors import LRTError
    from trainers import grpo, sft
    from trainers.cli import run_main
    from trainers.config import GRPOConfig, SFTConfig

    module, cls = (sft, SFTConfig) if kind == "sft" else (grpo, GRPOConfig)
    rc = run_main(module.main, cls, f"python -m trainers.{kind}", argv)
    if rc != 0 or not (Path(out) / "train_summary.json").is_file():
        raise LRTError(f"training stopped (exit {rc}, its error is above)")


def _evaluate(model_args: dict[str, Any], where: str, how: dict[str, Any]) -> None:
    """A stage: one lm-eval run of `lrt_tiny` (in-process: see the module's docstring)."""
    from lrt_bench.eval.evaluate import run_lm_eval

    run_lm_eval(model_args, ["lrt_tiny"], where, **how)


def _redundancy(world: str, limit: int, out: str) -> None:
    """A stage: the redundancy analysis of the base's own traces."""
    from rich.console import Console

    from lrt_bench.tools.redundancy import run_redundancy

    run_redundancy(model=world, task="lrt_tiny", limit=limit, out=Path(out), console=Console())


def _traces(world: str, problems: int, out: str) -> None:
    """A stage: the spread of the base's trace lengths in groups of 8 samples (the "traces" finding)."""
    from lrt_bench.tools.traces import write_traces

    write_traces(world, out, problems=problems)


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

    from lrt_bench.eval.evaluate import lm_eval_command
    from lrt_bench.io import atomic_write_bytes, atomic_write_json, atomic_write_text, check_writable_dir
    from lrt_bench.provenance import provenance
    from lrt_bench.tiny.build import build_tiny_world
    from lrt_bench.tools import leaderboard
    from lrt_bench.tools.findings import TRACES_FILE, write_findings
    from lrt_bench.tools.stages import STAGE_THREADS, Stage, default_jobs, run_stages

    console = Console()
    plan = QUICK if args.quick else FULL
    jobs = getattr(args, "jobs", None) or default_jobs()
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

    # 2-4. the stages: LRT's training (SFT, then GRPO from the SFT reasoner) and the two explicit
    # baselines', every method's evaluation at its budgets, the redundancy analysis; each starts once
    # what it needs is there, `--jobs` at a time (lrt_bench.tools.stages)
    def steps(n: int | None) -> dict[str, Any]:
        return {} if n is None else {"max_steps": n, "warmup_steps": 0, "save_steps": 0,
                                     "eval_steps": 0, "logging_steps": max(1, n // 10)}

    stages: list[Stage] = []

    def planned(*names: str | None) -> tuple[str, ...]:
        """Those of `names` that are stages of this run (a reused stage is not waited on)."""
        return tuple(n for n in names if n and any(s.name == n for s in stages))

    def trained(kind: str, name: str, overrides: dict[str, Any], after: tuple[str, ...] = ()) -> Path:
        """Plan the training stage train/<name> (tiny recipe <name>.yaml); returns its output folder. A
        stage whose output is complete (train_summary.json is written last) is reused, so an interrupted
        demo picks up where it stopped; --overwrite starts afresh."""
        d = train / name
        argv, command = _train_command(kind, f"{name}.yaml", {"output_dir": _shown(d), **overrides})
        commands.append(command)
        if (d / "train_summary.json").is_file():
            console.print(f"[dim]reusing {d} (finished earlier; --overwrite retrains)")
        else:
            stages.append(Stage(f"train/{name}", _train, (kind, argv, str(d)), after=planned(*after),
                                cost=TRAIN_COST_S.get(name, 300), command=command, steps_log=d / "log.jsonl",
                                label=f"train {name}"))
        return d

    untrained = train / "untrained" / "reasoner"
    if not untrained.is_dir():
        _untrained_reasoner(world, train / "untrained")
    sft_dir = trained("sft", "sft", steps(plan.sft_steps))
    grpo_dir = trained("grpo", "grpo", {"reasoner": _shown(sft_dir / "reasoner"), **steps(plan.grpo_steps)},
                       after=("train/sft",))
    baselines = {name: trained("grpo", name, steps(plan.baseline_steps)) / "model"
                 for name in ("shorterbetter", "lcr1") if (recipes_dir() / f"{name}.yaml").is_file()}

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
    needs = {"lrt-sft": "train/sft", "lrt": "train/grpo", **{n: f"train/{n}" for n in baselines}}
    results_dir = out / "results"
    for budget in plan.budgets:
        for name, margs in methods.items():
            if not plan.quick and budget not in budgets_of(name, plan.budgets):
                continue
            where = results_dir / f"b{budget}" / name
            how = dict(gen_kwargs={"max_gen_toks": budget}, limit=plan.eval_limit, batch_size=EVAL_BATCH_SIZE,
                       device=device)
            command = shlex.join(lm_eval_command(margs, ["lrt_tiny"], _shown(where), **how))
            commands.append(command)
            if any(where.rglob("results_*.json")):
                console.print(f"[dim]reusing {where}")
                reused.append(f"results/b{budget}/{name}")
                continue
            stages.append(Stage(f"results/b{budget}/{name}", _evaluate, (margs, _shown(where), how),
                                after=planned(needs.get(name)),
                                cost=EVAL_COST_S[margs["mode"]], command=command,
                                label=f"evaluate {name}, budget {budget}"))
    redundancy_cmd = shlex.join(["lrt-bench", "redundancy", "--model", _shown(world), "--task", "lrt_tiny",
                                 "--limit", str(plan.redundancy_limit), "--out", _shown(out / "redundancy")])
    commands.append(redundancy_cmd)
    stages.append(Stage("redundancy", _redundancy, (str(world), plan.redundancy_limit, str(out / "redundancy")),
                        cost=REDUNDANCY_COST_S, command=redundancy_cmd, label="redundancy analysis"))
    traces_cmd = shlex.join(["python", "-m", "lrt_bench.tools.traces", "--world", _shown(world),
                             "--problems", str(plan.traces_problems), "--out", _shown(out / TRACES_FILE)])
    commands.append(traces_cmd)
    if (out / TRACES_FILE).is_file():
        reused.append("traces")
    else:
        stages.append(Stage("traces", _traces, (str(world), plan.traces_problems, str(out / TRACES_FILE)),
                            cost=TRACES_COST_S, command=traces_cmd, label="trace lengths in groups of 8"))
    t = time.perf_counter()
    seconds = run_stages(stages, jobs, out / "logs", console)
    timings["stages"] = time.perf_counter() - t
    for part, prefix in (("train", "train/"), ("evaluate", "results/"), ("redundancy", "redundancy"),
                         ("traces", "traces")):
        timings[part] = sum(v for k, v in seconds.items() if k.startswith(prefix))

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
        "reused": reused, "commands": commands, "provenance": prov,
        "jobs": jobs, "stage_threads": STAGE_THREADS,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "stage_seconds": {k: round(v, 1) for k, v in seconds.items()}})
    # 7. the paper's findings against their targets, with paired intervals
    console.print(write_findings(out))
    console.print(f"demo done in {timings['total'] / 60:.1f} min: results, logs and plots under {out}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    from lrt_bench.errors import nonneg_int, positive_int
    from lrt_bench.tools.stages import default_jobs

    p = subparsers.add_parser("demo", help="the whole study on the tiny world, offline: train, evaluate, analyse")
    p.add_argument("--quick", action="store_true", help="quick world, fewer steps and problems (a smoke run)")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--world", help="tiny world directory (default: $LRT_TINY_DIR, or its -quick sibling with --quick)")
    p.add_argument("--seed", type=nonneg_int, default=None,
                   help="the tiny world's seed (default: that of the world already in --world, else 0); a world "
                        "with another seed is rebuilt, as `lrt-bench tiny build --seed` does")
    p.add_argument("--jobs", type=positive_int, default=default_jobs(),
                   help=f"stages run at once, each in its own process at one torch thread (default "
                        f"{default_jobs()}: one per core, at most 4); 1 runs them one after another in this process")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh (default: reuse the finished stages of an earlier run in --out)")
    p.set_defaults(func=run_demo)
    return p
