"""Sampling as the model ships it: unset settings come from the base's generation_config exactly as
transformers resolves them, the warped distribution is transformers' own, and with one seed our decode
loop and `model.generate` draw the same tokens."""

from __future__ import annotations

import pytest
import torch
from conftest import make_base

from lrt_bench.core import layout
from lrt_bench.core.generation import DecodeConfig, LatentLM
from lrt_bench.core.sampling import resolve_sampling, warped_logits
from lrt_bench.errors import LRTError

QWEN3_SHIPPED = {"do_sample": True, "temperature": 0.6, "top_p": 0.95, "top_k": 20}


@pytest.fixture()
def qwen3_like(tokenizer):
    base = make_base(tokenizer)
    for k, v in QWEN3_SHIPPED.items():
        setattr(base.generation_config, k, v)
    return base


@pytest.mark.parametrize("request_kwargs, expected", [
    ({}, (0.0, 1.0, 0, 0.0)),  # lm-eval: nothing asked -> greedy
    ({"do_sample": False, "temperature": 0.6}, (0.0, 1.0, 0, 0.0)),
    ({"temperature": 0}, (0.0, 1.0, 0, 0.0)),
    ({"do_sample": True}, (0.6, 0.95, 20, 0.0)),  # all from generation_config
    ({"do_sample": True, "temperature": 0.6, "top_p": 0.95}, (0.6, 0.95, 20, 0.0)),  # top_k 20 as shipped
    ({"do_sample": "true", "temperature": 1.0, "top_k": 5, "min_p": 0.1}, (1.0, 0.95, 5, 0.1)),
    ({"temperature": 0.7}, (0.7, 0.95, 20, 0.0)),  # do_sample from the config (true)
])
def test_resolution_follows_the_shipped_generation_config(qwen3_like, request_kwargs, expected):
    s = resolve_sampling(qwen3_like, request_kwargs)
    assert (s.temperature, s.top_p, s.top_k, s.min_p) == expected


def test_a_base_without_a_shipped_config_gets_transformers_defaults(tokenizer):
    """transformers' global default top_k is 50: `--model hf` samples with it, so we do too."""
    base = make_base(tokenizer)  # generation_config as built from the model config: no sampling values
    s = resolve_sampling(base, {"do_sample": True, "temperature": 0.6, "top_p": 0.95})
    assert (s.temperature, s.top_p, s.top_k) == (0.6, 0.95, 50)
    assert s.to_dict()["from_generation_config"] == ["top_k", "min_p"]
    assert resolve_sampling(base, {"temperature": 0.7}).temperature == 0.0  # its do_sample is False: greedy


def test_a_base_with_no_generation_config_needs_explicit_settings(tokenizer):
    base = make_base(tokenizer)
    base.generation_config = None
    with pytest.raises(LRTError, match="no generation_config to take top_p, top_k from") as e:
        resolve_sampling(base, {"do_sample": True, "temperature": 0.6})
    assert "\n" not in str(e.value)
    s = resolve_sampling(base, {"do_sample": True, "temperature": 0.6, "top_p": 0.9, "top_k": 7})
    assert (s.temperature, s.top_p, s.top_k) == (0.6, 0.9, 7)


@pytest.mark.parametrize("bad, match", [
    ({"do_sample": True, "temperature": float("nan")}, "must be finite"),
    ({"do_sample": True, "top_k": 2.5}, "must be a whole number"),
    ({"do_sample": "maybe"}, "is not a boolean"),
])
def test_bad_sampling_kwargs(qwen3_like, bad, match):
    with pytest.raises(LRTError, match=match):
        resolve_sampling(qwen3_like, bad)


def test_warped_distribution_is_transformers_own(qwen3_like):
    """Our scores equal the logits processors `generate` builds for the same settings."""
    from transformers import GenerationConfig

    torch.manual_seed(0)
    logits = torch.randn(3, 300) * 3
    gc = GenerationConfig(do_sample=True, temperature=0.6, top_p=0.95, top_k=20, min_p=0.05)
    procs = qwen3_like._get_logits_processor(generation_config=gc, input_ids_seq_length=1,
                                             encoder_input_ids=torch.zeros(3, 1, dtype=torch.long),
                                             prefix_allowed_tokens_fn=None, logits_processor=None)
    ref = procs(torch.zeros(3, 1, dtype=torch.long), logits.clone())
    ours = warped_logits(logits, 0.6, 0.95, 20, 0.05)
    assert torch.equal(torch.isinf(ours), torch.isinf(ref))
    assert torch.allclose(ours[~torch.isinf(ours)], ref[~torch.isinf(ref)])


@pytest.mark.slow
def test_sampled_think_mode_draws_what_generate_draws(qwen3_like, tokenizer):
    """Same seed, batch 1, CPU: our decode loop's private generator and `generate`'s global RNG give
    the same stream, so with the same distribution the sampled tokens are the same."""
    lm = LatentLM(qwen3_like, tokenizer)
    s = resolve_sampling(qwen3_like, {"do_sample": True})
    B = 24
    same = 0
    prompts = ["Compute 12+7.", "What is 3 times 4?", "Add 5 and 9."]
    for seed, prompt in enumerate(prompts):
        cfg = DecodeConfig(mode="think", max_gen_toks=B, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                           seed=seed)
        g = lm.generate([prompt], cfg)[0]
        text = layout.prefix_text(layout.render_chat(tokenizer, prompt), "think")
        ids = torch.tensor([tokenizer.encode(text, add_special_tokens=False)])
        torch.manual_seed(seed)
        ref = qwen3_like.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=B, do_sample=True)
        ref = ref[0, ids.shape[1]:].tolist()
        n = min(len(ref), g.account.reasoning_tokens)
        same += g.token_ids[:n] == ref[:n]
    assert same == len(prompts)
