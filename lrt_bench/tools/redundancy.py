"""`lrt-bench redundancy`: the paper's fragmentary-trajectory analysis (its Figure 2).

    lrt-bench redundancy --model <dir|id> --task <lm-eval task> [--p 0,0.1,0.2,0.3,0.4,0.5]
        [--granularity token,step] [--limit N] [--out DIR] [--max-gen-toks N] [--answer-toks N]
        [--batch-size N] [--seed N]

For each problem X of a generative lm-eval task:

1. the base writes its full reasoning R greedily in think mode (`--max-gen-toks` caps it; the default
   is the task's own budget). R is the text between `<think>\\n` and `</think>`, trailing whitespace
   dropped. A trajectory cut at the budget is used as it stands and counted as `cut_at_budget`;
2. for each granularity and deletion rate p, parts of R are deleted, each independently with
   probability p: every reasoning token (`token`), or every step (`step`, split by `split_steps`);
3. the edited reasoning R(p) is closed with `\\n</think>\\n\\n` (layout.LATENT_SUFFIX, the same real
   tokens that follow z in latent mode) and the base answers greedily from `[X, R(p), close]` within
   `--answer-toks` tokens (`LatentLM.generate_from_text`). p = 0 is the intact R closed the same way;
4. the answer is graded by the task's own `process_results` (metric `pass@1` for lrt-bench tasks).

Reported per (granularity, p): accuracy and the mean number of reasoning tokens kept, as a rich table,
`redundancy.json`, `redundancy.png` (with the paper's curves for DeepSeek-R1-Distill-Qwen-7B on
MATH-500 beside ours when `lrt_bench/paper_reference.json` is installed) and `samples.jsonl`.

Step rule
    A step ends at a line break (a run of newlines) or at a sentence end: `.`, `!` or `?` followed by
    spaces or tabs. The whitespace stays with the step it ends, so `"".join(split_steps(t)) == t`;
    a whitespace-only piece joins the step after it. Decimals (`3.14`) and `e.g.,` do not split.

Randomness
    Deletion draws one uniform number per token (or step) from `random.Random` seeded by
    (--seed, the problem's index in the task, the granularity) and deletes the unit when it is below
    p. The draws do not depend on p, so the deletions are nested (what p = 0.1 deletes, p = 0.2
    deletes too) and a run is reproducible whatever --limit and --batch-size are.

Token granularity works on token ids and feeds the kept ids as they are (no decode / re-encode), so
the base sees exactly the tokens that survived; step granularity re-tokenises the kept text.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import io
import json
import logging
import math
import os
import random
import re
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrt_bench.core import layout
from lrt_bench.errors import LRTError
from lrt_bench.eval.response import account_dict
from lrt_bench.io import check_writable_dir

GRANULARITIES = ("token", "step")
DEFAULT_PS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
DEFAULT_ANSWER_TOKS = 1024
METRIC_PREFERENCE = ("pass@1", "exact_match", "acc", "accuracy", "correct")
PAPER_FILE = "paper_reference.json"
PAPER_KEY = "figure2_redundancy_r1_distill_7b_math500"
PAPER_LABEL = "paper (R1-Distill-Qwen-7B, MATH-500)"
STEP_RULE = (
    "a step ends at a line break (run of newlines) or at '.', '!' or '?' followed by spaces/tabs; "
    "the whitespace stays with the step it ends"
)
JSON_NAME, PNG_NAME, SAMPLES_NAME = "redundancy.json", "redundancy.png", "samples.jsonl"

# ------------------------------------------------------------------------------------------------
# Deletion (pure, seeded)
# ------------------------------------------------------------------------------------------------


def check_p(p: float) -> float:
    """p as a float in [0, 1); a one-line LRTError otherwise."""
    try:
        value = float(p)
    except (TypeError, ValueError):
        raise LRTError(f"deletion rate p={p!r} is not a number: use values in [0, 1), e.g. 0,0.1,0.3") from None
    if not (0.0 <= value < 1.0) or math.isnan(value):
        raise LRTError(f"deletion rate p={p} is outside [0, 1): use values such as 0,0.1,0.2,0.3,0.4,0.5")
    return value


def delete_tokens(ids: Sequence[int], p: float, rng: random.Random) -> list[int]:
    """Keep each token id unless its uniform draw from `rng` is below p (one draw per token, in order)."""
    p = check_p(p)
    return [t for t in ids if rng.random() >= p]


_BOUNDARY = re.compile(r"\n+|(?<=[.!?])[ \t]+")


def split_steps(text: str) -> list[str]:
    """Reasoning text -> steps (see the module docstring); `"".join(split_steps(text)) == text`.

    Deletion units, so whitespace goes with the step it ends. `trainers.extractors.split_steps` is a
    different rule on purpose: cut points that end exactly at a terminator (LC-R1 closes the reasoning
    there)."""
    steps: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        piece = text[start : m.end()]
        if piece.strip():  # a whitespace-only piece joins the next step
            steps.append(piece)
            start = m.end()
    tail = text[start:]
    if tail:
        if tail.strip() or not steps:
            steps.append(tail)
        else:
            steps[-1] += tail
    return steps


def delete_steps(text: str, p: float, rng: random.Random) -> str:
    """Keep each step of `text` unless its uniform draw from `rng` is below p; the kept steps joined."""
    p = check_p(p)
    return "".join(s for s in split_steps(text) if rng.random() >= p)


def deletion_rng(seed: int, doc_index: int, granularity: str) -> random.Random:
    """The generator for one problem and granularity (independent of p: deletions nest across p)."""
    return random.Random(f"lrt-bench/redundancy/{seed}/{doc_index}/{granularity}")


def parse_ps(value: str | Sequence[float]) -> list[float]:
    items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else list(value)
    if not items:
        raise LRTError("no deletion rates given: pass --p 0,0.1,0.2,0.3,0.4,0.5")
    return sorted({check_p(v) for v in items})


def parse_granularities(value: str | Sequence[str]) -> list[str]:
    items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else list(value)
    bad = [g for g in items if g not in GRANULARITIES]
    if bad or not items:
        raise LRTError(f"unknown granularity {', '.join(map(repr, bad)) or '(none)'}: use token, step or token,step")
    return [g for g in GRANULARITIES if g in items]


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
    """Our tasks only first (fast), then every task lm-eval knows (indexes ~15k YAMLs)."""
    from lm_eval.tasks import TaskManager

    try:
        yield TaskManager(include_defaults=False)
    except TypeError:  # lm-eval without include_defaults
        pass
    yield TaskManager()


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


def _score(task: Any, doc: dict, text: str, account: dict, metric: str | None) -> tuple[str, float]:
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
def _tiny_env(world: Path | None) -> Iterator[None]:
    """With a tiny world as --model and LRT_TINY_DIR unset, lrt_tiny reads that world's data."""
    if world is None or os.environ.get("LRT_TINY_DIR", "").strip():
        yield
        return
    os.environ["LRT_TINY_DIR"] = str(world)
    try:
        yield
    finally:
        os.environ.pop("LRT_TINY_DIR", None)


# ------------------------------------------------------------------------------------------------
# The analysis
# ------------------------------------------------------------------------------------------------


def reasoning_ids(lm, gen, close_id: int) -> tuple[list[int], bool]:
    """(R's token ids, closed naturally) from a think-mode generation: the reasoning tokens without
    `</think>` and without trailing whitespace-only tokens (the close supplies its own newline)."""
    ids, closed = layout.split_reasoning(gen.token_ids, gen.account.reasoning_tokens, close_id)
    while ids and not lm.tokenizer.decode(ids[-1:], skip_special_tokens=False).strip():
        ids.pop()
    return ids, closed


@contextmanager
def _progress(enabled: bool, console=None):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not enabled:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as p:
        yield p


def _longest_first(lengths: list[int], batch_size: int, bar, label: str, run) -> list[Any]:
    """`run(indices)` over batches of item indices, longest items first (less padding); results in item
    order, with a progress task `label` on `bar` (if any)."""
    out: list[Any] = [None] * len(lengths)
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    job = bar.add_task(label, total=len(lengths)) if bar else None
    for idx in _batches(order, batch_size):
        for i, g in zip(idx, run(idx)):
            out[i] = g
        if bar:
            bar.advance(job, len(idx))
    return out


def _batches(order: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(order), size):
        yield order[i : i + size]


def paper_curve(data: Any) -> dict | None:
    """The paper's Figure 2 curves (accuracy as fractions, p = 0 is the full trajectory) from a reference
    document holding `figure2_redundancy_r1_distill_7b_math500` (at any depth), or None."""

    def find(obj: Any) -> Any:
        if isinstance(obj, dict):
            if PAPER_KEY in obj:
                return obj[PAPER_KEY]
            for v in obj.values():
                hit = find(v)
                if hit is not None:
                    return hit
        return None

    fig = find(data)
    try:
        full = fig["full_trajectory"]
        ref = {
            "label": PAPER_LABEL,
            "p": [0.0, *map(float, fig["deletion_p"])],
            "token": [full["accuracy"] / 100, *(v / 100 for v in fig["token_level"])],
            "step": [full["accuracy"] / 100, *(v / 100 for v in fig["step_level"])],
            "mean_full_tokens": full.get("mean_tokens"),
            "note": fig.get("note", ""),
        }
    except (TypeError, KeyError, ValueError):
        return None
    if not len(ref["p"]) == len(ref["token"]) == len(ref["step"]):
        return None
    return ref


def load_paper_reference() -> tuple[dict | None, str]:
    """The paper's curves from the packaged `lrt_bench/paper_reference.json`, or (None, why not)."""
    from importlib import resources

    try:
        data = json.loads(resources.files("lrt_bench").joinpath(PAPER_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, OSError, json.JSONDecodeError, ModuleNotFoundError):
        return None, f"paper curve skipped: lrt_bench/{PAPER_FILE} is not installed"
    ref = paper_curve(data)
    if ref is None:
        return None, f"paper curve skipped: lrt_bench/{PAPER_FILE} has no {PAPER_KEY}"
    return ref, f"paper: {PAPER_LABEL}, accuracy read off its Figure 2"


def run_redundancy(
    lm=None,
    *,
    model: str | None = None,
    task: str,
    ps: str | Sequence[float] = DEFAULT_PS,
    granularities: str | Sequence[str] = GRANULARITIES,
    limit: int | None = None,
    out: str | Path | None = None,
    max_gen_toks: int | None = None,
    answer_toks: int = DEFAULT_ANSWER_TOKS,
    batch_size: int = 32,
    seed: int = 0,
    metric: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    progress: bool = True,
    console=None,
) -> dict:
    """Run the analysis and return its results (the content of redundancy.json).

    Pass a loaded `lm` (a LatentLM; `model` is then only its label) or `model` (directory, tiny world
    or hub id). With `out`, writes redundancy.json, redundancy.png and samples.jsonl there, each
    atomically; nothing is written when an input is bad.
    """
    t_start = time.perf_counter()
    ps = parse_ps(ps)
    grans = parse_granularities(granularities)
    if limit is not None and limit < 1:
        raise LRTError(f"--limit must be >= 1 (or 0 / unset for all problems), got {limit}")
    if batch_size < 1:
        raise LRTError(f"--batch-size must be >= 1, got {batch_size}")
    if answer_toks < 1:
        raise LRTError(f"--answer-toks must be >= 1, got {answer_toks}")
    if max_gen_toks is not None and max_gen_toks < 1:
        raise LRTError(f"--max-gen-toks must be >= 1, got {max_gen_toks}")
    if lm is None and not model:
        raise LRTError("pass a model directory or hub id (--model)")
    if out is not None:
        _check_matplotlib()
    world = resolve_model(model)[1] if lm is None else None
    with _tiny_env(world):
        spec = load_task(task)
    if lm is None:
        lm = load_model(model, device=device, dtype=dtype)
    label = model or getattr(lm.base, "name_or_path", "") or type(lm.base).__name__
    lm.check_mode("think")  # a tokenizer without </think> cannot write or close reasoning: say so now
    from lrt_bench.core.generation import DecodeConfig

    docs = spec.docs[:limit] if limit else spec.docs
    if not docs:
        raise LRTError(f"task {task} has no documents in its {spec.split} split")
    budget = max_gen_toks or spec.max_gen_toks
    tok = lm.tokenizer
    encode = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    close_id = layout.think_close_id(tok, "think")
    suffix_ids = encode(layout.LATENT_SUFFIX)
    prompts = [spec.doc_to_text(d) for d in docs]
    if not all(isinstance(p, (str, list)) for p in prompts):
        raise LRTError(f"task {task}'s doc_to_text does not return text: the analysis needs a text prompt")
    head_ids = [encode(t) for t in lm.prefix_texts(prompts, "think")]
    think_cfg = DecodeConfig(mode="think", max_gen_toks=budget, answer_allowance=answer_toks, stop=tuple(spec.until))
    answer_cfg = DecodeConfig(mode="nothink", max_gen_toks=answer_toks, stop=tuple(spec.until))

    with _progress(progress, console) as bar:
        # 1. the full reasoning, greedy, in think mode (longest prompts first: less padding)
        think_gens = _longest_first([len(h) for h in head_ids], batch_size, bar, "think: full reasoning",
                                    lambda idx: lm.generate([prompts[i] for i in idx], think_cfg))
        traj = [reasoning_ids(lm, g, close_id) for g in think_gens]
        think_scores = [_score(spec.task, d, g.text, account_dict(g.account), metric) for d, g in zip(docs, think_gens)]
        metric = think_scores[0][0]

        # 2. fragmentary trajectories R(p) for every (problem, granularity, p)
        combos = []  # (doc index, granularity, p, kept tokens, full tokens, index into prefixes)
        prefixes: list[list[int]] = []
        unique: dict[bytes, int] = {}  # digest of the prefix ids -> index into prefixes
        for i, (ids, _) in enumerate(traj):
            text = tok.decode(ids, skip_special_tokens=True).rstrip()
            for gran in grans:
                full = len(ids) if gran == "token" else len(encode(text))
                for p in ps:
                    rng = deletion_rng(seed, i, gran)  # the same draws for every p: nested deletions
                    if gran == "token":
                        kept = delete_tokens(ids, p, rng)
                    else:
                        kept = encode(delete_steps(text, p, rng).rstrip())
                    prefix = head_ids[i] + kept + suffix_ids
                    key = hashlib.blake2b(array("q", prefix).tobytes(), digest_size=16).digest()
                    if key not in unique:
                        unique[key] = len(prefixes)
                        prefixes.append(prefix)
                    combos.append((i, gran, p, len(kept), full, unique[key]))

        # 3. answer from [X, R(p), close], greedy (identical prefixes, e.g. p = 0 of both, once)
        answers = _longest_first([len(x) for x in prefixes], batch_size, bar, "answer from R(p)",
                                 lambda idx: lm.generate_from_text([prefixes[j] for j in idx], answer_cfg))

    # 4. grade and aggregate
    samples = []
    for i, gran, p, kept, full, j in combos:
        g = answers[j]
        _, score = _score(spec.task, docs[i], g.text, account_dict(g.account), metric)
        samples.append({"doc": i, "id": docs[i].get("id"), "granularity": gran, "p": p, "kept_tokens": kept,
                        "full_tokens": full, "score": score, "answer": g.text})
    rows = []
    for gran in grans:
        for p in ps:
            sel = [s for s in samples if s["granularity"] == gran and s["p"] == p]
            kept, full = sum(s["kept_tokens"] for s in sel), sum(s["full_tokens"] for s in sel)
            rows.append({
                "granularity": gran, "p": p, "n": len(sel),
                "accuracy": sum(s["score"] for s in sel) / len(sel),
                "mean_kept_tokens": kept / len(sel), "mean_full_tokens": full / len(sel),
                "kept_fraction": kept / full if full else 1.0,
            })
    paper, paper_note = load_paper_reference()
    n = len(docs)
    result = {
        "analysis": "redundancy (fragmentary trajectories, paper Figure 2)",
        "task": task, "split": spec.split, "model": str(label), "n_problems": n, "seed": seed,
        "metric": metric, "p": ps, "granularities": grans,
        "think": {
            "max_gen_toks": budget,
            "accuracy": sum(s for _, s in think_scores) / n,
            "mean_reasoning_tokens": sum(len(ids) for ids, _ in traj) / n,
            "closed_naturally": sum(closed for _, closed in traj),
            "cut_at_budget": sum(g.account.forced_tokens > 0 for g in think_gens),
        },
        "answer_toks": answer_toks,
        "close": layout.LATENT_SUFFIX,
        "step_rule": STEP_RULE,
        "unique_prefixes": len(prefixes),
        "results": rows,
        "paper": paper,
        "paper_note": paper_note,
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    if out is not None:
        out = Path(out)
        result["files"] = {k: str(out / v) for k, v in (("json", JSON_NAME), ("png", PNG_NAME),
                                                         ("samples", SAMPLES_NAME))}
        png = render_plot(result)
        think_rows = [{"doc": i, "id": d.get("id"), "think": True, "reasoning_tokens": len(ids), "closed": closed,
                       "score": s, "text": g.text}
                      for i, (d, (ids, closed), (_, s), g) in enumerate(zip(docs, traj, think_scores, think_gens))]
        from lrt_bench.io import atomic_write_bytes, atomic_write_json, atomic_write_text

        atomic_write_text(out / SAMPLES_NAME,
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in think_rows + samples))
        atomic_write_bytes(out / PNG_NAME, png)
        atomic_write_json(out / JSON_NAME, result)  # last: its presence means the run finished
    return result


# ------------------------------------------------------------------------------------------------
# Output: table, plot
# ------------------------------------------------------------------------------------------------


def _check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise LRTError("the redundancy plot needs matplotlib: pip install matplotlib") from None


def _row(result: dict, gran: str, p: float) -> dict | None:
    return next((r for r in result["results"] if r["granularity"] == gran and r["p"] == p), None)


def _paper_at(paper: dict | None, gran: str, p: float) -> float | None:
    if not paper:
        return None
    for q, v in zip(paper["p"], paper[gran]):
        if abs(q - p) < 1e-9:
            return v
    return None


def render_plot(result: dict) -> bytes:
    """PNG bytes: accuracy vs p (ours and the paper's) and mean kept reasoning tokens vs p."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    acc_ax, tok_ax = fig.subplots(1, 2)
    styles = {"token": ("C0", "o"), "step": ("C1", "s")}
    for gran in result["granularities"]:
        color, marker = styles[gran]
        rows = [r for r in result["results"] if r["granularity"] == gran]
        ps = [r["p"] for r in rows]
        acc_ax.plot(ps, [100 * r["accuracy"] for r in rows], color=color, marker=marker, label=f"ours, {gran}")
        tok_ax.plot(ps, [r["mean_kept_tokens"] for r in rows], color=color, marker=marker, label=f"ours, {gran}")
        paper = result.get("paper")
        if paper:
            acc_ax.plot(paper["p"], [100 * v for v in paper[gran]], color=color, marker=marker, linestyle="--",
                        alpha=0.55, label=f"paper, {gran}")
    acc_ax.set_xlabel("deletion rate p")
    acc_ax.set_ylabel(f"accuracy (%, {result['metric']})")
    acc_ax.set_title(f"{result['task']}: answer from [X, R(p)]", fontsize=10)
    acc_ax.grid(alpha=0.3)
    acc_ax.legend(fontsize=8)
    tok_ax.set_xlabel("deletion rate p")
    tok_ax.set_ylabel("mean reasoning tokens kept")
    model = "/".join(Path(str(result["model"])).parts[-2:]) or str(result["model"])
    tok_ax.set_title(f"{model}, {result['n_problems']} problems", fontsize=10)
    tok_ax.grid(alpha=0.3)
    tok_ax.legend(fontsize=8)
    if not result.get("paper"):
        fig.text(0.01, 0.01, result.get("paper_note", ""), fontsize=7, alpha=0.7)
    elif result["paper"].get("mean_full_tokens"):
        fig.text(0.01, 0.01, f"{PAPER_LABEL}: full trajectories average {result['paper']['mean_full_tokens']} "
                 "tokens", fontsize=7, alpha=0.7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def render_table(result: dict):
    """A rich table: one row per p, accuracy and mean kept tokens per granularity, the paper's beside."""
    from rich.table import Table

    t = result["think"]
    table = Table(
        title=f"Redundancy: {result['task']} ({result['n_problems']} problems), {result['model']}",
        caption=(
            f"greedy; full reasoning in think mode (budget {t['max_gen_toks']}, mean {t['mean_reasoning_tokens']:.1f} "
            f"tokens, {t['cut_at_budget']} cut at the budget; its own answer: {100 * t['accuracy']:.1f}%); answers "
            f"from [X, R(p), \\n</think>\\n\\n] within {result['answer_toks']} tokens. {result['paper_note']}"
        ),
    )
    table.add_column("p", justify="right")
    for gran in result["granularities"]:
        table.add_column(f"{gran} acc", justify="right")
        table.add_column(f"{gran} kept tok", justify="right")
    paper = result.get("paper")
    if paper:
        for gran in result["granularities"]:
            table.add_column(f"paper {gran}", justify="right", style="dim")
    for p in result["p"]:
        cells = [f"{p:g}"]
        for gran in result["granularities"]:
            r = _row(result, gran, p)
            cells += [f"{100 * r['accuracy']:.1f}%", f"{r['mean_kept_tokens']:.1f}"]
        if paper:
            for gran in result["granularities"]:
                v = _paper_at(paper, gran, p)
                cells.append("" if v is None else f"{100 * v:.1f}%")
        table.add_row(*cells)
    return table


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def add_parser(subparsers) -> argparse.ArgumentParser:
    r = subparsers.add_parser(
        "redundancy",
        help="the paper's fragmentary-trajectory analysis: accuracy when reasoning tokens/steps are deleted",
        description=__doc__.split("\n\n")[0],
    )
    r.add_argument("--model", required=True, help="base model: directory, tiny world directory or hub id")
    r.add_argument("--task", required=True, help="a generative lm-eval task, e.g. lrt_math500 or lrt_tiny")
    r.add_argument("--p", default=",".join(f"{p:g}" for p in DEFAULT_PS),
                   help="deletion rates in [0, 1), comma-separated (default: %(default)s)")
    r.add_argument("--granularity", default=",".join(GRANULARITIES), help="token, step or token,step")
    r.add_argument("--limit", type=int, default=0, help="first N problems (0 = all)")
    r.add_argument("--out", help="output directory (default: runs/redundancy/<task>)")
    r.add_argument("--max-gen-toks", type=int, default=None,
                   help="reasoning budget of the think pass (default: the task's max_gen_toks)")
    r.add_argument("--answer-toks", type=int, default=DEFAULT_ANSWER_TOKS,
                   help="answer budget after the closed reasoning (default: %(default)s)")
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--seed", type=int, default=0, help="seed of the deletions")
    r.add_argument("--metric", help="the task metric to report (default: pass@1, exact_match or acc)")
    r.add_argument("--device", help="cuda, cpu, ... (default: cuda when available)")
    r.add_argument("--dtype", default="auto", help="auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=run)
    return r


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    out = Path(args.out) if args.out else Path("runs") / "redundancy" / args.task.replace("/", "_")
    check_writable_dir(out, "--out")  # before the work, not after it
    result = run_redundancy(
        model=args.model, task=args.task, ps=args.p, granularities=args.granularity, limit=args.limit or None,
        out=out, max_gen_toks=args.max_gen_toks, answer_toks=args.answer_toks, batch_size=args.batch_size,
        seed=args.seed, metric=args.metric, device=args.device, dtype=args.dtype,
        progress=not args.no_progress, console=console,
    )
    console.print(render_table(result))
    console.print(f"wrote {out / JSON_NAME}, {out / PNG_NAME}, {out / SAMPLES_NAME} ({result['seconds']:.0f} s)")
    return 0
