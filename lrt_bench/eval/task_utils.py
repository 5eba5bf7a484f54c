"""Prompts and per-doc metrics shared by lrt-bench's lm-eval tasks (each task's utils.py is a few lines).

How the samples reach `process_*`
    Every task has ``repeats: 4`` and the filter ``take_first_k`` with ``k: 4`` (named ``none``). lm-eval
    makes one request per doc, sends it to the model ``repeats`` times, and stores the outputs in
    ``instance.resps``; the filter keeps all of them, and ``process_results(doc, results)`` receives
    ``results = [filtered_resps]`` (one entry per request), i.e. ``[[r1, r2, r3, r4]]``
    (lm_eval/evaluator.py, ``task.process_results(doc, [req.filtered_resps[key] for req in requests])``).
    `responses_of` flattens that, so a plain ``[r1]`` (lm-eval's default ``take_first``) works too.

Metrics (per doc; lm-eval averages them over docs)
    pass@1, pass@4   unbiased pass@k (Chen et al. 2021) with n = the doc's number of responses;
                     pass@1 is the fraction of correct responses. NaN when n < k.
    maj@4            the majority answer over the doc's responses is correct (ties: the answer seen
                     first; responses without an answer do not vote).
    reasoning_tokens, forced_tokens, answer_tokens, latents, seconds
                     the mean over the doc's responses of the backend's account (`Response.account`,
                     `--model lrt`); NaN ("not measured") for plain strings (e.g. `--model hf`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

from lrt_bench.eval.grading import (
    extract_choice,
    extract_math_answer,
    grade_math_many,
    majority_vote,
    pass_at_k,
)
from lrt_bench.eval.response import ACCOUNT_FIELDS, account_of

LETTERS = "ABCDEFGHIJ"
PASS_KS = (1, 4)
MAJ_KEY = "maj@4"

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

# ------------------------------------------------------------------------------------------------
# Prompts (the user turn; the backend applies the chat template)
# ------------------------------------------------------------------------------------------------


def math_prompt(doc: dict) -> str:
    """The problem, then the R1 / Qwen3 evaluation instruction on its own line."""
    return f"{doc['problem']}\n{MATH_INSTRUCTION}"


def tiny_prompt(doc: dict) -> str:
    """The tiny world's problem exactly as its base was trained on it (no instruction)."""
    return doc["problem"]


def _letter_list(letters: str) -> str:
    return ", ".join(letters[:-1]) + f" or {letters[-1]}" if len(letters) > 1 else letters


def choice_prompt(doc: dict) -> str:
    """[passage], question, lettered options, and the request for the letter in \\boxed{}."""
    letters = LETTERS[: len(doc["options"])]
    parts = []
    if doc.get("passage"):
        parts.append(doc["passage"])
    parts.append(doc["question"])
    parts.append("\n".join(f"({letter}) {option}" for letter, option in zip(letters, doc["options"])))
    parts.append(
        "Please reason step by step, and put the letter of your final answer "
        f"({_letter_list(letters)}) within \\boxed{{}}."
    )
    return "\n\n".join(parts)


# ------------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------------


def responses_of(results: Sequence[Any]) -> list:
    """The doc's responses from lm-eval's `results` (``[[r1..rn]]`` with our filter, ``[r1]`` without)."""
    out: list = []
    for item in results:
        if isinstance(item, (list, tuple)):
            out.extend(item)
        else:
            out.append(item)
    return out


def pass_metrics(correct: Sequence[bool]) -> dict[str, float]:
    n, c = len(correct), sum(bool(x) for x in correct)
    return {f"pass@{k}": pass_at_k(n, c, k) if n >= k else math.nan for k in PASS_KS}


def cost_metrics(responses: Sequence[Any]) -> dict[str, float]:
    """Mean of each account field over the responses; NaN when any response did not measure it."""
    if not responses:
        return {f: math.nan for f in ACCOUNT_FIELDS}
    accounts = [account_of(r) for r in responses]
    return {f: sum(a[f] for a in accounts) / len(accounts) for f in ACCOUNT_FIELDS}


def _majority_correct(answers: list, correct: list[bool], equal=None) -> float:
    winner = majority_vote(answers, equal=equal)
    if winner is None:
        return 0.0
    return float(correct[answers.index(winner)])  # the first response whose answer won


def _metrics(correct: list[bool], maj: float, responses: list) -> dict[str, float]:
    if not responses:
        return {**{f"pass@{k}": math.nan for k in PASS_KS}, MAJ_KEY: math.nan, **cost_metrics(responses)}
    return {**pass_metrics(correct), MAJ_KEY: maj, **cost_metrics(responses)}


def process_math(doc: dict, results: Sequence[Any], gold_key: str = "answer",
                 timeout_s: float = 5.0) -> dict[str, float]:
    """Metrics for a math doc: math-verify grading of the final (last boxed) answer of each response."""
    responses = responses_of(results)
    gold = str(doc[gold_key])
    correct = grade_math_many(responses, gold, timeout_s=timeout_s)  # side by side: one doc ~ one timeout_s
    answers = [extract_math_answer(r) for r in responses]
    maj = _majority_correct(answers, correct) if responses else math.nan
    return _metrics(correct, maj, responses)


def process_choice(doc: dict, results: Sequence[Any], gold_key: str = "answer",
                   options_key: str = "options") -> dict[str, float]:
    """Metrics for a multiple-choice doc: the option letter of each response against the gold letter."""
    responses = responses_of(results)
    letters = LETTERS[: len(doc[options_key])]
    gold = str(doc[gold_key]).strip().upper()
    picks = [extract_choice(r, letters) for r in responses]
    correct = [p is not None and p == gold for p in picks]
    maj = _majority_correct(picks, correct, equal=operator.eq) if responses else math.nan
    return _metrics(correct, maj, responses)
