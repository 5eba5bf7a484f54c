"""Training rows for the trainers: {"problem", "answer", "target"} from a local JSONL or the hub.

Sources (the recipe's `dataset`):
  * a local `.jsonl` / `.json` file (the tiny world's `tiny:data/train.jsonl`,
    `../shared/data/deepscaler/deepscaler_subset803.jsonl`, your own);
  * a hub id read with `datasets.load_dataset(dataset, dataset_config, split=dataset_split)`, e.g.
    `open-r1/OpenR1-Math-220k` (SFT) or `agentica-org/DeepScaleR-Preview-Dataset` (GRPO).

`target` is the SFT answer Y (docs/design.md §4.7): the text after the last `</think>` of a reasoning trace
(`target_field`), or for OpenR1-Math-220k (`target_field: openr1`) of the first generation that
math-verify marked correct, or `\\boxed{answer}` when no trace is given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lrt_bench.core.layout import THINK_CLOSE
from lrt_bench.errors import LRTError
from lrt_bench.io import read_jsonl


def _read_local(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON list (`.json`) or a JSON-lines file (anything else)."""
    if path.suffix != ".json":
        return read_jsonl(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise LRTError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}): pass a .jsonl or a JSON list") from None
    if not isinstance(rows, list):
        raise LRTError(f"{path} holds a JSON {type(rows).__name__}, not a list of rows")
    return rows


def _read_hub(name: str, config: str | None, split: str) -> list[dict[str, Any]]:
    try:
        from datasets import load_dataset

        ds = load_dataset(name, config, split=split)
    except Exception as e:  # offline, unknown id, gated: all mean "could not read it"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise LRTError(
            f"cannot load dataset {name!r} (config {config!r}, split {split!r}) from the hub: {first}. "
            "Offline? Pass a local file: --dataset path/to/rows.jsonl"
        ) from None
    return [dict(r) for r in ds]


def after_think(text: str) -> str:
    """The answer part of a reasoning trace: the text after the last </think>, leading blanks dropped."""
    return text.rsplit(THINK_CLOSE, 1)[-1].lstrip()


def _openr1_target(row: dict[str, Any], where: str) -> str | None:
    """First generation marked correct by math-verify (OpenR1-Math-220k's `correctness_math_verify`)."""
    gens = row.get("generations")
    marks = row.get("correctness_math_verify")
    if not isinstance(gens, list) or not isinstance(marks, list):
        raise LRTError(f"{where}: OpenR1 rows need `generations` and `correctness_math_verify` lists")
    for g, ok in zip(gens, marks):
        if ok and isinstance(g, str) and THINK_CLOSE in g:
            answer = after_think(g)
            if answer:
                return answer
    return None


def load_rows(
    dataset: str,
    *,
    config: str | None = None,
    split: str = "train",
    problem_field: str = "problem",
    answer_field: str = "answer",
    target_field: str = "",
    max_samples: int = 0,
    where: dict[str, Any] | None = None,
) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Rows {"problem", "answer", "target"} and counts of what was skipped (and why)."""
    from trainers.config import resolve_path

    src = resolve_path(dataset) or ""
    path = Path(src).expanduser()
    local = path.suffix in (".jsonl", ".json") or path.exists()
    if local:
        if not path.is_file():
            raise LRTError(f"dataset file {str(path)!r} not found: check the path (or build the tiny world)")
        raw = _read_local(path)
        origin = str(path)
    else:
        raw = _read_hub(src, config, split)
        origin = src
    if not raw:
        raise LRTError(f"dataset {origin} has no rows")
    rows, skipped = [], {"no_verified_generation": 0, "filtered": 0}
    allowed = {k: {str(x) for x in (v if isinstance(v, list) else [v])} for k, v in (where or {}).items()}
    for i, r in enumerate(raw):
        at = f"{origin} row {i}"
        if not isinstance(r, dict):
            raise LRTError(f"{at} is not an object")
        if allowed:
            bad = [k for k in allowed if k not in r]
            if bad:
                raise LRTError(f"{at} has no field {bad[0]!r} named in dataset_where (fields: {', '.join(sorted(r))})")
            if any(str(r[k]) not in v for k, v in allowed.items()):
                skipped["filtered"] += 1
                continue
        missing = [f for f in (problem_field, answer_field) if f not in r or r[f] in (None, "")]
        if missing:
            raise LRTError(
                f"{at} has no {', '.join(repr(m) for m in missing)} (fields: {', '.join(sorted(r))}): "
                "fix the row or set problem_field / answer_field in the recipe"
            )
        answer = str(r[answer_field]).strip()
        if target_field == "openr1":
            target = _openr1_target(r, at)
            if target is None:
                skipped["no_verified_generation"] += 1
                continue
        elif target_field:
            if target_field not in r:
                raise LRTError(f"{at} has no target field {target_field!r} (fields: {', '.join(sorted(r))})")
            target = after_think(str(r[target_field]))
        else:
            target = f"\\boxed{{{answer}}}"
        rows.append({"problem": str(r[problem_field]), "answer": answer, "target": target})
        if max_samples and len(rows) >= max_samples:
            break
    if not rows:
        raise LRTError(f"dataset {origin}: no usable rows ({skipped})")
    return rows, skipped
