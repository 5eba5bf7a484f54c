"""Scalar rewards for the GRPO trainer, looked up by name from a recipe.

Every reward has one signature (open-r1's reward table, docs/design.md §5)::

    fn(completions, answers, *, group_size, correct, lengths, reasoning_lengths, **params) -> list[float]

* ``completions``: the decoded generated text of each sample. An explicit (think-mode) policy writes
  ``reasoning</think>answer``; a latent policy writes the answer only.
* ``answers``: the gold answer of each sample, already repeated per group. Groups are adjacent runs of
  ``group_size`` samples of the same prompt; group-relative rewards only ever compare within a run.
* ``correct``: the grader's verdict per sample (``lrt_bench.eval.grading``, computed once by the trainer).
* ``lengths``: ℓ, generated tokens per sample (reasoning + forced + answer tokens).
* ``reasoning_lengths``: tokens before ``</think>`` (0 in latent mode).
* ``params``: the reward's hyperparameters from the recipe. Unknown names, wrong types and bad
  values are ``LRTError``s that name them (``check_params``).

Rewards are pure functions of these lists. ``get_reward(name)`` looks one up (a direct call checks
its params); ``parse_specs`` checks a recipe's list of ``(name, weight, params)`` once, when the
config is built; ``compute_rewards`` evaluates that checked list each step and returns the weighted
total and each reward's unweighted values (for logging).

Registered rewards
    ``correctness``   1[correct].
    ``format``        think mode: 1 if there is exactly one ``</think>`` and a non-empty ``\\boxed{}``
                      after it; latent mode (no ``</think>``): 1 if there is a ``\\boxed{}``.
    ``shorterbetter`` ShorterBetter (Yi et al. 2025).
    ``lcr1``          LC-R1's base + length reward (Cheng et al. 2025).

LC-R1's compress reward is not a scalar reward: it is added to the advantage of the ``</think>``
token only. ``lcr1_compress`` computes it and ``cut_positions`` where the policy's reasoning is cut
for the loss; the valid lengths come from ``trainers.extractors``.

How LC-R1 is read here (paper: arXiv 2506.14755; code: github.com/zxiangx/LC-R1, a TRL fork)
    * "Correct" for LC-R1 means right answer AND exactly one ``</think>`` (the code tests
      ``format + accuracy == 2``). ``lcr1`` applies this itself; for ``lcr1_compress`` and
      ``cut_positions`` pass ``lcr1_right(completions, correct)``.
    * Length reward, ``1 - L_i / max_{j right} L_j``: the paper gives it to the right samples only,
      and 0 to every sample of a group with no right sample; that is ``length_scope: correct`` (the
      default). The released code adds ``1 - L_i / max`` to *every* sample of a group that has a
      right one, so a wrong answer longer than the longest right one gets a negative length reward;
      ``length_scope: group`` reproduces that.
    * L_i is the completion length *after* the valid-thinking cut (the code measures the cropped
      sequence): a trainer that cuts should pass post-cut ``lengths``.
    * Compress reward: ``1 - L_valid / L_think`` for a right sample whose reasoning reaches the answer,
      ``-1`` for a right sample whose reasoning never states it (Sufficiency: the answer was not
      derived in the reasoning), and 0 for a wrong sample (the code multiplies by the right mask).
    * LC-R1's advantages are mean-centred per group without dividing by the std (``scale_rewards=
      False``); the compress reward is added to the ``</think>`` token's advantage after centring,
      unnormalised, with coefficient 1; the length-reward coefficient is 1.0 in its train script.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from lrt_bench.core.layout import THINK_CLOSE
from lrt_bench.errors import LRTError
from lrt_bench.eval.grading import _balanced_group

__all__ = [
    "REWARDS",
    "RewardFn",
    "CheckedReward",
    "check_params",
    "compute_rewards",
    "cut_positions",
    "get_reward",
    "has_boxed",
    "lcr1_compress",
    "lcr1_right",
    "parse_specs",
    "register",
]

RewardFn = Callable[..., list[float]]
REWARDS: dict[str, RewardFn] = {}  # name -> the registered wrapper (checks params on every call)
_FNS: dict[str, Callable[..., list[float]]] = {}  # name -> the reward itself (params already checked)

# The trainer's inputs: every reward receives them, none may be a hyperparameter.
_INPUTS = ("completions", "answers", "group_size", "correct", "lengths", "reasoning_lengths")


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------


def _check_param(reward: str, key: str, default: Any, value: Any) -> Any:
    """``value`` coerced to the type of the default, or an LRTError naming the parameter."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise LRTError(f"reward {reward!r}: {key} must be true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise LRTError(f"reward {reward!r}: {key} must be a number, got {value!r}")
        return float(value) if isinstance(default, float) else value
    if isinstance(default, str) and not isinstance(value, str):
        raise LRTError(f"reward {reward!r}: {key} must be a string, got {value!r}")
    return value


def _check_inputs(
    name: str,
    completions: Sequence[str],
    answers: Sequence[str],
    group_size: int,
    correct: Sequence[bool],
    lengths: Sequence[int],
    reasoning_lengths: Sequence[int],
) -> None:
    n = len(completions)
    for what, seq in (("answers", answers), ("correct", correct), ("lengths", lengths),
                      ("reasoning_lengths", reasoning_lengths)):  # fmt: skip
        if len(seq) != n:
            raise LRTError(f"reward {name!r}: {what} has {len(seq)} entries for {n} completions")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise LRTError(f"reward {name!r}: group_size must be a positive integer, got {group_size!r}")
    if n % group_size:
        raise LRTError(f"reward {name!r}: {n} completions do not split into groups of {group_size}")
    for what, seq in (("lengths", lengths), ("reasoning_lengths", reasoning_lengths)):
        if any(x < 0 for x in seq):
            raise LRTError(f"reward {name!r}: {what} must be non-negative")


def register(
    name: str, check: Callable[[dict[str, Any]], None] | None = None
) -> Callable[[Callable[..., list[float]]], RewardFn]:
    """Register a reward under ``name``.

    The decorated function takes the trainer's inputs (see the module docstring) and its own
    hyperparameters as keyword-only arguments with defaults. ``check`` receives all of them (defaults
    filled in) and raises an LRTError for a bad value. The registered wrapper checks the params
    (``check_params``) and the inputs (equal lengths, whole groups), and returns floats.
    ``wrapper.params`` holds the defaults.
    """

    def deco(fn: Callable[..., list[float]]) -> RewardFn:
        if name in REWARDS:
            raise LRTError(f"reward {name!r} is already registered")
        defaults = {
            p.name: p.default
            for p in inspect.signature(fn).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in _INPUTS
        }
        missing = [k for k, v in defaults.items() if v is inspect.Parameter.empty]
        if missing:
            raise TypeError(f"reward {name!r}: hyperparameters need defaults: {', '.join(missing)}")

        @functools.wraps(fn)
        def wrapper(
            completions: Sequence[str],
            answers: Sequence[str],
            *,
            group_size: int,
            correct: Sequence[bool],
            lengths: Sequence[int],
            reasoning_lengths: Sequence[int],
            **params: Any,
        ) -> list[float]:
            return _evaluate(name, completions, answers, group_size=group_size, correct=correct, lengths=lengths,
                             reasoning_lengths=reasoning_lengths, params=check_params(name, params))

        wrapper.params = dict(defaults)  # type: ignore[attr-defined]
        wrapper.check = check  # type: ignore[attr-defined]
        wrapper.reward_name = name  # type: ignore[attr-defined]
        REWARDS[name] = wrapper
        _FNS[name] = fn
        return wrapper

    return deco


def check_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Reward ``name``'s hyperparameters checked: unknown names refused (listing the known ones),
    values coerced to the defaults' types, then the reward's own ``check``. Returns the given ones."""
    fn = get_reward(name)
    defaults = fn.params  # type: ignore[attr-defined]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise LRTError(f"reward {name!r}: unknown parameter(s) {', '.join(unknown)} (known: {known})")
    checked = {k: _check_param(name, k, defaults[k], v) for k, v in params.items()}
    if fn.check is not None:  # type: ignore[attr-defined]
        fn.check({**defaults, **checked})  # type: ignore[attr-defined]
    return checked


def _evaluate(
    name: str, completions: Sequence[str], answers: Sequence[str], *, group_size: int, correct: Sequence[bool],
    lengths: Sequence[int], reasoning_lengths: Sequence[int], params: dict[str, Any],
) -> list[float]:  # fmt: skip
    """Reward ``name`` with ``params`` already checked: the inputs checked, the values as floats."""
    _check_inputs(name, completions, answers, group_size, correct, lengths, reasoning_lengths)
    out = _FNS[name](
        list(completions), list(answers), group_size=group_size,
        correct=[bool(c) for c in correct], lengths=list(lengths),
        reasoning_lengths=list(reasoning_lengths), **params,
    )  # fmt: skip
    return [float(x) for x in out]


def get_reward(name: str) -> RewardFn:
    """The registered reward ``name``; an unknown name is an LRTError listing the known ones."""
    try:
        return REWARDS[name]
    except (KeyError, TypeError):
        raise LRTError(f"unknown reward {name!r}: use one of {', '.join(sorted(REWARDS))}") from None


def _groups(n: int, group_size: int) -> Iterable[range]:
    for start in range(0, n, group_size):
        yield range(start, start + group_size)


# ----------------------------------------------------------------------------------------------
# Rewards
# ----------------------------------------------------------------------------------------------

_BOXED = re.compile(r"\\boxed\s*(?=\{)")


def has_boxed(text: str) -> bool:
    """Whether ``text`` has a ``\\boxed{...}`` with balanced braces and non-blank content."""
    for m in _BOXED.finditer(text or ""):
        content = _balanced_group(text, m.end())
        if content is not None and content.strip():
            return True
    return False


@register("correctness")
def correctness(
    completions: list[str], answers: list[str], *, group_size: int, correct: list[bool],
    lengths: list[int], reasoning_lengths: list[int],
) -> list[float]:  # fmt: skip
    """r = 1[correct] (DeepSeek-R1's rule-based accuracy reward; the LRT paper's GRPO reward)."""
    return [1.0 if c else 0.0 for c in correct]


_FORMAT_MODES = ("auto", "think", "latent")


def _check_format(p: dict[str, Any]) -> None:
    if p["mode"] not in _FORMAT_MODES:
        raise LRTError(f"reward 'format': mode must be one of {', '.join(_FORMAT_MODES)}, got {p['mode']!r}")


@register("format", check=_check_format)
def format_reward(
    completions: list[str], answers: list[str], *, group_size: int, correct: list[bool],
    lengths: list[int], reasoning_lengths: list[int], mode: str = "auto",
) -> list[float]:  # fmt: skip
    """r = 1 when the completion has the expected shape, else 0.

    * think shape: exactly one ``</think>`` and a ``\\boxed{...}`` (balanced, non-blank) after it;
    * latent shape: a ``\\boxed{...}`` anywhere (a latent policy writes only the answer).

    ``mode: auto`` (default) reads a completion with a ``</think>`` as think-shaped and one without as
    latent. ``mode: think`` scores a completion with no ``</think>`` as 0 (an explicit policy that
    never closed its reasoning, e.g. truncated, should not pass); ``mode: latent`` always checks the
    latent shape.
    """
    out = []
    for text in completions:
        n_close = text.count(THINK_CLOSE)
        if mode == "latent" or (mode == "auto" and n_close == 0):
            out.append(1.0 if has_boxed(text) else 0.0)
        else:
            ok = n_close == 1 and has_boxed(text.split(THINK_CLOSE, 1)[1])
            out.append(1.0 if ok else 0.0)
    return out


def _check_shorterbetter(p: dict[str, Any]) -> None:
    if p["beta"] < 0:
        raise LRTError(f"reward 'shorterbetter': beta must be >= 0, got {p['beta']}")


@register("shorterbetter", check=_check_shorterbetter)
def shorterbetter(
    completions: list[str], answers: list[str], *, group_size: int, correct: list[bool],
    lengths: list[int], reasoning_lengths: list[int], alpha: float = 2.0, beta: float = 0.001,
) -> list[float]:  # fmt: skip
    """ShorterBetter (Yi et al. 2025, "ShorterBetter: Guiding Reasoning Models to Find Optimal
    Inference Length for Efficient Reasoning"):

        r_i = α·1[correct_i] − β·|ℓ_i − ℓ*|,
        ℓ* = min{ℓ_j : j in the group, correct_j}   (the Sample Optimal Length),
             or the group's mean length when no sample is correct.

    Defaults α = 2.0, β = 0.001 (the paper's). With no correct sample the target is the mean so the
    group is still pulled towards shorter outputs rather than left without a length signal.
    """
    out = [0.0] * len(completions)
    for g in _groups(len(completions), group_size):
        right = [lengths[i] for i in g if correct[i]]
        target = float(min(right)) if right else sum(lengths[i] for i in g) / len(g)
        for i in g:
            out[i] = alpha * (1.0 if correct[i] else 0.0) - beta * abs(lengths[i] - target)
    return out


def lcr1_right(completions: Sequence[str], correct: Sequence[bool]) -> list[bool]:
    """LC-R1's "right" sample: a correct answer AND exactly one ``</think>`` (format + accuracy = 2)."""
    return [bool(c) and text.count(THINK_CLOSE) == 1 for text, c in zip(completions, correct, strict=True)]


_LENGTH_SCOPES = ("correct", "group")


def _check_lcr1(p: dict[str, Any]) -> None:
    if p["length_scope"] not in _LENGTH_SCOPES:
        raise LRTError(
            f"reward 'lcr1': length_scope must be one of {', '.join(_LENGTH_SCOPES)}, got {p['length_scope']!r}"
        )


@register("lcr1", check=_check_lcr1)
def lcr1(
    completions: list[str], answers: list[str], *, group_size: int, correct: list[bool],
    lengths: list[int], reasoning_lengths: list[int], length_coef: float = 1.0,
    length_scope: str = "correct",
) -> list[float]:  # fmt: skip
    """LC-R1's reward without the compress term (Cheng et al. 2025, "Optimizing Length Compression in
    Large Reasoning Models", arXiv 2506.14755):

        r_i = r_format,i + r_acc,i + length_coef · r_length,i
        r_format,i = 1[exactly one </think>],  r_acc,i = 1[correct_i]
        r_length,i = 1 − ℓ_i / max{ℓ_j : j in the group, right_j}   for right_i (right = format ∧ acc)
                     0                                              otherwise,
        and r_length = 0 for the whole group when it has no right sample.

    ``length_scope: group`` gives ``1 − ℓ_i / max`` to every sample of a group that has a right one,
    as the released code does (see the module docstring). A group whose right samples all have
    length 0 gets no length reward. ℓ should be the post-cut length when the trainer applies
    LC-R1's valid-thinking cut. Meant for explicit policies: a latent completion has no
    ``</think>``, so it is never right here.
    """
    fmt = [1.0 if text.count(THINK_CLOSE) == 1 else 0.0 for text in completions]
    right = lcr1_right(completions, correct)
    out = [fmt[i] + (1.0 if correct[i] else 0.0) for i in range(len(completions))]
    for g in _groups(len(completions), group_size):
        longest = max((lengths[i] for i in g if right[i]), default=0)
        if longest <= 0:
            continue  # no right sample (or only empty ones): no length reward for this group
        for i in g:
            if right[i] or length_scope == "group":
                out[i] += length_coef * (1.0 - lengths[i] / longest)
    return out


# ----------------------------------------------------------------------------------------------
# LC-R1's compress reward and cut
# ----------------------------------------------------------------------------------------------


def _check_compress_inputs(
    correct: Sequence[bool], valid_lengths: Sequence[int | None], think_lengths: Sequence[int]
) -> None:
    if not len(correct) == len(valid_lengths) == len(think_lengths):
        raise LRTError(
            f"lcr1 compress: correct, valid_lengths and think_lengths differ in length "
            f"({len(correct)}, {len(valid_lengths)}, {len(think_lengths)})"
        )
    for v, t in zip(valid_lengths, think_lengths):
        if t < 0 or (v is not None and not 0 <= v <= t):
            # valid and think lengths must be in the same unit (tokens in LC-R1): a valid prefix
            # longer than the reasoning is a conversion bug in the caller, not model output.
            raise LRTError(f"lcr1 compress: need 0 <= valid_length <= think_length, got {v} and {t}")


def lcr1_compress(
    correct: Sequence[bool], valid_lengths: Sequence[int | None], think_lengths: Sequence[int]
) -> list[float]:
    """LC-R1's compress reward, added by the trainer to the advantage of the ``</think>`` token:

        r_compress,i = 1 − L_valid,i / L_think,i   right_i and the reasoning reaches the answer
                       −1                          right_i and it never does (valid length None)
                       0                           not right_i

    ``correct`` should be LC-R1's "right" (``lcr1_right``). Valid and think lengths are in the same
    unit (LC-R1 counts tokens). A right sample with an empty reasoning has valid length None (the
    answer was never derived in the reasoning) and gets −1, as in LC-R1; one whose caller passes
    valid = think = 0 gets 0 (nothing to compress).
    """
    _check_compress_inputs(correct, valid_lengths, think_lengths)
    out = []
    for c, v, t in zip(correct, valid_lengths, think_lengths):
        if not c:
            out.append(0.0)
        elif v is None:
            out.append(-1.0)
        else:
            out.append(1.0 - v / t if t > 0 else 0.0)
    return out


def cut_positions(
    correct: Sequence[bool], valid_lengths: Sequence[int | None], think_lengths: Sequence[int]
) -> list[int | None]:
    """Where each sample's reasoning is cut for the policy loss, None for no cut.

    LC-R1 trains on the *compressed* sequence of a right sample: its reasoning up to L_valid, then
    ``</think>`` and the answer (the invalid thinking in between is dropped, so the ``</think>``
    token, which carries the compress reward, follows the valid prefix). A wrong sample, a right one
    whose reasoning never reaches the answer, and a right one with nothing to drop (L_valid =
    L_think) are not cut.
    """
    _check_compress_inputs(correct, valid_lengths, think_lengths)
    return [v if c and v is not None and v < t else None for c, v, t in zip(correct, valid_lengths, think_lengths)]


# ----------------------------------------------------------------------------------------------
# A recipe's list of rewards
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CheckedReward:
    """One reward of a recipe, checked (``parse_specs``): its name, its weight in the total and its
    hyperparameters, coerced to their defaults' types. A GRPO config's ``rewards`` holds these."""

    name: str
    weight: float = 1.0
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


def parse_specs(specs: Iterable[Any]) -> list[CheckedReward]:
    """Check a recipe's rewards, before any model is loaded.

    Each item is a name (weight 1), ``(name, weight)``, ``(name, weight, params)``, a mapping
    ``{name: ..., weight: 1.0, params: {...}}``, or any object with ``name``, ``weight`` and
    ``params`` attributes (a ``CheckedReward``). Unknown names, unknown or ill-typed
    parameters, non-numeric weights and a name listed twice are LRTErrors; the result holds the
    parameters coerced to their defaults' types.
    """
    out: list[CheckedReward] = []
    for item in specs:
        if isinstance(item, str):
            name, weight, params = item, 1.0, {}
        elif isinstance(item, Mapping):
            extra = sorted(set(item) - {"name", "weight", "params"})
            if extra or "name" not in item:
                raise LRTError(f"a reward is {{name: ..., weight: ..., params: {{...}}}}, got {dict(item)!r}")
            name, weight, params = item["name"], item.get("weight", 1.0), item.get("params") or {}
        elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
            name, weight = item[0], item[1]
            params = (item[2] if len(item) == 3 else None) or {}
        elif hasattr(item, "name") and hasattr(item, "weight"):
            name, weight, params = item.name, item.weight, getattr(item, "params", None) or {}
        else:
            raise LRTError(f"a reward is (name, weight) or (name, weight, params), got {item!r}")
        get_reward(name)  # an unknown name lists the known ones
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise LRTError(f"reward {name!r}: weight must be a number, got {weight!r}")
        if not isinstance(params, Mapping):
            raise LRTError(f"reward {name!r}: params must be a mapping, got {params!r}")
        checked = check_params(name, params)
        if any(s.name == name for s in out):
            raise LRTError(f"reward {name!r} is listed twice: give it one entry with its total weight")
        out.append(CheckedReward(name, float(weight), checked))
    return out


def compute_rewards(
    specs: Sequence[CheckedReward],
    *,
    completions: Sequence[str],
    answers: Sequence[str],
    group_size: int,
    correct: Sequence[bool],
    lengths: Sequence[int],
    reasoning_lengths: Sequence[int],
) -> tuple[list[float], dict[str, list[float]]]:
    """Evaluate a recipe's rewards: ``total_i = Σ_k weight_k · r_k,i``.

    Returns ``(total, per_reward)`` where ``per_reward[name]`` is reward ``name``'s unweighted values
    (in the order of ``specs``). ``specs`` is ``parse_specs``'s result (a GRPO config's ``rewards``),
    used as it is: nothing is parsed or checked again each step. An empty list is an error (GRPO
    needs a reward).
    """
    if not specs:
        raise LRTError(f"no rewards given: list at least one of {', '.join(sorted(REWARDS))}")
    per: dict[str, list[float]] = {}
    total = [0.0] * len(completions)
    for spec in specs:
        vals = _evaluate(
            spec.name, completions, answers, group_size=group_size, correct=correct, lengths=lengths,
            reasoning_lengths=reasoning_lengths, params=spec.params,
        )  # fmt: skip
        per[spec.name] = vals
        total = [t + spec.weight * v for t, v in zip(total, vals)]
    return total, per
