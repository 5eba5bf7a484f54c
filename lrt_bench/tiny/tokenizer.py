"""The tiny world's tokenizer: byte-level, built from code, with a Qwen3-style chat template.

Every byte is a token (ByteLevel BPE), so any text the toolkit appends (budget-forcing
strings, NoThinking prefills) is encodable and every digit is its own token, which keeps
the arithmetic learnable for a small model. A handful of merges turn the words that
recur in every prompt ("assistant", "user", "Compute", ...) into single tokens: they never
contain digits and they shorten each training sequence by about a fifth, which is training
time on two CPU cores.

Special tokens follow Qwen3: `<|im_start|>`, `<|im_end|>` (eos), `<|endoftext|>` (pad).
`<think>` and `</think>` are added tokens that are *not* special, so they survive
`decode(..., skip_special_tokens=True)` exactly as in Qwen3.
"""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from lrt_bench.core.layout import THINK_CLOSE, THINK_OPEN

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD = "<|endoftext|>"

# Words merged into single tokens. Letters only: digits must stay one token each.
MERGED_WORDS = ("user", "assistant", "system", "Compute", "Answer", "boxed")

# Qwen3's template reduced to what the tiny world needs: one block per message, and the
# generation prompt `<|im_start|>assistant\n`, followed by an empty think block only when the
# caller passes enable_thinking=False. Like Qwen3 it never opens `<think>\n` itself in
# thinking mode: the toolkit appends that (docs/design.md §4.1).
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)


def _byte_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The 256 byte symbols of ByteLevel, then one prefix per merge step of each merged word."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    # Sort by the byte each symbol stands for, so ids are stable across tokenizers versions.
    byte_to_symbol = _bytes_to_unicode()
    vocab = {byte_to_symbol[b]: b for b in range(256)}
    assert set(vocab) == set(alphabet), "ByteLevel alphabet changed"
    merges: list[tuple[str, str]] = []
    for word in MERGED_WORDS:
        # Chain merges: (w0, w1) -> w0w1, (w0w1, w2) -> w0w1w2, ... so the word ends as one token.
        for end in range(2, len(word) + 1):
            left, right, merged = word[: end - 1], word[end - 1], word[:end]
            if merged not in vocab:
                merges.append((left, right))
                vocab[merged] = len(vocab)
    return vocab, merges


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable unicode table, the one ByteLevel uses."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Build the tiny world's tokenizer from code (no downloads).

    Returns a `PreTrainedTokenizerFast` with eos `<|im_end|>`, pad `<|endoftext|>`, the
    non-special added tokens `<think>`/`</think>` and a Qwen3-style chat template.
    """
    vocab, merges = _byte_vocab_and_merges()
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    # use_regex splits digits from letters and punctuation the GPT-2 way; no merge spans
    # digits, so "126" is always three tokens.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in (PAD, IM_START, IM_END)]
    )
    tok.add_tokens(
        [AddedToken(t, special=False, normalized=False) for t in (THINK_OPEN, THINK_CLOSE)]
    )
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=PAD,
        padding_side="left",  # generation batches are left-padded; training pads itself
        clean_up_tokenization_spaces=False,
        model_max_length=8192,
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf
