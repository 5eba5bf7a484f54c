"""The redundancy analysis's deletions: which parts of a reasoning R survive at deletion rate p.

Pure and seeded; `lrt_bench.tools.redundancy` runs them over a task.

Step rule
    A step ends at a line break (a run of newlines) or at a sentence end: `.`, `!` or `?` followed by
    spaces or tabs. The whitespace stays with the step it ends, so `"".join(split_steps(t)) == t`;
    a whitespace-only piece joins the step after it. Decimals (`3.14`) and `e.g.,` do not split.

Randomness
    Deletion draws one uniform number per token (or step) from `random.Random` seeded by
    (--seed, the problem's index in the task, the granularity) and deletes the unit when it is below
    p. The draws do not depend on p, so the deletions are nested (what p = 0.1 deletes, p = 0.2
    deletes too) and a run is reproducible whatever --limit and --batch-size are.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence

from lrt_bench.errors import LRTError

GRANULARITIES = ("token", "step")
DEFAULT_PS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
STEP_RULE = (
    "a step ends at a line break (run of newlines) or at '.', '!' or '?' followed by spaces/tabs; "
    "the whitespace stays with the step it ends"
)


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
