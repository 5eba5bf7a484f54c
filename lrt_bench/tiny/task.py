"""The tiny world's task: seeded multi-step arithmetic with an explicit reasoning trace.

A problem chains 1 to 4 operations left to right, with parentheses that make the order
explicit: "Compute ((17+5)*3)-9." Its trace computes one operation per line; in the dense style
(world v1) it ends with a line that states the answer, and `TraceStyle` adds optional lines:

    17+5=22
    22*3=66
    66-9=57
    Answer: 57

With the default `Ranges` every value stays in [0, 99], numbers added or subtracted are single
digits and multipliers are 2-9, so each line is arithmetic a small transformer can learn;
chaining the lines is what the trace makes easy and a direct answer makes hard (docs/design.md §4.8).
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterable, Mapping
from pathlib import Path

from lrt_bench.core.layout import THINK_CLOSE, THINK_OPEN

DEFAULT_STEPS_MIX: dict[int, float] = {1: 0.25, 2: 0.25, 3: 0.25, 4: 0.25}

EOS = "<|im_end|>"


@dataclasses.dataclass(frozen=True)
class Ranges:
    """The numbers a problem may use."""

    max_value: int = 99  # every intermediate value and the answer stay in [0, max_value]
    max_operand: int = 9  # added or subtracted numbers are in [2, max_operand]
    max_factor: int = 9  # multipliers are in [2, max_factor]
    first_value: tuple[int, int] = (10, 99)  # the starting number's range

    def __post_init__(self) -> None:
        lo, hi = self.first_value
        if not (0 <= lo <= hi <= self.max_value) or min(self.max_operand, self.max_factor) < 2:
            raise ValueError(f"bad Ranges {self}: need 0 <= first_value <= max_value, operands >= 2")


DEFAULT_RANGES = Ranges()


def _one_step(rng: random.Random, value: int, ranges: Ranges) -> tuple[str, int, int]:
    """Pick an operation applicable to `value`; returns (op, operand, result)."""
    top = ranges.max_value
    ops = [op for op, ok in (("+", value + 2 <= top), ("-", value >= 2), ("*", 2 <= value <= top // 2))
           if ok]
    op = rng.choice(ops)
    if op == "+":
        b = rng.randint(2, min(ranges.max_operand, top - value))
        return op, b, value + b
    if op == "-":
        b = rng.randint(2, min(ranges.max_operand, value))
        return op, b, value - b
    b = rng.randint(2, min(ranges.max_factor, top // value))
    return op, b, value * b


@dataclasses.dataclass(frozen=True)
class TraceStyle:
    """How a slow thinker writes its trace: each optional line is drawn per step, per trace.

    With these probabilities a trace states every intermediate value 2-4 times and its length
    varies between samples of one problem; greedy decoding takes each line whose probability
    exceeds 1/2, so the greedy trace is a redundant one.
    """

    check: float = 0.6  # "check 22-5=17" after a line: the inverse operation
    redo: float = 0.35  # "again 17+5=22"
    so: float = 0.55  # "so 22"
    conclude: float = 0.7  # "so answer 57" after the last step
    answer: float = 0.6  # the closing "Answer: 57"; without it the answer is read from the lines above
    recap: float = 0.5  # after </think>: "The answer is 57." before the box


DENSE = TraceStyle(check=0, redo=0, so=0, conclude=0, answer=1, recap=0)  # one line per operation (world v1)
SLOW = TraceStyle()
_INVERSE = {"+": "-", "-": "+", "*": "/"}


def write_trace(facts: list[tuple[int, str, int, int]], rng: random.Random, style: TraceStyle) -> str:
    """A reasoning trace for the operations `facts` [(a, op, b, a op b), ...], drawn in `style`."""
    lines = []
    for a, op, b, c in facts:
        lines.append(f"{a}{op}{b}={c}")
        if rng.random() < style.check:
            lines.append(f"check {c}{_INVERSE[op]}{b}={a}")
        if rng.random() < style.redo:
            lines.append(f"again {a}{op}{b}={c}")
        if rng.random() < style.so:
            lines.append(f"so {c}")
    answer = facts[-1][3]
    if rng.random() < style.conclude:
        lines.append(f"so answer {answer}")
    if rng.random() < style.answer:
        lines.append(f"Answer: {answer}")
    return "".join(line + "\n" for line in lines)


def make_problem(rng: random.Random, steps: int, ranges: Ranges = DEFAULT_RANGES,
                 style: TraceStyle = DENSE) -> dict:
    """One problem with `steps` operations and one trace drawn in `style`; see the module docstring."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    value = rng.randint(*ranges.first_value)
    expr = str(value)
    facts = []
    for i in range(steps):
        op, b, result = _one_step(rng, value, ranges)
        facts.append((value, op, b, result))
        # Parenthesise the running expression before each operation after the first, so the
        # text reads as "apply these in order" with no precedence rules to learn.
        expr = f"({expr}){op}{b}" if i > 0 else f"{expr}{op}{b}"
        value = result
    answer = str(value)
    return {"problem": f"Compute {expr}.", "answer": answer, "steps": steps,
            "reasoning": write_trace(facts, rng, style), "facts": [list(f) for f in facts]}


def make_problems(
    n: int,
    seed: int,
    steps_mix: Mapping[int, float] | None = None,
    exclude: Iterable[str] = (),
    distinct: bool = True,
    ranges: Ranges = DEFAULT_RANGES,
    id_prefix: str = "tiny",
    style: TraceStyle = DENSE,
) -> list[dict]:
    """`n` problems drawn with `random.Random(seed)`.

    steps_mix maps a number of steps to its weight (normalised here). Problems whose text is in
    `exclude` are never drawn, which keeps a train split disjoint from an eval split.
    distinct=True draws each problem at most once; distinct=False lets a problem recur, which
    a training set needs: with the default ranges there are only about 1,500 one-step
    problems, so a distinct draw would silently starve the mix of them.
    A problem whose answer is also one of its earlier values ("Compute ((95+4)-2)+2.": 99 twice) is
    never drawn: its trace would state the answer before deriving it, which a reader of the trace
    (LC-R1's extractor, the redundancy analysis) cannot tell from having reached it.
    Rows: {"id", "problem", "answer", "steps", "reasoning"}.
    """
    mix = dict(DEFAULT_STEPS_MIX if steps_mix is None else steps_mix)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not mix or any(int(k) < 1 or w < 0 for k, w in mix.items()) or sum(mix.values()) <= 0:
        raise ValueError(f"steps_mix needs step counts >= 1 with non-negative weights, got {mix}")
    rng = random.Random(seed)
    step_counts, weights = [int(k) for k in mix], [float(w) for w in mix.values()]
    excluded = set(exclude)
    seen: set[str] = set()
    rows: list[dict] = []
    tries = 0
    while len(rows) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise ValueError(f"cannot draw {n} distinct problems with steps_mix={mix}")
        row = make_problem(rng, rng.choices(step_counts, weights)[0], ranges, style)
        if row["problem"] in excluded or (distinct and row["problem"] in seen):
            continue
        if any(str(a) == row["answer"] for a, _, _, _ in row["facts"]):  # the answer stated early
            continue
        seen.add(row["problem"])
        rows.append({"id": f"{id_prefix}-{len(rows):06d}", **row})
    return rows


def answer_text(row: Mapping, recap: bool = False) -> str:
    """The answer after `</think>`: the box, optionally after a one-sentence recap (as R1 writes)."""
    return (f"The answer is {row['answer']}.\n\n" if recap else "") + f"\\boxed{{{row['answer']}}}"


def assistant_target(row: Mapping, thinking: bool = True, recap: bool = False) -> str:
    """The assistant turn the base is trained to write, ending with `<|im_end|>`.

    thinking=True: `<think>\\n{reasoning}</think>\\n\\n{answer}`; thinking=False: the empty think
    block Qwen3 writes in non-thinking mode, then the answer.
    """
    think = f"{THINK_OPEN}\n{row['reasoning']}" if thinking else f"{THINK_OPEN}\n\n"
    return f"{think}{THINK_CLOSE}\n\n{answer_text(row, recap)}{EOS}"


def write_jsonl(rows: Iterable[Mapping], path: str | Path) -> None:
    """Write rows as one JSON object per line."""
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
