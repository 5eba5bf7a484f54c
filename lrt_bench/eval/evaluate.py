"""Run lm-eval in-process, exactly as `lm_eval --model lrt ... --output_path OUT --log_samples` would.

The demo and the tiny-world proof call this instead of spawning the CLI (no second interpreter start,
one torch import). Results land in lm-eval's own layout (OUT/<model>/results_<time>.json plus sample
logs), so `lrt-bench leaderboard` and any lm-eval tooling read them like CLI output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_TASK_MANAGERS: dict[bool, object] = {}


def task_manager(ours_only: bool = True):
    """One TaskManager per process. Indexing lm-eval's thousands of built-in task YAMLs takes 10-40 s
    on a small CPU, so by default only our task folder is indexed (the start-up hook adds it)."""
    if ours_only not in _TASK_MANAGERS:
        from lm_eval.tasks import TaskManager

        _TASK_MANAGERS[ours_only] = TaskManager(include_defaults=not ours_only)
    return _TASK_MANAGERS[ours_only]


def model_args_string(args: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in args.items() if v is not None)


def gen_kwargs_string(gen_kwargs: dict[str, Any] | None) -> str | None:
    """lm-eval's `--gen_kwargs` form, `k=v,k=v` (None for none)."""
    return ",".join(f"{k}={v}" for k, v in (gen_kwargs or {}).items()) or None


def lm_eval_command(
    model_args: dict[str, Any],
    tasks: list[str],
    output_path: str | Path,
    *,
    model: str = "lrt",
    gen_kwargs: dict[str, Any] | None = None,
    limit: int | float | None = None,
    batch_size: int = 32,
    log_samples: bool = True,
    seed: int = 0,
    device: str = "cpu",
) -> list[str]:
    """The `lm_eval` command line that evaluates as `run_lm_eval` with the same arguments does.

    The CLI's one difference: it also indexes lm-eval's built-in tasks (slow, same results).
    tests/test_demo.py runs one such command and compares its samples with the in-process run's.
    """
    argv = ["lm_eval", "--model", model, "--model_args", model_args_string(model_args), "--tasks", ",".join(tasks),
            "--batch_size", str(batch_size), "--device", device, "--seed", ",".join([str(seed)] * 4),
            "--output_path", str(output_path)]
    if gen_kwargs:
        argv += ["--gen_kwargs", gen_kwargs_string(gen_kwargs)]
    if limit is not None:
        argv += ["--limit", str(limit)]
    return argv + (["--log_samples"] if log_samples else [])


def run_lm_eval(
    model_args: dict[str, Any],
    tasks: list[str],
    output_path: str | Path,
    *,
    model: str = "lrt",
    gen_kwargs: dict[str, Any] | None = None,
    limit: int | float | None = None,
    batch_size: int = 32,
    log_samples: bool = True,
    seed: int = 0,
    device: str | None = None,
    builtin_tasks: bool = False,
) -> dict[str, Any]:
    """Evaluate and save; returns lm-eval's results dict (without the samples).

    device: default cuda when available, else cpu (lm-eval's HF backend would assume cuda).
    builtin_tasks: also index lm-eval's own tasks (slow); by default only the `lrt_*` tasks are known.
    """
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(output_path))
    results = simple_evaluate(
        model=model,
        model_args=model_args_string(model_args),
        tasks=tasks,
        batch_size=batch_size,
        device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
        limit=limit,
        log_samples=log_samples,
        evaluation_tracker=tracker,
        gen_kwargs=gen_kwargs_string(gen_kwargs),
        task_manager=task_manager(ours_only=not builtin_tasks),
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )
    samples = results.pop("samples", None) if log_samples else None
    tracker.save_results_aggregated(results=results, samples=samples)
    if log_samples and samples:
        for task_name in results["configs"]:
            tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    return json.loads(json.dumps(results, default=str))


def metric(results: dict[str, Any], task: str, name: str) -> float | None:
    """results["results"][task]["<name>,none"], or None."""
    v = results.get("results", {}).get(task, {}).get(f"{name},none")
    return float(v) if isinstance(v, (int, float)) else None
