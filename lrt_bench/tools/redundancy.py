"""`lrt-bench redundancy`: the paper's fragmentary-trajectory analysis (its Figure 2).

    lrt-bench redundancy --model <dir|id> --task <lm-eval task> [--p 0,0.1,0.2,0.3,0.4,0.5]
        [--granularity token,step] [--limit N] [--out DIR] [--max-gen-toks N] [--answer-toks N]
        [--batch-size N] [--seed N]

For each problem X of a generative lm-eval task:

1. the base writes its full reasoning R greedily in think mode (`--max-gen-toks` caps it; the default
   is the task's own budget). R is the text between `<think>\\n` and `</think>`, trailing whitespace
   dropped. A trajectory cut at the budget is used as it stands and counted as `cut_at_budget`;
2. for each granularity and deletion rate p, parts of R are deleted, each independently with
   probability p: every reasoning token (`token`), or every step (`step`, split by `redundancy_deletion.split_steps`);
3. the edited reasoning R(p) is closed with `\\n</think>\\n\\n` (layout.LATENT_SUFFIX, the same real
   tokens that follow z in latent mode) and the base answers greedily from `[X, R(p), close]` within
   `--answer-toks` tokens (`LatentLM.generate_from_text`). p = 0 is the intact R closed the same way;
4. the answer is graded by the task's own `process_results` (metric `pass@1` for lrt-bench tasks).

Reported per (granularity, p): accuracy and the mean number of reasoning tokens kept, as a rich table,
`redundancy.json`, `redundancy.png` (with the paper's curves for DeepSeek-R1-Distill-Qwen-7B on
MATH-500 beside ours when `lrt_bench/paper_reference.json` is installed) and `samples.jsonl`.

Token granularity works on token ids and feeds the kept ids as they are (no decode / re-encode), so
the base sees exactly the tokens that survived; step granularity re-tokenises the kept text.

The parts, each in its own module: the step rule and the seeded, nested deletions
(`redundancy_deletion`), what --task and --model name (`redundancy_inputs`), the table and the plot
beside the paper's curves (`redundancy_report`). This module runs the four steps and is the command.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lrt_bench.core import layout
from lrt_bench.errors import LRTError
from lrt_bench.eval.response import account_dict
from lrt_bench.io import check_writable_dir
from lrt_bench.tools.redundancy_deletion import (
    DEFAULT_PS,
    GRANULARITIES,
    STEP_RULE,
    delete_steps,
    delete_tokens,
    deletion_rng,
    parse_granularities,
    parse_ps,
)
from lrt_bench.tools.redundancy_inputs import TaskSpec, load_model, load_task, resolve_model, score, tiny_env
from lrt_bench.tools.redundancy_report import (
    check_matplotlib,
    load_paper_reference,
    render_plot,
    render_table,
)

DEFAULT_ANSWER_TOKS = 1024
JSON_NAME, PNG_NAME, SAMPLES_NAME = "redundancy.json", "redundancy.png", "samples.jsonl"

# ------------------------------------------------------------------------------------------------
# The analysis
# ------------------------------------------------------------------------------------------------


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
    # ---- settings, task, model and prompts: a bad one stops the run before any generation
    ps = parse_ps(ps)
    grans = parse_granularities(granularities)
    _check_sizes(limit=limit, batch_size=batch_size, answer_toks=answer_toks, max_gen_toks=max_gen_toks)
    if lm is None and not model:
        raise LRTError("pass a model directory or hub id (--model)")
    if out is not None:
        check_matplotlib()
    world = resolve_model(model)[1] if lm is None else None
    with tiny_env(world):
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
    prompts, head_ids = _prompts(lm, spec, docs)
    think_cfg = DecodeConfig(mode="think", max_gen_toks=budget, answer_allowance=answer_toks, stop=tuple(spec.until))
    answer_cfg = DecodeConfig(mode="nothink", max_gen_toks=answer_toks, stop=tuple(spec.until))

    with _progress(progress, console) as bar:
        # 1. the full reasoning, greedy, in think mode (longest prompts first: less padding)
        think_gens = _longest_first([len(h) for h in head_ids], batch_size, bar, "think: full reasoning",
                                    lambda idx: lm.generate([prompts[i] for i in idx], think_cfg))
        close_id = layout.think_close_id(lm.tokenizer, "think")
        traj = [reasoning_ids(lm, g, close_id) for g in think_gens]
        think_scores = [score(spec.task, d, g.text, account_dict(g.account), metric) for d, g in zip(docs, think_gens)]
        metric = think_scores[0][0]

        # 2. fragmentary trajectories R(p) for every (problem, granularity, p)
        combos, prefixes = _fragments(lm.tokenizer, traj, head_ids, grans, ps, seed)

        # 3. answer from [X, R(p), close], greedy (identical prefixes, e.g. p = 0 of both, once)
        answers = _longest_first([len(x) for x in prefixes], batch_size, bar, "answer from R(p)",
                                 lambda idx: lm.generate_from_text([prefixes[j] for j in idx], answer_cfg))

    # 4. grade and aggregate
    samples = _grade(spec, docs, combos, answers, metric)
    rows = _aggregate(samples, grans, ps)
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
        think_rows = [{"doc": i, "id": d.get("id"), "think": True, "reasoning_tokens": len(ids), "closed": closed,
                       "score": s, "text": g.text}
                      for i, (d, (ids, closed), (_, s), g) in enumerate(zip(docs, traj, think_scores, think_gens))]
        _write_outputs(out, result, think_rows + samples)
    return result


def _check_sizes(*, limit: int | None, batch_size: int, answer_toks: int, max_gen_toks: int | None) -> None:
    if limit is not None and limit < 1:
        raise LRTError(f"--limit must be >= 1 (or 0 / unset for all problems), got {limit}")
    if batch_size < 1:
        raise LRTError(f"--batch-size must be >= 1, got {batch_size}")
    if answer_toks < 1:
        raise LRTError(f"--answer-toks must be >= 1, got {answer_toks}")
    if max_gen_toks is not None and max_gen_toks < 1:
        raise LRTError(f"--max-gen-toks must be >= 1, got {max_gen_toks}")


def _prompts(lm, spec: TaskSpec, docs: list[dict]) -> tuple[list, list[list[int]]]:
    """(the task's prompt of each problem, its think-mode prefix [X] as token ids)."""
    prompts = [spec.doc_to_text(d) for d in docs]
    if not all(isinstance(p, (str, list)) for p in prompts):
        raise LRTError(f"task {spec.name}'s doc_to_text does not return text: the analysis needs a text prompt")
    head_ids = [lm.tokenizer.encode(t, add_special_tokens=False) for t in lm.prefix_texts(prompts, "think")]
    return prompts, head_ids


def reasoning_ids(lm, gen, close_id: int) -> tuple[list[int], bool]:
    """(R's token ids, closed naturally) from a think-mode generation: the reasoning tokens without
    `</think>` and without trailing whitespace-only tokens (the close supplies its own newline)."""
    ids, closed = layout.split_reasoning(gen.token_ids, gen.account.reasoning_tokens, close_id)
    while ids and not lm.tokenizer.decode(ids[-1:], skip_special_tokens=False).strip():
        ids.pop()
    return ids, closed


def _fragments(tok, traj: list[tuple[list[int], bool]], head_ids: list[list[int]], grans: list[str],
               ps: list[float], seed: int) -> tuple[list[tuple], list[list[int]]]:
    """Step 2: (combos, prefixes). One combo (doc index, granularity, p, kept tokens, full tokens,
    index into prefixes) per (problem, granularity, p); each distinct prefix [X, R(p), close] once."""
    encode = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    suffix_ids = encode(layout.LATENT_SUFFIX)
    combos = []
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
    return combos, prefixes


def _grade(spec: TaskSpec, docs: list[dict], combos: list[tuple], answers: list, metric: str) -> list[dict]:
    """Step 4: one sample row per combo, its answer graded by the task."""
    samples = []
    for i, gran, p, kept, full, j in combos:
        g = answers[j]
        _, s = score(spec.task, docs[i], g.text, account_dict(g.account), metric)
        samples.append({"doc": i, "id": docs[i].get("id"), "granularity": gran, "p": p, "kept_tokens": kept,
                        "full_tokens": full, "score": s, "answer": g.text})
    return samples


def _aggregate(samples: list[dict], grans: list[str], ps: list[float]) -> list[dict]:
    """One result row per (granularity, p): accuracy and the reasoning tokens kept."""
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
    return rows


def _write_outputs(out: Path, result: dict, sample_rows: list[dict]) -> None:
    from lrt_bench.io import atomic_write_bytes, atomic_write_json, atomic_write_jsonl

    png = render_plot(result)
    atomic_write_jsonl(out / SAMPLES_NAME, sample_rows)
    atomic_write_bytes(out / PNG_NAME, png)
    atomic_write_json(out / JSON_NAME, result)  # last: its presence means the run finished


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
