"""What the redundancy analysis runs on: its `--task` (one generative lm-eval task, which also grades
the answers) and its `--model` (a directory, a tiny world or a hub id, loaded as a LatentLM)."""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrt_bench.errors import LRTError

METRIC_PREFERENCE = ("pass@1", "exact_match", "acc", "accuracy", "correct")

# ------------------------------------------------------------------------------------------------
# The task (through lm-eval's TaskManager)
# ------------------------------------------------------------------------------------------------


@dataclass
class TaskSpec:
    name: str
    task: Any  # lm-eval Task
    docs: list[dict]
    split: str
    doc_to_text: Callable[[dict], Any]
    max_gen_toks: int
    until: list[str]


def _task_managers() -> Iterator[Any]:
    """Our tasks only first (fast), then every task lm-eval knows (indexes ~15k YAMLs); each built
    once per process (`lrt_bench.eval.evaluate.task_manager`)."""
    from lrt_bench.eval.evaluate import task_manager

    yield task_manager(ours_only=True)
    yield task_manager(ours_only=False)


def _entry_kind_and_type(tm: Any, name: str) -> tuple[str | None, str | None]:
    """(kind, output_type) from the task index without building the task (None where unknown)."""
    index = getattr(tm, "task_index", None)
    entry = index.get(name) if isinstance(index, dict) else None
    if entry is None:
        return None, None
    if isinstance(entry, dict):  # lm-eval <= 0.4.9: {"type": "task"|"group"|"tag", "yaml_path": ...}
        return str(entry.get("type", "")).lower() or None, None
    kind = getattr(getattr(entry, "kind", None), "name", None)
    cfg = getattr(entry, "cfg", None)
    out = cfg.get("output_type", "generate_until") if isinstance(cfg, dict) and kind == "TASK" else None
    return (kind.lower() if kind else None), out


def _not_generative(name: str, output_type: str) -> LRTError:
    return LRTError(
        f"task {name} has output_type {output_type}, not generate_until: the redundancy analysis needs a "
        "generative task (e.g. lrt_math500, lrt_tiny)"
    )


def load_task(name: str) -> TaskSpec:
    """Load one generative lm-eval task and its docs (test split, else validation)."""
    tm = None
    for tm in _task_managers():
        if name in tm.all_tasks:
            break
    else:
        if tm is None or not Path(name).is_file():
            close = difflib.get_close_matches(name, tm.all_tasks if tm else [], n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "see `lm_eval ls tasks`"
            raise LRTError(f"unknown task {name!r}: {hint}")
    kind, output_type = _entry_kind_and_type(tm, name)
    if kind in ("group", "tag"):
        raise LRTError(f"{name} is a {kind} of tasks, not one task: run the analysis on one of its tasks")
    if output_type is not None and output_type != "generate_until":
        raise _not_generative(name, output_type)  # before any data is loaded
    # lm-eval warns that custom datasets take `--metadata`, an lm_eval option this command has not
    quiet = logging.getLogger("lm_eval.api.task")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        if hasattr(tm, "load"):
            tasks = dict(tm.load([name])["tasks"])
        else:  # lm-eval < 0.4.10
            from lm_eval.tasks import get_task_dict

            def flat(d: dict) -> dict:
                out = {}
                for k, v in d.items():
                    out.update(flat(v) if isinstance(v, dict) else {getattr(k, "group", k): v})
                return out

            tasks = flat(get_task_dict([name], tm))
    finally:
        quiet.setLevel(level)
    if len(tasks) != 1:
        raise LRTError(f"{name} expands to {len(tasks)} tasks ({', '.join(sorted(tasks))}): name one of them")
    task = next(iter(tasks.values()))
    output_type = getattr(task, "OUTPUT_TYPE", None) or getattr(task.config, "output_type", None)
    if output_type != "generate_until":
        raise _not_generative(name, str(output_type))
    if task.has_test_docs():
        docs, split = task.test_docs(), "test"
    elif task.has_validation_docs():
        docs, split = task.validation_docs(), "validation"
    else:
        raise LRTError(f"task {name} has neither a test nor a validation split")
    gen = dict(getattr(task.config, "generation_kwargs", None) or {})
    until = gen.get("until") or []
    until = [until] if isinstance(until, str) else [str(u) for u in until]
    return TaskSpec(name=name, task=task, docs=[dict(d) for d in docs], split=split, doc_to_text=task.doc_to_text,
                    max_gen_toks=int(gen.get("max_gen_toks", 256)), until=until)


def score(task: Any, doc: dict, text: str, account: dict, metric: str | None) -> tuple[str, float]:
    """(metric name, value) from the task's own process_results for one greedy response."""
    from lrt_bench.eval.response import Response

    res = task.process_results(doc, [Response(text, account)])
    if metric is None:
        metric = next((m for m in METRIC_PREFERENCE if m in res), None)
        if metric is None:
            raise LRTError(
                f"cannot tell which of the task's metrics ({', '.join(sorted(res))}) is accuracy: pass --metric NAME"
            )
    elif metric not in res:
        raise LRTError(f"the task reports no metric {metric!r}: use one of {', '.join(sorted(res))}")
    return metric, float(res[metric])


# ------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------


def _looks_local(model: str) -> bool:
    """A path rather than a hub id (`name` or `org/name`)."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model


def resolve_model(model: str) -> tuple[str, Path | None]:
    """(what from_pretrained loads, the tiny world dir when `model` is one). Raises for a missing dir."""
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise LRTError(f"model {model} is a file, not a model directory")
        if (path / "world.json").is_file() and (path / "base").is_dir():
            return str(path / "base"), path.resolve()  # a tiny world: its base
        if not (path / "config.json").is_file():
            raise LRTError(f"model directory {model} has no config.json: pass a Hugging Face model directory")
        return str(path), None
    if _looks_local(model):
        raise LRTError(f"model directory {model} does not exist: pass a model directory or a hub id")
    return model, None


def load_model(model: str, device: str | None = None, dtype: str | None = None):
    """A LatentLM over the base at `model` (directory, tiny world or hub id), in eval mode."""
    import torch

    from lrt_bench.core.generation import LatentLM
    from lrt_bench.core.models import load_base, resolve_dtype

    src, _ = resolve_model(model)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    base, tok = load_base(src, device=device, dtype=resolve_dtype(dtype, device), what="model")
    return LatentLM(base, tok)


@contextmanager
def tiny_env(world: Path | None) -> Iterator[None]:
    """With a tiny world as --model and LRT_TINY_DIR unset, lrt_tiny reads that world's data."""
    if world is None or os.environ.get("LRT_TINY_DIR", "").strip():
        yield
        return
    os.environ["LRT_TINY_DIR"] = str(world)
    try:
        yield
    finally:
        os.environ.pop("LRT_TINY_DIR", None)
