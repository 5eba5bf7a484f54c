"""Run a study's stages (trainings, evaluations, analyses) side by side: a small dependency scheduler.

A `Stage` is one picklable call (a module-level function and its arguments) with the stages it needs
first. `run_stages` runs up to `jobs` of them at once, each in a worker process of its own (spawned, so
no torch or lm-eval state is shared), and each at `STAGE_THREADS` torch thread: on 2 cores two stages
at one thread each keep both cores busy, where one stage at a time left one idle (the tiny recipes
train at one thread; a trainer's `torch_threads` is process-wide, so the evaluations after it ran at
one thread too). One thread per stage also makes a stage's numbers independent of how many run at
once and of how many cores the machine has.

Of the ready stages, the one with the longest remaining path (its cost plus that of the longest chain
that waits on it) starts first. With several jobs each stage's stdout and stderr go to its own log file
and the console shows one row per running stage (a training's row counts its steps from its
log.jsonl); with one job the stages run in this process, in the same order, printing as they go.
The first stage that fails stops the others; its error names its log and its documented command.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrt_bench.errors import LRTError

STAGE_THREADS = 1  # torch threads per stage (see the module's docstring)
POLL_S = 0.5  # how often the scheduler looks at its workers and their logs


@dataclass(frozen=True)
class Stage:
    """One unit of work: `call(*args)` in a worker, once every stage named in `after` has finished."""

    name: str  # unique, e.g. "train/sft" or "results/b16/think"; names its log file
    call: Callable[..., Any]  # module-level (a worker imports it by name)
    args: tuple[Any, ...] = ()
    after: tuple[str, ...] = ()
    cost: float = 1.0  # estimated seconds: only orders the ready stages
    command: str = ""  # the documented command that reruns this stage alone (for errors)
    steps_log: Path | None = None  # a trainer's log.jsonl: its first line's max_steps, its last line's step
    label: str = ""  # what the console calls it (default: name)


def default_jobs() -> int:
    """Stages at once by default: one per core, at most 4 (the demo's longest chain, SFT -> GRPO ->
    its evaluations, bounds what more workers could gain)."""
    return max(1, min(4, os.cpu_count() or 1))


def _ordered(stages: Sequence[Stage]) -> dict[str, float]:
    """Each stage's priority (its cost plus its heaviest chain of dependants), after checking that
    names are unique, dependencies exist and there is no cycle."""
    by_name = {s.name: s for s in stages}
    if len(by_name) != len(stages):
        dup = sorted(n for n, k in Counter(s.name for s in stages).items() if k > 1)
        raise LRTError(f"stage names must be unique: {', '.join(dup)} repeat")
    for s in stages:
        missing = [a for a in s.after if a not in by_name]
        if missing:
            raise LRTError(f"stage {s.name} waits on unknown stages {missing}")
    dependants: dict[str, list[str]] = {n: [] for n in by_name}
    for s in stages:
        for a in s.after:
            dependants[a].append(s.name)
    rank: dict[str, float] = {}
    visiting: set[str] = set()

    def visit(n: str) -> float:
        if n in rank:
            return rank[n]
        if n in visiting:
            raise LRTError(f"stage {n} depends on itself through {sorted(visiting)}")
        visiting.add(n)
        rank[n] = by_name[n].cost + max((visit(d) for d in dependants[n]), default=0.0)
        visiting.discard(n)
        return rank[n]

    for n in by_name:
        visit(n)
    return rank


def _log_path(logs: Path, name: str) -> Path:
    return logs / (name.replace("/", "_") + ".log")


def _run_logged(call: Callable[..., Any], args: tuple[Any, ...], log: str | None) -> float:
    """In a worker (or in-process when log is None): one stage at STAGE_THREADS thread, its output in
    `log`; returns its seconds. A failure's traceback goes to the log, and it comes back as an
    LRTError (any exception type pickles as that)."""
    import torch

    torch.set_num_threads(STAGE_THREADS)
    saved: tuple[int, int] | None = None
    if log is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        saved = (os.dup(1), os.dup(2))
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    t = time.perf_counter()
    try:
        call(*args)
    except BaseException as e:
        if log is None or isinstance(e, KeyboardInterrupt):
            raise
        traceback.print_exc()
        raise LRTError(f"{type(e).__name__}: {e}") from None
    finally:
        if saved is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    return time.perf_counter() - t


def _steps(log: Path | None) -> tuple[int, int | None]:
    """(last logged step, max_steps) of a trainer's log.jsonl so far; (0, None) before its first line.
    A last line still being written is skipped."""
    if log is None:
        return 0, None
    try:
        lines = log.read_text().splitlines()
        total = int(json.loads(lines[0])["max_steps"])
    except (OSError, IndexError, KeyError, TypeError, ValueError):
        return 0, None  # not written yet
    for line in reversed(lines):
        try:
            return int(json.loads(line).get("step", 0)), total
        except (AttributeError, TypeError, ValueError):
            continue
    return 0, total


def _fail(stage: Stage, error: BaseException, log: Path | None) -> LRTError:
    tail = ""
    if log is not None and log.is_file():
        lines = log.read_text(errors="replace").splitlines()[-30:]
        tail = "\n".join(lines)
        print(f"--- the last lines of {log} ---\n{tail}\n---", file=sys.stderr)
    where = f"; its output is in {log}" if log is not None else ""
    rerun = f"; rerun `{stage.command}` to see it alone" if stage.command else ""
    return LRTError(f"stage {stage.name} failed ({error}){where}{rerun}")


def run_stages(stages: Sequence[Stage], jobs: int, logs: Path, console,
               on_done: Callable[[str, float], None] | None = None) -> dict[str, float]:
    """Run every stage, at most `jobs` at once; returns each stage's own seconds.

    logs: the folder of the per-stage log files (with jobs > 1). console: a rich Console.
    on_done(name, seconds): called in this process as each stage finishes (e.g. to save what it measured).
    """
    if jobs < 1:
        raise LRTError(f"jobs must be >= 1, got {jobs}")
    rank = _ordered(stages)
    by_name = {s.name: s for s in stages}
    pending = sorted(stages, key=lambda s: -rank[s.name])  # stable: ties keep the given order
    done: dict[str, float] = {}

    def ready() -> list[Stage]:
        return [s for s in pending if all(a in done for a in s.after)]

    if jobs == 1 or len(stages) <= 1:
        while pending:
            (s, *_) = ready()
            pending.remove(s)
            console.rule(f"[bold]{s.label or s.name}")
            done[s.name] = _run_logged(s.call, s.args, None)
            if on_done is not None:
                on_done(s.name, done[s.name])
        return done

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    logs.mkdir(parents=True, exist_ok=True)
    n_workers = min(jobs, len(stages))
    console.print(f"{len(stages)} stages, {n_workers} at a time (one process and {STAGE_THREADS} torch thread "
                  f"each); each stage's output: {logs}/<stage>.log")
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(n_workers)
    running: dict[str, tuple[Any, int]] = {}  # name -> (AsyncResult, progress row)
    t0 = time.perf_counter()
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            overall = bar.add_task("all stages", total=len(stages))
            while pending or running:
                for s in ready()[: n_workers - len(running)]:
                    pending.remove(s)
                    log = _log_path(logs, s.name)
                    row = bar.add_task(f"  {s.label or s.name}", total=None)
                    running[s.name] = (pool.apply_async(_run_logged, (s.call, s.args, str(log))), row)
                time.sleep(POLL_S)
                for name, (res, row) in list(running.items()):
                    s = by_name[name]
                    if not res.ready():
                        step, total = _steps(s.steps_log)
                        if total:
                            bar.update(row, completed=step, total=total)
                        continue
                    try:
                        done[name] = res.get()
                    except Exception as e:  # noqa: BLE001 - any failure of the stage stops the run
                        raise _fail(s, e, _log_path(logs, name)) from None
                    del running[name]
                    bar.remove_task(row)
                    bar.advance(overall)
                    console.print(f"[green]done[/] {s.label or name} ({done[name]:.0f} s; "
                                  f"{time.perf_counter() - t0:.0f} s in)")
                    if on_done is not None:
                        on_done(name, done[name])
        pool.close()
    finally:
        pool.terminate()  # a failure or ^C: the other stages stop too (each is resumable)
        pool.join()
    return done
