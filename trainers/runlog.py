"""What a run reports: the JSONL log and progress bar (`RunLog`), the greedy evaluation between steps,
and the environment noted at the start."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch


class RunLog:
    """One JSONL line per logged step (main process only) and a rich progress bar."""

    def __init__(self, out: Path, total: int, start: int, title: str, enabled: bool, progress: bool):
        self.path = out / "log.jsonl"
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self._bar = None
        if not enabled:
            return
        if self.path.is_file():
            # Resumed: drop lines past the checkpoint so the log reads as one run (all of them when no
            # checkpoint was reached: the run starts over at step 0), and a line cut short by a kill.
            import json

            kept = []
            for ln in self.path.read_text().splitlines():
                try:
                    if start > 0 and json.loads(ln).get("step", 0) <= start:
                        kept.append(ln)
                except json.JSONDecodeError:
                    pass
            self.path.write_text("".join(k + "\n" for k in kept))
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if progress:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
            )
            self._bar.start()
            self._task = self._bar.add_task(title, total=total, completed=start, info="")

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        import json

        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._bar is not None:
            info = "  ".join(
                f"{k} {v:.4g}" for k, v in record.items() if k in ("loss", "reward", "accuracy", "kl", "eval_accuracy")
                and isinstance(v, (int, float))
            )
            self._bar.update(self._task, completed=record["step"], info=info)

    def advance(self, step: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        if self.enabled:
            self._file.close()


def evaluate(lm, rows: list[dict], *, mode: str, max_gen_toks: int, batch_size: int,
             answer_allowance: int | None = None) -> float:
    """Greedy accuracy on `rows` through `LatentLM.generate` (the same path as the `lrt` backend).

    The base and G_φ run in eval mode (as `lm_eval` runs them) and go back to their modes after.
    """
    from lrt_bench.core.generation import DecodeConfig
    from lrt_bench.eval.grading import grade_math

    cfg = DecodeConfig(mode=mode, max_gen_toks=max_gen_toks, answer_allowance=answer_allowance)
    modules = [m for m in (lm.base, lm.reasoner) if m is not None]
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    correct = 0
    try:
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            gens = lm.generate([r["problem"] for r in chunk], cfg)
            correct += sum(grade_math(g.text, r["answer"]) for g, r in zip(gens, chunk))
    finally:
        for m, was in zip(modules, modes):
            m.train(was)
    return correct / max(1, len(rows))


def environment_note() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "pid": os.getpid(),
    }
