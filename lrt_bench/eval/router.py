"""Hybrid reasoning's router: which latent answers are unsure enough to be asked again in think mode.

A latent answer's confidence is one number per sample (`score`):

    mean_logprob  the mean log-probability of its answer tokens (EOS included) under the base at T = 1
    min_logprob   the lowest of those log-probabilities (one unsure token is enough)
    agreement     the share of the problem's latent samples (`repeats` > 1) whose extracted answer
                  equals this sample's (self-consistency)

A sample whose score is below the threshold τ is re-asked (`route`); τ = −inf keeps every latent
answer, τ = +inf re-asks every one. The routing is a pure function of the scores, so a sweep over τ
needs one latent and one think run, not one run per τ (`lrt-bench router-sweep`). `generate_hybrid`
runs both passes on a `LatentLM`; it lives here, not on the model, because the agreement score grades
answers (eval's grading), and core imports nothing from eval.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch

from lrt_bench.core import layout
from lrt_bench.core.generation import DecodeConfig, Generation, LatentLM
from lrt_bench.errors import LRTError
from lrt_bench.eval.grading import extract_math_answer, math_equal

# score -> (lowest, highest) value it can take
SCORES: dict[str, tuple[float, float]] = {
    "mean_logprob": (-math.inf, 0.0),
    "min_logprob": (-math.inf, 0.0),
    "agreement": (0.0, 1.0),
}


def check_score(score: str, repeats: int = 1) -> str:
    if score not in SCORES:
        raise LRTError(f"router_score {score!r} is not one of {', '.join(SCORES)}")
    if score == "agreement" and repeats < 2:
        raise LRTError("router_score=agreement compares a problem's latent samples: it needs repeats >= 2 "
                       "(lm-eval's --repeats / the task's repeats); use mean_logprob or min_logprob")
    return score


def check_threshold(threshold: Any, score: str) -> float:
    """τ as a float: ±inf, or a finite value inside the score's range (outside it τ decides nothing)."""
    try:
        tau = float(threshold)
    except (TypeError, ValueError):
        raise LRTError(f"router_threshold={threshold!r} is not a number (use e.g. -0.5, inf or -inf)") from None
    if math.isnan(tau):
        raise LRTError("router_threshold=nan is not a threshold: use a number, inf or -inf")
    lo, hi = SCORES[check_score(score, repeats=2)]
    if math.isfinite(tau) and not lo <= tau <= hi:
        raise LRTError(
            f"router_threshold={tau:g} is outside the range of router_score={score} ([{lo:g}, {hi:g}]): every "
            f"answer would go the same way; use a value in the range, or inf (always think) / -inf (never)"
        )
    return tau


def scores(gens: Sequence[Any], repeats: int, score: str) -> list[float]:
    """One confidence per generation (grouped by problem, `repeats` adjacent rows per problem)."""
    check_score(score, repeats)
    if score in ("mean_logprob", "min_logprob"):
        attr = "answer_logprob_mean" if score == "mean_logprob" else "answer_logprob_min"
        out = [getattr(g.account, attr) for g in gens]
        if any(v is None for v in out):
            raise LRTError("the latent pass did not score its answers: generate with score_answers=True")
        return [float(v) for v in out]
    answers = [extract_math_answer(g.text) for g in gens]
    out = []
    for i, a in enumerate(answers):
        start = (i // repeats) * repeats
        group = answers[start : start + repeats]
        out.append(0.0 if a is None else sum(b is not None and math_equal(a, b) for b in group) / len(group))
    return out


def route(row_scores: Sequence[float], threshold: float) -> list[bool]:
    """True where the sample is re-asked in think mode: its score is below τ."""
    return [s < threshold for s in row_scores]


def outcomes(redo: Sequence[bool], latent: Sequence[float], think: Sequence[float]) -> list[float]:
    """Per sample, the value the hybrid gets: think's where the sample is re-asked, latent's elsewhere."""
    return [t if r else c for r, c, t in zip(redo, latent, think)]


def sweep(latent_correct: Sequence[float], latent_tokens: Sequence[float], think_correct: Sequence[float],
          think_tokens: Sequence[float], row_scores: Sequence[float], thresholds: Sequence[float]) -> list[dict]:
    """The hybrid's accuracy and mean generated tokens at each τ, from one latent and one think run.

    Per sample i: kept (score ≥ τ) -> latent_correct[i] at latent_tokens[i]; re-asked -> think_correct[i]
    at latent_tokens[i] + think_tokens[i] (the row paid for both passes).
    """
    n = len(row_scores)
    if not n or not all(len(x) == n for x in (latent_correct, latent_tokens, think_correct, think_tokens)):
        raise LRTError("router sweep: the latent run, the think run and the scores must cover the same samples")
    out = []
    for tau in thresholds:
        redo = route(row_scores, tau)
        acc = sum(outcomes(redo, latent_correct, think_correct)) / n
        tok = sum(lt + (tt if r else 0.0) for r, lt, tt in zip(redo, latent_tokens, think_tokens)) / n
        out.append({"threshold": tau, "accuracy": acc, "mean_generated_tokens": tok, "rerouted": sum(redo) / n})
    return out


@torch.no_grad()
def generate_hybrid(
    lm: LatentLM, prompts: Sequence[layout.Prompt], config: DecodeConfig, *, repeats: int = 1,
    threshold: float = -math.inf, score: str = "mean_logprob",
) -> list[Generation]:
    """Latent first; samples whose confidence (`score`) is below `threshold` are answered again in think
    mode under the same budget. Both passes batch.

    Returns len(prompts) * repeats generations, grouped by prompt: the latent ones kept and the think
    ones that replaced the others. Each account records its `route`, its `router_score` and, for a
    replaced row, the latent answer's tokens (`first_pass_tokens`) and both passes' seconds.
    """
    check_score(score, repeats)
    gens = lm.generate(prompts, dataclasses.replace(config, mode="latent", score_answers=True), repeats=repeats)
    row_scores = scores(gens, repeats, score)
    redo = [i for i, r in enumerate(route(row_scores, threshold)) if r]
    for g, sc in zip(gens, row_scores):
        g.account.route, g.account.router_score = "latent", sc
    if redo:
        again = lm.generate([prompts[i // repeats] for i in redo],
                            dataclasses.replace(config, mode="think", score_answers=False))
        for i, g in zip(redo, again):
            first = gens[i].account
            g.account.route, g.account.router_score = "think", first.router_score
            g.account.first_pass_tokens = first.generated_tokens
            g.account.latents = first.latents
            g.account.seconds += first.seconds
            gens[i] = g
    return gens
