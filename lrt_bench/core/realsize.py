"""Real-size models with random weights, built from configs (no hub): for speed and memory checks.

The configs are those of the published checkpoints (Qwen3-1.7B, DeepSeek-R1-Distill-Qwen-1.5B, and
Qwen3-Embedding-0.6B as G_φ's backbone). Random weights decide nothing, so benchmarks force decode
lengths (budgets + `ignore_eos`) and keep `</think>` from being chosen by zeroing its output row.
The tokenizer is synthetic: a word-level vocabulary of the real size whose words are `w0 w1 ...`,
with the special tokens the layout needs.
"""

from __future__ import annotations

from typing import Any

import torch

from lrt_bench.core.layout import THINK_CLOSE, THINK_OPEN
from lrt_bench.errors import LRTError

QWEN3_1P7B = dict(
    model_type="qwen3", vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
    num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
    rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
)
R1_DISTILL_QWEN_1P5B = dict(
    model_type="qwen2", vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
    num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=131072, rope_theta=10000.0,
    rms_norm_eps=1e-6, tie_word_embeddings=False,
)
QWEN3_EMBEDDING_0P6B = dict(
    model_type="qwen3", vocab_size=151669, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
    num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=32768,
    rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
)
BASES = {"qwen3-1.7b": QWEN3_1P7B, "r1-distill-qwen-1.5b": R1_DISTILL_QWEN_1P5B}
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", THINK_OPEN, THINK_CLOSE, "<unk>"]


def synthetic_tokenizer(vocab_size: int):
    """A word-level fast tokenizer of `vocab_size` ids: words `w<i>` plus the chat/think specials."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    n_words = vocab_size - len(SPECIALS)
    vocab = {f"w{i}": i for i in range(n_words)}
    for j, s in enumerate(SPECIALS):
        vocab[s] = n_words + j
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    raw.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    raw.add_special_tokens([AddedToken(s, special=True) for s in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")])
    raw.add_tokens([AddedToken(s, special=False) for s in (THINK_OPEN, THINK_CLOSE)])
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  unk_token="<unk>")
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|> {% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
    )
    return tok


def synthetic_prompt(n_words: int, seed: int) -> str:
    g = torch.Generator().manual_seed(seed)
    return " ".join(f"w{int(i)}" for i in torch.randint(10, 100000, (n_words,), generator=g))


def never_close(base, tok) -> None:
    """Keep `</think>` from ever being chosen, so think mode reasons to its budget: its LM-head row is
    zeroed and a bias of -1e4 rules it out (random or trained weights alike). The input embedding of
    `</think>` stays: a tied head is untied first."""
    close = tok.convert_tokens_to_ids(THINK_CLOSE)
    with torch.no_grad():
        head = base.get_output_embeddings()
        if base.config.tie_word_embeddings:
            head.weight = torch.nn.Parameter(head.weight.detach().clone(), requires_grad=False)
            base.config.tie_word_embeddings = False
        head.weight[close].zero_()
        if head.bias is None:
            head.bias = torch.nn.Parameter(torch.zeros(head.weight.shape[0], dtype=head.weight.dtype,
                                                       device=head.weight.device), requires_grad=False)
        head.bias[close] = -1e4


def build(name: str, *, num_latents: int = 256, fusion: str = "concat", device: str = "cuda",
          dtype: torch.dtype = torch.bfloat16, layers: int | None = None,
          vocab_size: int | None = None) -> tuple[Any, Any, Any]:
    """(base, tokenizer, reasoning network) at real size with random weights.

    `layers` overrides the depth of both the base and G_φ's backbone, `vocab_size` the vocabulary
    (CPU smoke tests); widths and head shapes stay those of the published configs.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    from lrt_bench.core.models import untrained_reasoner

    if name not in BASES:
        raise LRTError(f"unknown real size {name!r}: use one of {', '.join(BASES)}")
    if layers is not None and layers < 1:
        raise LRTError(f"layers must be >= 1, got {layers}")
    cfg = dict(BASES[name])
    backbone = dict(QWEN3_EMBEDDING_0P6B)
    if layers is not None:
        cfg["num_hidden_layers"] = backbone["num_hidden_layers"] = layers
    if vocab_size is not None:
        if vocab_size <= len(SPECIALS):
            raise LRTError(f"vocab_size must exceed the {len(SPECIALS)} special tokens, got {vocab_size}")
        cfg["vocab_size"] = vocab_size
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    tok = synthetic_tokenizer(config.vocab_size)
    config.eos_token_id = tok.eos_token_id
    config.pad_token_id = tok.pad_token_id
    with torch.device(device):
        base = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    base.generation_config.eos_token_id = tok.eos_token_id
    never_close(base, tok)
    torch.manual_seed(0)
    net = untrained_reasoner(base, backbone, num_latents=num_latents, fusion=fusion).to(device=device, dtype=dtype).eval()
    return base, tok, net
