"""Prompt layout per mode (docs/design.md §4.1): the text that precedes the generated tokens.

    think    : <chat prompt><think>\\n                           -> reasoning, </think>, answer
    nothink  : <chat prompt><think>\\nOkay, I think I have finished thinking.\\n</think>\\n\\n   (prefill)
               <chat prompt><think>\\n\\n</think>\\n\\n                                           (empty)
    latent   : <chat prompt><think>\\n  z_1..z_N  \\n</think>\\n\\n  -> answer

Chat templates differ: R1-distill's generation prompt already ends with `<think>\\n`, Qwen3's does not
(and with `enable_thinking=False` ends with the empty block `<think>\\n\\n</think>\\n\\n`). `prefix_text`
strips a trailing `<think>` (with or without its newline) or that empty block and appends the mode's own
opening, so every kind gives the same layout and the base sees exactly one think block. This module is
text only; `generation.py` turns it into token ids and embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lrt_bench.errors import LRTError

MODES = ("think", "nothink", "latent")
NOTHINK_STYLES = ("prefill", "empty")

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
OPEN = "<think>\n"
NOTHINK_PREFILL = "<think>\nOkay, I think I have finished thinking.\n</think>\n\n"
NOTHINK_EMPTY = "<think>\n\n</think>\n\n"
# s1-style budget forcing (docs/design.md §4.3): appended when reasoning hits its cap without </think>.
FORCED_CLOSE = (
    "\n\nConsidering the limited time by the user, I have to give the solution based on the "
    "thinking directly now.\n</think>\n\n"
)
# Real tokens that follow z in latent mode.
LATENT_SUFFIX = "\n</think>\n\n"

Prompt = str | Sequence[dict[str, Any]]


def check_mode(mode: str, nothink_style: str = "prefill") -> None:
    if mode not in MODES:
        raise LRTError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    if nothink_style not in NOTHINK_STYLES:
        raise LRTError(f"unknown nothink_style {nothink_style!r}: use one of {', '.join(NOTHINK_STYLES)}")


def think_close_id(tokenizer: Any, mode: str) -> int:
    """The single token id of `</think>`, which think and latent modes need."""
    ids = tokenizer.encode(THINK_CLOSE, add_special_tokens=False)
    unk = getattr(tokenizer, "unk_token_id", None)
    if len(ids) != 1 or ids[0] == unk:
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise LRTError(
            f"tokenizer {name!r} has no single `{THINK_CLOSE}` token, so mode={mode} cannot run: use a "
            "reasoning model's tokenizer (Qwen3, DeepSeek-R1-Distill) or mode=nothink"
        )
    return ids[0]


def split_reasoning(ids: Sequence[int], reasoning_tokens: int, close_id: int) -> tuple[list[int], bool]:
    """(reasoning ids, closed naturally) of a think-mode generation's ids: its first `reasoning_tokens`
    (`Account.reasoning_tokens`, which counts a natural `</think>`) without that `</think>`."""
    reasoning = list(ids[:reasoning_tokens])
    closed = bool(reasoning) and reasoning[-1] == close_id
    return (reasoning[:-1] if closed else reasoning), closed


def render_chat(tokenizer: Any, prompt: Prompt, *, chat_template: bool = True) -> str:
    """The chat-formatted generation prompt for one user prompt (a string or a message list).

    With chat_template=False a string prompt is taken as already rendered (e.g. lm-eval run with
    --apply_chat_template) and returned unchanged.
    """
    if isinstance(prompt, str) and not chat_template:
        return prompt
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise LRTError(
            f"tokenizer {name!r} has no chat template: use a chat model, or pass pre-rendered prompts "
            "with chat_template=False"
        )
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # A template that ignores add_generation_prompt leaves the user's turn open: the base would continue
    # the question instead of answering it, and every mode's layout would sit inside the user turn.
    if rendered == tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False):
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise LRTError(
            f"the chat template of tokenizer {name!r} adds no generation prompt (add_generation_prompt=True "
            "renders the same text as False): use a template that opens the assistant turn, or pass "
            "pre-rendered prompts with chat_template=False"
        )
    return rendered


def strip_open(header: str) -> str:
    """Remove a trailing `<think>` / `<think>\\n` or empty think block that some templates already write."""
    # Qwen3 rendered with enable_thinking=False (e.g. lm-eval's --apply_chat_template with
    # enable_thinking=False) ends with the empty block; kept, think mode would open a second
    # `<think>` after a closed one. The mode, not the template's flag, decides the think block.
    if header.endswith(NOTHINK_EMPTY):
        return header[: -len(NOTHINK_EMPTY)]
    stripped = header.rstrip("\n")
    if stripped.endswith(THINK_OPEN):
        return stripped[: -len(THINK_OPEN)]
    return header


def prefix_text(header: str, mode: str, nothink_style: str = "prefill") -> str:
    """Text fed to the base before anything is generated (and, in latent mode, before z)."""
    check_mode(mode, nothink_style)
    base = strip_open(header)
    if mode in ("think", "latent"):
        return base + OPEN
    return base + (NOTHINK_PREFILL if nothink_style == "prefill" else NOTHINK_EMPTY)
