"""Valid-thinking extractors for LC-R1's compress reward (Cheng et al. 2025, arXiv 2506.14755).

LC-R1 calls the part of a reasoning trace up to and including the first sentence that reaches the
gold answer its *valid* thinking R'; everything after it (re-checking an answer already found) is
*invalid* thinking. The trainer cuts the policy's reasoning at R' and gives a compress reward at
``</think>`` (``trainers.rewards.lcr1_compress``). An extractor finds R':

    valid_length(problem, reasoning, gold) -> int | None

the number of CHARACTERS of ``reasoning`` that are valid, or None when the gold answer never appears
in it. Two extractors:

``RuleExtractor`` (``{type: rule}``)
    Splits the reasoning into steps (``split_steps``: line breaks and sentence ends) and returns the
    end of the first step that *states* the gold answer (``step_reaches``). Good for the tiny world's
    traces and for plain arithmetic prose; no model, no cost.

``LLMExtractor`` (``{type: llm, model: <id or dir>, ...}``)
    What the paper does (its "LC-Extractor" is a fine-tuned Qwen2.5 model): a causal LM is shown the
    problem, the reasoning and the gold answer and asked to copy the reasoning verbatim up to the
    first sentence that reaches the answer. Its copy is mapped back onto the reasoning
    (``map_copy_to_offset``) to get a character offset. Two modes:

    * ``mode: generate`` (default): greedy decoding of the copy; ``NONE`` means the answer never
      appears. ``max_new_tokens`` defaults to the reasoning's own token count + 64 (a copy can never
      be longer); a copy cut off by the token limit is not trusted. Set ``max_new_tokens`` only to
      cap cost: every copy longer than it becomes an extractor failure (``on_failure``).
    * ``mode: teacher_forced``: the reasoning itself is fed as the assistant's reply and the cut is
      the first position where the model's argmax is end-of-turn: one forward pass instead of a
      decode as long as the reasoning. This is how the LC-R1 code reads its extractor (argmax ==
      ``<|im_end|>`` over the teacher-forced thinking tokens); it needs a model that reliably ends
      its copy, such as a fine-tuned extractor.

When the extractor fails rather than answers (a copy it cannot place, a copy cut off by the
token limit, an input longer than the model takes), ``on_failure: keep`` (default) returns the whole
reasoning (no cut, compress reward 0: a failure is neutral for the policy) and ``on_failure: none``
returns None, as LC-R1's code does. ``LLMExtractor.stats`` counts each kind for logging.

Both modes snap the offset forward to the end of the step it falls in (a copy that stops mid-sentence
meant that sentence: the instruction is "up to and including"), so their cuts agree with the rule
extractor's on the same step boundaries.

``build_extractor(spec)`` turns a recipe's ``extractor:`` mapping into one; unknown keys are errors.
Both extractors also offer ``valid_lengths(problems, reasonings, golds)`` for a batch.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

from lrt_bench.core.layout import THINK_CLOSE
from lrt_bench.errors import LRTError
from lrt_bench.eval.grading import _balanced_group, _to_number

__all__ = [
    "Extractor",
    "LLMExtractor",
    "RuleExtractor",
    "build_extractor",
    "map_copy_to_offset",
    "split_steps",
    "step_reaches",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class Extractor(Protocol):
    """Finds the valid prefix of a reasoning trace (see the module docstring)."""

    def valid_length(self, problem: str, reasoning: str, gold: str) -> int | None:
        """Characters of ``reasoning`` up to and including the first step reaching ``gold``; None if never."""
        ...


# ----------------------------------------------------------------------------------------------
# Steps
# ----------------------------------------------------------------------------------------------

# A step ends after a line break, or after sentence-final punctuation followed by whitespace or the
# end of the text ("x = 3.5 so" does not split at the decimal point; "so x = 12." does at the end).
_STEP_END = re.compile(r"\n|[.!?]+(?=\s|$)|[。！？]")


def split_steps(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the steps of ``text``, covering it without gaps.

    The end includes the terminator (the ``\\n`` or the ``.``), so a cut at a step end leaves a
    reasoning that ends cleanly. Text after the last terminator is a final step of its own. (The
    redundancy analysis's ``lrt_bench.tools.redundancy_deletion.split_steps`` groups whitespace with
    the step it ends instead: its steps are deleted, not cut at.)
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _STEP_END.finditer(text):
        spans.append((start, m.end()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _snap_to_step_end(text: str, offset: int) -> int:
    """The end of the step that holds character ``offset - 1`` (offset itself when it is a step end)."""
    if offset <= 0:
        return 0
    for start, end in split_steps(text):
        if start < offset <= end:
            return end
    return min(offset, len(text))


# ----------------------------------------------------------------------------------------------
# Does a step state the gold answer?
# ----------------------------------------------------------------------------------------------

# A number as written in prose or an equation: "-1,234.5", "57", "0.25". The look-behind keeps the
# "-" of "66-9" from being read as a sign (that "9" is then seen as an operand, below).
_NUMBER = re.compile(r"(?<![\w.])-?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
_LATEX_FRAC = re.compile(r"-?\\[dt]?frac\s*\{\s*-?[0-9]+\s*\}\s*\{\s*[0-9]+\s*\}")
_SLASH_FRAC = re.compile(r"(?<![\w./])-?[0-9]+\s*/\s*[0-9]+(?![\w./])")
_BOXED = re.compile(r"\\boxed\s*(?=\{)")
_LIST_MARKER = re.compile(r"(?m)^[ \t]*[0-9]+[.)][ \t]+")  # "1. " / "2) " numbering a list
# Arithmetic operators: a number next to one is an operand, not a result.
_OPS = "+-*/×÷·^−"
_LATEX_OPS = ("\\times", "\\cdot", "\\div", "\\pm", "\\mp")


def _is_operand(seg: str, start: int, end: int) -> bool:
    """Whether the token ``seg[start:end]`` is an operand rather than a stated value.

    A stated value is the result after ``=`` or a standalone number ("12 works", "Answer: 57"). An
    operand has an arithmetic operator on either side (whitespace skipped) or an ``=`` after it
    ("17+5=22": 17 and 5 are operands, 22 is the result). Characters glued to the token that make it
    part of a LaTeX construct or a variable ("x2", "2x", "{2}", "^2") also disqualify it.
    """
    before = seg[start - 1] if start > 0 else " "
    after = seg[end] if end < len(seg) else " "
    if before.isalpha() or before in "\\{_^" or after.isalpha() or after in "{}_^":
        return True
    left = seg[:start].rstrip()
    right = seg[end:].lstrip()
    if left and (left[-1] in _OPS or left.endswith(_LATEX_OPS)):
        return True
    if right and (right[0] in _OPS + "=" or right.startswith(_LATEX_OPS)):
        return True
    return False


_SPACES = re.compile(r"\s+|\\[,;:! ]|\\left|\\right|\$")


def _normalize_expr(s: str) -> str:
    """An expression with spacing, ``$`` and sizing commands removed (``\\dfrac`` read as ``\\frac``)."""
    s = _SPACES.sub("", s.replace("\u2212", "-"))
    return re.sub(r"\\[dt]frac", r"\\frac", s)


def _mask(seg: str, start: int, end: int) -> str:
    return seg[:start] + " " * (end - start) + seg[end:]


def _gold_value(gold: str) -> Fraction | None:
    parsed = _to_number(str(gold).strip())
    return None if parsed is None else parsed[0]


def step_reaches(step: str, gold: str) -> bool:
    """Whether ``step`` states the gold answer (the rule of ``RuleExtractor``).

    * A gold that is a plain number (``57``, ``-3``, ``0.5``, ``1,000``, ``3/4``, ``\\frac{3}{4}``,
      ``50\\%``; ``lrt_bench.eval.grading``'s number reader) is reached when the step states a number of
      the same value as a whole token: the content of a ``\\boxed{}``, a fraction, or a number that
      is not an operand (``_is_operand``). So for gold 57, "66-9=57", "Answer: 57", "57 works" and
      "x = 57.0" reach it; "157", "5.7", "57+3=60" and "x^{57}" do not.
    * Any other gold (``2\\sqrt{3}``, ``x^2+1``, ``(1,2)``) is reached when its normalised text
      (``_normalize_expr``) occurs in the normalised step with no letter or digit glued to either
      side (so ``x^2+1`` is not found in ``x^2+10``).
    """
    gold = str(gold).strip()
    if not gold:
        return False
    value = _gold_value(gold)
    if value is None:
        g = _normalize_expr(gold)
        s = _normalize_expr(step)
        if not g:
            return False
        for m in re.finditer(re.escape(g), s):
            b = s[m.start() - 1] if m.start() > 0 else " "
            a = s[m.end()] if m.end() < len(s) else " "
            if not (b.isalnum() and g[0].isalnum()) and not (a.isalnum() and g[-1].isalnum()):
                return True
        return False

    seg = _LIST_MARKER.sub(lambda m: " " * len(m.group(0)), step)
    # \boxed{...}: its content is a stated answer whatever it looks like.
    for m in list(_BOXED.finditer(seg)):
        content = _balanced_group(seg, m.end())
        if content is None:
            continue
        got = _to_number(content.strip())
        if got is not None and got[0] == value:
            return True
        seg = _mask(seg, m.start(), m.end() + len(content) + 2)
    # fractions, then plain numbers; each found token is masked so its digits are not read again
    for pattern in (_LATEX_FRAC, _SLASH_FRAC, _NUMBER):
        for m in list(pattern.finditer(seg)):
            if _is_operand(seg, m.start(), m.end()):
                seg = _mask(seg, m.start(), m.end())
                continue
            got = _to_number(m.group(0).replace(" ", ""))
            if got is not None and got[0] == value:
                return True
            seg = _mask(seg, m.start(), m.end())
    return False


# ----------------------------------------------------------------------------------------------
# Rule extractor
# ----------------------------------------------------------------------------------------------


class RuleExtractor:
    """The end of the first step that states the gold answer (``split_steps`` + ``step_reaches``).

    "17+5=22\\n22*3=66\\n66-9=57\\nAnswer: 57\\n" with gold 57 gives 24, the end of "66-9=57\\n";
    "... so x = 12. Let me double check: 12 works." with gold 12 gives the end of "so x = 12.".
    The problem text is not used.
    """

    def valid_length(self, problem: str, reasoning: str, gold: str) -> int | None:
        reasoning = reasoning or ""
        for start, end in split_steps(reasoning):
            if step_reaches(reasoning[start:end], gold):
                return end
        return None

    def valid_lengths(
        self, problems: Sequence[str], reasonings: Sequence[str], golds: Sequence[str]
    ) -> list[int | None]:
        return [self.valid_length(p, r, g) for p, r, g in zip(problems, reasonings, golds, strict=True)]


# ----------------------------------------------------------------------------------------------
# LLM extractor
# ----------------------------------------------------------------------------------------------

PROMPT = """You are given a math problem, a model's thinking process for it, and the correct final answer.

Find the FIRST sentence of the thinking process where the correct answer is reached. Copy the thinking \
process word for word from its very beginning up to and including that sentence, and stop there: \
write nothing after that sentence, no comments, no explanation.
If the correct answer never appears in the thinking process, write exactly: NONE

Example
Problem: What is 1+1?
Thinking process: I need 1+1. That makes 2. Let me verify: 1+1 is 2, yes.
Correct answer: 2
Output: I need 1+1. That makes 2.

Problem: {problem}
Thinking process: {reasoning}
Correct answer: {gold}
Output:"""

_NONE_REPLY = re.compile(r"^\W*(?:none|n/?a|not\s+found|no)\W*$", re.IGNORECASE)
_LEAD_IN = re.compile(r"^(?:here\s+is|here's|output|prefix|answer)[^\n]{0,60}:\s*", re.IGNORECASE)
_FENCE = re.compile(r"^```[^\n]*\n?|\n?```$")


def _dense(text: str) -> tuple[str, list[int]]:
    """``text`` without whitespace, and for each kept character its index in ``text``."""
    chars: list[str] = []
    pos: list[int] = []
    for i, ch in enumerate(text):
        if not ch.isspace():
            chars.append(ch)
            pos.append(i)
    return "".join(chars), pos


def _clean_copy(output: str) -> str:
    out = output or ""
    if THINK_CLOSE in out:  # a thinking model's own deliberation comes first
        out = out.rsplit(THINK_CLOSE, 1)[1]
    out = out.strip()
    out = _FENCE.sub("", out).strip()
    if len(out) >= 2 and out[0] == out[-1] and out[0] in "\"'`":
        out = out[1:-1].strip()
    return out


def map_copy_to_offset(reasoning: str, output: str, min_overlap: float = 0.9) -> int | None:
    """Map an extractor's copy of a reasoning prefix back onto the reasoning: a character offset.

    1. Clean the copy: text after a ``</think>``, code fences and wrapping quotes removed. An empty
       copy, or one that says ``NONE`` (also "N/A", "not found"), gives None.
    2. Compare copy and reasoning with all whitespace ignored (models re-flow spaces and line breaks).
       A copy that is entirely a prefix of the reasoning ends where its last character lies. A
       lead-in such as "Here is the prefix:" before the copy is dropped when the reasoning does not
       start with it.
    3. A copy that departs from the reasoning is located by its last step (the sentence the model
       meant to stop at): the first occurrence of that step, verbatim up to whitespace, that ends at
       or after the point of departure. If it is not found, a copy that matched at least
       ``min_overlap`` of its characters before departing (a slip at the very end) ends where the
       match ended; anything else is not trusted and gives None.
    4. The offset is moved forward to the end of the step it falls in (``split_steps``).

    Never raises; the result is None or in ``1..len(reasoning)``.
    """
    try:
        out = _clean_copy(output)
        if not out or _NONE_REPLY.match(out):
            return None
        dense_r, pos_r = _dense(reasoning)
        if not dense_r:
            return None
        m = _LEAD_IN.match(out)
        if m and not dense_r.startswith(_dense(m.group(0))[0]):
            out = out[m.end() :]
        dense_o, _ = _dense(out)
        if not dense_o:
            return None
        n = 0
        limit = min(len(dense_o), len(dense_r))
        while n < limit and dense_o[n] == dense_r[n]:
            n += 1
        if n == len(dense_o):
            end = pos_r[n - 1] + 1
        else:
            end = None
            steps = [out[s:e] for s, e in split_steps(out) if out[s:e].strip()]
            last = _dense(steps[-1])[0] if steps else ""
            # A last step of a character or two ("2.") is too ambiguous to look up.
            if len(last) >= 4:
                at = dense_r.find(last, max(0, n - len(last) + 1))
                if at >= 0:
                    end = pos_r[at + len(last) - 1] + 1
            if end is None and n > 0 and n >= min_overlap * len(dense_o):
                end = pos_r[n - 1] + 1
            if end is None:
                return None
        return _snap_to_step_end(reasoning, end)
    except Exception:  # a mapping problem must never stop training: treat the copy as unusable
        logger.debug("could not map an extractor output", exc_info=True)
        return None


# LC-R1's own extractor prompt, verbatim (github.com/zxiangx/LC-R1, trl/trainer/grpo_trainer.py,
# commit f7333a92: part_A + problem + part_B + thinking + part_C + ground truth + part_D, each piece
# tokenized on its own), which their fine-tuned zx10086/extractor_model was trained on. It already
# holds the Qwen chat tokens, so it is not passed through a chat template.
LCR1_PROMPT_PARTS = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n\n**Instruction: Extract Answer Prefix**\n\nYou'll get a **Problem**, a **Thinking Process**, and its **Ground Truth Answer**.\n\n**Your Task:**\n1. Read the **Thinking Process** from the beginning carefully.\n2. Find the **first sentence** that reveals the **Ground Truth Answer**.\n3. Copy everything from the start of the Thinking Process **up to and including that sentence**.\n4. **Important:** Do **not** include any text after that sentence.\n\n**Example:**\n- Problem: What is 1+1?  \n- Thinking Process: Okay, I need to solve 1+1. That gives 2. Let me check again--yes, it's 2.  \n- Ground Truth Answer: 2  \n- Expected Output: Okay, I need to solve 1+1. That gives 2.\n\n**Input Provided:**\n- Problem:",
    '\n- Thinking Process:',
    '\n- Ground Truth Answer:',
    '\n\n**Your Output:**\nA prefix of "Thinking Process", with Ground Truth at the end.\n<|im_end|>\n<|im_start|>assistant\n',
)

_LLM_KEYS = {
    "type", "model", "mode", "max_new_tokens", "dtype", "device", "trust_remote_code", "batch_size",
    "max_input_tokens", "on_failure", "prompt",
}  # fmt: skip
_MODES = ("generate", "teacher_forced")
_ON_FAILURE = ("keep", "none")
_PROMPTS = ("default", "lcr1")


class LLMExtractor:
    """A causal LM that copies the valid prefix of a reasoning (see the module docstring).

    The model and tokenizer load on first use (``AutoModelForCausalLM``, safetensors only,
    ``trust_remote_code`` only when asked). The prompt goes through the tokenizer's chat template
    when it has one (``enable_thinking=False`` so a Qwen3 extractor answers directly), else it is
    used as plain text.

    None means the model found no answer in the reasoning: it wrote ``NONE`` (generate) or never
    stopped copying, or stopped before copying anything (teacher_forced). When the extractor
    *fails* instead (its copy cannot be placed on the reasoning, the copy hit ``max_new_tokens``,
    or the input exceeds ``max_input_tokens``, default the model's ``max_position_embeddings``),
    ``on_failure`` decides: ``keep`` (default) returns ``len(reasoning)``, i.e. no cut and a compress
    reward of 0, so an extractor failure is neutral for the policy; ``none`` returns None (LC-R1's
    code, which reads any failure as "answer not reached" and so penalises it with -1).

    ``prompt: lcr1`` sends LC-R1's own prompt (``LCR1_PROMPT_PARTS``, for their fine-tuned extractor;
    with ``mode: teacher_forced``, as their code reads the prefix off), ``default`` sends ``PROMPT``.

    ``stats`` counts calls, ``none`` answers and the failures (``unmapped``, ``truncated``,
    ``too_long``) so a trainer can log how often the extractor failed.
    """

    def __init__(
        self,
        model: str,
        *,
        mode: str = "generate",
        max_new_tokens: int | None = None,
        dtype: str | None = None,
        device: str | None = None,
        trust_remote_code: bool = False,
        batch_size: int = 8,
        max_input_tokens: int | None = None,
        on_failure: str = "keep",
        prompt: str = "default",
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise LRTError("extractor: model must be a model id or directory, e.g. model: Qwen/Qwen2.5-3B-Instruct")
        if mode not in _MODES:
            raise LRTError(f"extractor: unknown mode {mode!r}: use one of {', '.join(_MODES)}")
        if on_failure not in _ON_FAILURE:
            raise LRTError(f"extractor: on_failure must be one of {', '.join(_ON_FAILURE)}, got {on_failure!r}")
        if prompt not in _PROMPTS:
            raise LRTError(f"extractor: prompt must be one of {', '.join(_PROMPTS)}, got {prompt!r}")
        if prompt == "lcr1" and mode != "teacher_forced":
            raise LRTError("extractor: prompt lcr1 is LC-R1's teacher-forced read-off: set mode: teacher_forced")
        for key, val in (("max_new_tokens", max_new_tokens), ("batch_size", batch_size),
                         ("max_input_tokens", max_input_tokens)):  # fmt: skip
            if val is not None and (isinstance(val, bool) or not isinstance(val, int) or val < 1):
                raise LRTError(f"extractor: {key} must be a positive integer, got {val!r}")
        if not isinstance(trust_remote_code, bool):
            raise LRTError(f"extractor: trust_remote_code must be true or false, got {trust_remote_code!r}")
        self.model_id = model
        self.mode = mode
        self.max_new_tokens = max_new_tokens
        self.dtype = dtype
        self.device = device
        self.trust_remote_code = trust_remote_code
        self.batch_size = batch_size
        self.max_input_tokens = max_input_tokens
        self.on_failure = on_failure
        self.prompt = prompt
        self._model = None
        self._tok = None
        self.stats: dict[str, int] = {"calls": 0, "none": 0, "unmapped": 0, "truncated": 0, "too_long": 0}
        self._resolve_dtype()  # a bad dtype is a recipe error: say so now, not at the first batch

    # -- loading ------------------------------------------------------------------------------

    def _resolve_dtype(self, device: str = "cpu"):
        from lrt_bench.core.models import resolve_dtype

        try:
            return resolve_dtype(self.dtype, device)  # auto: bf16 where it is fast, fp32 on CPU
        except LRTError as e:
            raise LRTError(f"extractor: {e}") from None

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch

        from lrt_bench.core.models import load_base

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model, tok = load_base(self.model_id, device=device, dtype=self._resolve_dtype(device),
                               trust_remote_code=self.trust_remote_code, use_safetensors=True,
                               what="the extractor model (a causal LM with safetensors weights)")
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"
        self._tok, self._model, self._device = tok, model, device
        if self.max_input_tokens is None:
            self.max_input_tokens = getattr(model.config, "max_position_embeddings", None) or 32768

    def _eos_ids(self) -> list[int]:
        ids = set()
        for src in (self._tok.eos_token_id, getattr(self._model.generation_config, "eos_token_id", None)):
            if isinstance(src, int):
                ids.add(src)
            elif isinstance(src, (list, tuple)):
                ids.update(int(i) for i in src)
        return sorted(ids)

    def _prompt_ids(self, problem: str, reasoning: str, gold: str) -> list[int]:
        if self.prompt == "lcr1":
            a, b, c, d = LCR1_PROMPT_PARTS
            pieces = (a, problem, b, reasoning, c, str(gold), d)
            return [i for piece in pieces for i in self._tok(piece, add_special_tokens=False)["input_ids"]]
        text = PROMPT.format(problem=problem.strip(), reasoning=reasoning.strip(), gold=str(gold).strip())
        tok = self._tok
        if getattr(tok, "chat_template", None):
            rendered = tok.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True,
                enable_thinking=False,
            )  # fmt: skip
            return tok(rendered, add_special_tokens=False)["input_ids"]
        return tok(text + " ", add_special_tokens=True)["input_ids"]

    # -- extraction ----------------------------------------------------------------------------

    def valid_length(self, problem: str, reasoning: str, gold: str) -> int | None:
        return self.valid_lengths([problem], [reasoning], [gold])[0]

    def valid_lengths(
        self, problems: Sequence[str], reasonings: Sequence[str], golds: Sequence[str]
    ) -> list[int | None]:
        problems, reasonings, golds = list(problems), list(reasonings), list(golds)
        if not len(problems) == len(reasonings) == len(golds):
            raise LRTError("extractor: problems, reasonings and golds must have the same length")
        self._load()
        out: list[int | None] = [None] * len(problems)
        todo = [i for i, r in enumerate(reasonings) if (r or "").strip()]  # empty reasoning: never reached
        self.stats["calls"] += len(problems)
        self.stats["none"] += len(problems) - len(todo)
        for k in range(0, len(todo), self.batch_size):
            idx = todo[k : k + self.batch_size]
            run = self._generate if self.mode == "generate" else self._teacher_forced
            for i, val in zip(idx, run([problems[i] for i in idx], [reasonings[i] for i in idx],
                                       [golds[i] for i in idx]), strict=True):  # fmt: skip
                out[i] = val
        return out

    def _failed(self, reasoning: str, why: str) -> int | None:
        self.stats[why] += 1
        return len(reasoning) if self.on_failure == "keep" else None

    def _pad_left(self, seqs: list[list[int]]):
        import torch

        width = max(len(s) for s in seqs)
        pad = self._tok.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[r, width - len(s) :] = 1
        return ids.to(self._device), mask.to(self._device)

    def _generate(self, problems, reasonings, golds) -> list[int | None]:
        import torch

        results: list[int | None] = [None] * len(problems)
        prompts, budgets, keep = [], [], []
        for j, (p, r, g) in enumerate(zip(problems, reasonings, golds)):
            ids = self._prompt_ids(p, r, g)
            n_reason = len(self._tok(r, add_special_tokens=False)["input_ids"])
            budget = self.max_new_tokens or n_reason + 64  # a copy is never longer than the reasoning
            if len(ids) + budget > self.max_input_tokens:
                keep.append(False)
                results[j] = self._failed(r, "too_long")
                continue
            keep.append(True)
            prompts.append(ids)
            budgets.append(budget)
        if not prompts:
            return results
        ids, mask = self._pad_left(prompts)
        eos = self._eos_ids()
        with torch.no_grad():
            gen = self._model.generate(
                input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=max(budgets),
                eos_token_id=eos or None, pad_token_id=self._tok.pad_token_id, temperature=None,
                top_p=None, top_k=None,
            )  # fmt: skip
        new = gen[:, ids.shape[1] :].tolist()
        row = 0
        for j, ok in enumerate(keep):
            if not ok:
                continue
            budget = budgets[row]
            toks = new[row][:budget]  # a row is held to its own budget, not the batch's largest
            row += 1
            ended = [t for t, tid in enumerate(toks) if tid in eos]
            if not ended:  # the copy was cut off by the token limit: where it meant to stop is unknown
                results[j] = self._failed(reasonings[j], "truncated")
                continue
            toks = toks[: ended[0]]
            text = self._tok.decode(toks, skip_special_tokens=True)
            if _NONE_REPLY.match(_clean_copy(text) or "none"):
                self.stats["none"] += 1
                continue
            val = map_copy_to_offset(reasonings[j], text)
            results[j] = val if val is not None else self._failed(reasonings[j], "unmapped")
        return results

    def _encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids of ``text`` and, per token, its (start, end) characters in ``text``."""
        try:
            enc = self._tok(text, add_special_tokens=False, return_offsets_mapping=True)
            return enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]
        except NotImplementedError:  # a slow tokenizer: measure decoded prefixes instead
            ids = self._tok(text, add_special_tokens=False)["input_ids"]
            ends = [len(self._tok.decode(ids[: k + 1])) for k in range(len(ids))]
            return ids, [(0, min(e, len(text))) for e in ends]

    def _teacher_forced(self, problems, reasonings, golds) -> list[int | None]:
        import torch

        eos = set(self._eos_ids())
        results: list[int | None] = [None] * len(problems)
        seqs, spans = [], []
        for j, (p, r, g) in enumerate(zip(problems, reasonings, golds)):
            prompt = self._prompt_ids(p, r, g)
            rids, offsets = self._encode_with_offsets(r)
            if len(prompt) + len(rids) > self.max_input_tokens:
                results[j] = self._failed(r, "too_long")
                continue
            seqs.append(prompt + rids)
            spans.append((j, len(prompt), offsets))
        if not seqs:
            return results
        ids, mask = self._pad_left(seqs)
        # Rows are left-padded, so every row's reasoning ends the batch: only the last n_r + 1
        # positions' logits are needed (the full (B, T, vocab) tensor would not fit for long traces).
        keep = max(len(offsets) for _, _, offsets in spans) + 1
        with torch.no_grad():
            logits = self._model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
        pred = logits[:, -keep:].argmax(-1).tolist()  # (B, keep); pred[., t] predicts the next token
        for row, (j, _, offsets) in enumerate(spans):
            n_r = len(offsets)
            # the prediction made after k reasoning tokens (k = 0: right after the prompt)
            stops = [k for k in range(n_r + 1) if pred[row][keep - 1 - n_r + k] in eos]
            if not stops or stops[0] == 0:  # never stops, or stops before copying anything
                self.stats["none"] += 1
                continue
            end = max(e for _, e in offsets[: stops[0]])
            results[j] = _snap_to_step_end(reasonings[j], end) if end > 0 else None
        return results


# ----------------------------------------------------------------------------------------------
# Construction from a recipe
# ----------------------------------------------------------------------------------------------

_MISSING = (
    "lcr1 needs an extractor: set extractor: {type: rule} (tiny world) or {type: llm, model: <id>}"
)


def build_extractor(spec: dict[str, Any] | None) -> Extractor:
    """An extractor from a recipe's ``extractor:`` mapping.

    ``{type: rule}`` -> ``RuleExtractor``; ``{type: llm, model: <id or dir>, mode: generate |
    teacher_forced, max_new_tokens, dtype, device, trust_remote_code, batch_size, max_input_tokens,
    on_failure: keep | none, prompt: default | lcr1}`` -> ``LLMExtractor`` (loaded lazily). None -> an error saying what to
    set.
    """
    if spec is None:
        raise LRTError(_MISSING)
    if not isinstance(spec, dict):
        raise LRTError(f"extractor must be a mapping such as {{type: rule}}, got {spec!r}")
    kind = spec.get("type")
    if kind == "rule":
        extra = sorted(set(spec) - {"type"})
        if extra:
            raise LRTError(f"extractor {{type: rule}} takes no other keys, got {', '.join(extra)}")
        return RuleExtractor()
    if kind == "llm":
        extra = sorted(set(spec) - _LLM_KEYS)
        if extra:
            raise LRTError(
                f"unknown extractor key(s) {', '.join(extra)}: use {', '.join(sorted(_LLM_KEYS - {'type'}))}"
            )
        if "model" not in spec:
            raise LRTError("extractor {type: llm} needs model: <causal LM id or directory>")
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        return LLMExtractor(**kwargs)
    raise LRTError(f"unknown extractor type {kind!r}: use rule or llm")
