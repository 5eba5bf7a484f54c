"""Sweep G_φ's shape on the tiny world: latents (4, 8, 16, 32, 64) x fusion (concat; hadamard on request), SFT only.

    python bench/tiny_sweep.py [--steps N] [--latents 4,8,16,32,64] [--fusions concat] \\
        [--out results/tiny/latent_count.json] [--runs runs/sweep] [--jobs N]

Each cell is one SFT run of trainers/recipes/tiny/sft.yaml with `fusion` and `num_latents` overridden, then
greedy latent-mode accuracy on the whole eval split (the run's own evaluation, through `LatentLM.generate`,
the path the `lrt` backend uses). Same seed, data order and step count for every cell, so the cells differ
only in shape; `--steps` defaults to the recipe's own `max_steps`, so each cell is the demo's SFT but for its
shape. Cells run `--jobs` at a time, each in its own process at one torch thread
(`lrt_bench.tools.stages`; RUNS/logs/<cell>.log holds its output); the JSON (with its provenance) and a
plot beside it (`<out>.png`) are rewritten as each finishes, so a killed sweep keeps what it measured and
a rerun resumes it.
The demo's FINDINGS.md reads `latent_count.json` from its output directory (the "latent count" row).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lrt_bench.errors import positive_int
from lrt_bench.io import atomic_write_bytes, atomic_write_json, read_jsonl
from lrt_bench.tools.stages import default_jobs

RECIPE = Path(__file__).resolve().parents[1] / "trainers" / "recipes" / "tiny" / "sft.yaml"


def plot(cells: list[dict]) -> bytes:
    """Accuracy against the number of latents, one line per fusion (log-2 x axis)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for fusion in sorted({c["fusion"] for c in cells}):
        pts = sorted((c["num_latents"], 100 * c["eval_accuracy"], c.get("eval_problems") or 1)
                     for c in cells if c["fusion"] == fusion)
        # 95% binomial interval of each cell's accuracy: the noise of one eval split
        err = [196 * ((a / 100) * (1 - a / 100) / n) ** 0.5 for _, a, n in pts]
        ax.errorbar([n for n, *_ in pts], [a for _, a, _ in pts], yerr=err, marker="o", capsize=3,
                    label=f"LRT after SFT ({fusion}), 95% interval")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({c["num_latents"] for c in cells}), [str(n) for n in sorted({c["num_latents"] for c in cells})])
    ax.set_xlabel("latents N")
    ax.set_ylabel("greedy accuracy (%)")
    ax.set_ylim(0, 100 * max(c["eval_accuracy"] for c in cells) + 10)
    ax.set_title("tiny world: accuracy by number of latents")
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def run_cell(fusion: str, num_latents: int, steps: int, eval_problems: int, run_dir: str) -> None:
    """One cell (a stage of lrt_bench.tools.stages): the tiny SFT recipe with this shape, then its greedy
    evaluation on `eval_problems` problems (the run's own, logged as its last line)."""
    from trainers import sft
    from trainers.config import SFTConfig

    sft.main(SFTConfig.load(RECIPE, {
        "fusion": fusion, "num_latents": num_latents, "max_steps": steps, "output_dir": run_dir,
        "overwrite": True, "eval_steps": steps, "eval_samples": eval_problems, "save_steps": 0,
        "progress": False, "warmup_steps": min(50, steps // 10),
    }))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=positive_int, default=None,
                   help="SFT steps per cell (default: the tiny SFT recipe's max_steps, as the demo trains)")
    p.add_argument("--fusions", default="concat")
    p.add_argument("--latents", default="4,8,16,32,64")
    p.add_argument("--runs", default="runs/sweep")
    p.add_argument("--out", default="results/tiny/latent_count.json")
    p.add_argument("--eval-problems", type=int, default=1000, help="eval problems per cell (the tiny split has 1,000)")
    p.add_argument("--jobs", type=positive_int, default=default_jobs(),
                   help="cells trained at once, each in its own process at one torch thread (default: one per "
                        "core, at most 4; the numbers do not depend on it)")
    args = p.parse_args()
    if args.steps is None:
        from trainers.config import SFTConfig

        args.steps = SFTConfig.load(RECIPE, {}).max_steps

    from rich.console import Console

    from lrt_bench.eval.data import tiny_dir
    from lrt_bench.provenance import provenance
    from lrt_bench.tools.stages import Stage, run_stages

    out = Path(args.out)
    prov = provenance()
    world = json.loads((tiny_dir() / "world.json").read_text())
    cells = json.loads(out.read_text())["cells"] if out.is_file() else []
    have = {(c["fusion"], c["num_latents"], c["steps"]) for c in cells}
    todo = {f"{fusion}-{n}": (fusion, int(n)) for fusion in args.fusions.split(",") for n in args.latents.split(",")
            if (fusion, int(n), args.steps) not in have}
    command = "python bench/tiny_sweep.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())

    def done(name: str, seconds: float) -> None:
        """Save the finished cell at once: a killed sweep keeps what it measured."""
        fusion, n = todo[name]
        last = read_jsonl(Path(args.runs) / name / "log.jsonl")[-1]
        cell = {"fusion": fusion, "num_latents": n, "steps": args.steps, "eval_accuracy": last["eval_accuracy"],
                "eval_problems": args.eval_problems, "final_loss": last["loss"], "seconds": round(seconds, 1)}
        cells.append(cell)
        cells.sort(key=lambda c: (c["fusion"], c["num_latents"], c["steps"]))
        atomic_write_json(out, {
            "recipe": str(RECIPE.relative_to(RECIPE.parents[3])), "cells": cells,
            "world_code_version": world.get("code_version"), "world_seed": world.get("seed"),
            "provenance": prov, "command": command, "jobs": args.jobs,
            "note": "greedy latent-mode accuracy on the tiny eval split after one SFT run per cell; seconds are "
                    "the wall time of the cell's run (training and its evaluation), with up to `jobs` cells at once"})
        atomic_write_bytes(out.with_suffix(".png"), plot(cells))
        print(json.dumps(cell), flush=True)

    # the largest cells first: the longest runs start at once
    stages = [Stage(name, run_cell, (fusion, n, args.steps, args.eval_problems, str(Path(args.runs) / name)),
                    cost=n, label=f"SFT, {n} latents, {fusion}") for name, (fusion, n) in todo.items()]
    run_stages(stages, args.jobs, Path(args.runs) / "logs", Console(), on_done=done)


if __name__ == "__main__":
    main()
