"""The prompt layout of every mode against the real chat templates of the paper's two bases.

The templates are data beside the checkout (`../shared/templates`, see its SOURCE.md; never copied
here): `$LRT_TEMPLATES_DIR`, else `$LRT_DATA_DIR/../templates`. Each is paired with an offline
byte-level tokenizer that carries the model's added tokens at their real ids and with their real
`special` flags, so the strings *and* the token ids the base sees are the real ones:

* Qwen3-1.7B: the generation prompt is `<|im_start|>assistant\\n`; `enable_thinking=False` appends the
  empty block `<think>\\n\\n</think>\\n\\n`.
* DeepSeek-R1-Distill-Qwen-1.5B: the generation prompt already ends in `<｜Assistant｜><think>\\n`
  (an earlier revision ended in `<｜Assistant｜>`); bos is written by the template itself.
In both, `<think>`/`</think>` are *not* special tokens, so `skip_special_tokens` neither strips them
nor may be relied on to keep them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from conftest import DATA_DIR, backbone_config, small_qwen3_config

from lrt_bench.core import layout
from lrt_bench.core.generation import DecodeConfig, LatentLM
from lrt_bench.core.reasoner import ReasoningNetwork
from lrt_bench.errors import LRTError

TEMPLATES = Path(os.environ.get("LRT_TEMPLATES_DIR") or DATA_DIR.parent / "templates")
QUESTION = "What is 2+3? Put the answer in \\boxed{}."
MSGS = [{"role": "user", "content": QUESTION}]

# Added tokens: (id, special), from ../shared/templates/SOURCE.md and the published tokenizer files.
QWEN3 = {
    "file": "qwen3-1.7b.jinja",
    "added": {"<|endoftext|>": (151643, True), "<|im_start|>": (151644, True), "<|im_end|>": (151645, True),
              "<think>": (151667, False), "</think>": (151668, False)},
    "eos": "<|im_end|>", "pad": "<|endoftext|>", "bos": None,
}
R1 = {
    "file": "r1-distill-qwen-1.5b.jinja",
    # SOURCE.md does not state User/Assistant's flag; the published tokenizer.json has them non-special.
    # Nothing below depends on it.
    "added": {"<｜end▁of▁sentence｜>": (151643, True), "<｜User｜>": (151644, False),
              "<｜Assistant｜>": (151645, False), "<｜begin▁of▁sentence｜>": (151646, True),
              "<think>": (151648, False), "</think>": (151649, False)},
    "eos": "<｜end▁of▁sentence｜>", "pad": "<｜end▁of▁sentence｜>", "bos": "<｜begin▁of▁sentence｜>",
}
VOCAB = 151936  # both bases' embedding rows


def _template(name: str) -> str:
    path = TEMPLATES / name
    if not path.is_file():
        pytest.skip(f"real chat template {path} not found: set LRT_TEMPLATES_DIR to ../shared/templates")
    return path.read_text(encoding="utf-8")


def build_tokenizer(spec: dict, template: str, *, think_special: bool = False):
    """A byte-level BPE tokenizer with `spec`'s added tokens at their real ids and `template`."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from lrt_bench.tiny.tokenizer import _byte_vocab_and_merges

    vocab, merges = _byte_vocab_and_merges()
    added = {t: (i, s or (think_special and t in ("<think>", "</think>"))) for t, (i, s) in spec["added"].items()}
    for tok, (i, _) in added.items():
        vocab[tok] = i  # in the model's vocab at the real id, so adding it below keeps that id
    raw = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    raw.decoder = decoders.ByteLevel()
    raw.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, (_, s) in added.items() if s])
    raw.add_tokens([AddedToken(t, special=False, normalized=False) for t, (_, s) in added.items() if not s])
    if spec["bos"]:
        # like the real R1 tokenizer, encoding *with* special tokens prepends bos; the template writes
        # it too, so only add_special_tokens=False gives the base a single bos
        bos_id = added[spec["bos"]][0]
        raw.post_processor = processors.TemplateProcessing(
            single=f"{spec['bos']} $A", pair=f"{spec['bos']} $A $B", special_tokens=[(spec["bos"], bos_id)])
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token=spec["eos"], pad_token=spec["pad"],
                                  bos_token=spec["bos"], clean_up_tokenization_spaces=False)
    tok.chat_template = template
    for t, (i, _) in added.items():
        assert tok.convert_tokens_to_ids(t) == i, t  # the ids the test is about
    return tok


def build_lm(tok) -> LatentLM:
    """A small random base with the real vocabulary size (ids up to 151935 are valid) and a reasoner."""
    from transformers import Qwen3ForCausalLM

    torch.manual_seed(0)
    base = Qwen3ForCausalLM(small_qwen3_config(VOCAB, hidden=32, layers=1, pad_token_id=tok.pad_token_id,
                                               eos_token_id=tok.eos_token_id)).eval()
    base.generation_config.eos_token_id = tok.eos_token_id
    net = ReasoningNetwork.for_base(base, backbone_config=backbone_config(16, 1), num_latents=3).eval()
    return LatentLM(base, tok, net)


@pytest.fixture(scope="module")
def qwen3():
    tok = build_tokenizer(QWEN3, _template(QWEN3["file"]))
    return tok, build_lm(tok)


@pytest.fixture(scope="module")
def r1():
    tok = build_tokenizer(R1, _template(R1["file"]))
    return tok, build_lm(tok)


def enc(tok, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False)


def seen_ids(lm: LatentLM, mode: str, style: str = "prefill") -> list[int]:
    """The token ids the base is fed before it generates (one prompt, no padding)."""
    batch = lm.encode_prompts([QUESTION], mode, style)
    return batch.input_ids[0].tolist()


# ------------------------------------------------------------------------------------------- Qwen3


def test_qwen3_rendering_and_enable_thinking(qwen3):
    tok, _ = qwen3
    header = "<|im_start|>user\n" + QUESTION + "<|im_end|>\n<|im_start|>assistant\n"
    assert layout.render_chat(tok, QUESTION) == header  # thinking is Qwen3's default: no <think> yet
    assert tok.apply_chat_template(MSGS, tokenize=False, add_generation_prompt=True, enable_thinking=True) == header
    off = tok.apply_chat_template(MSGS, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert off == header + "<think>\n\n</think>\n\n"
    # nothink style "empty" is exactly what Qwen3 writes with enable_thinking=False
    assert layout.prefix_text(header, "nothink", "empty") == off


def test_qwen3_prefix_per_mode(qwen3):
    tok, lm = qwen3
    header = "<|im_start|>user\n" + QUESTION + "<|im_end|>\n<|im_start|>assistant\n"
    expect = {
        ("think", "prefill"): header + "<think>\n",
        ("latent", "prefill"): header + "<think>\n",
        ("nothink", "prefill"): header + "<think>\nOkay, I think I have finished thinking.\n</think>\n\n",
        ("nothink", "empty"): header + "<think>\n\n</think>\n\n",
    }
    for (mode, style), text in expect.items():
        assert lm.prefix_texts([QUESTION], mode, style) == [text], (mode, style)
    head_ids = [151644, *enc(tok, "user\n" + QUESTION), 151645, *enc(tok, "\n"), 151644, *enc(tok, "assistant\n")]
    assert 151644 not in enc(tok, "user\n" + QUESTION)  # the question itself holds no special id
    nl, nlnl = enc(tok, "\n"), enc(tok, "\n\n")
    assert seen_ids(lm, "think") == [*head_ids, 151667, *nl]  # exactly one <think>, no </think>
    assert seen_ids(lm, "latent") == [*head_ids, 151667, *nl]
    assert seen_ids(lm, "nothink", "empty") == [*head_ids, 151667, *enc(tok, "\n\n"), 151668, *nlnl]
    assert seen_ids(lm, "nothink") == [*head_ids, 151667, *enc(tok, "\nOkay, I think I have finished thinking.\n"),
                                       151668, *nlnl]


def test_qwen3_pre_rendered_with_thinking_off_opens_one_think(qwen3):
    """lm-eval's --apply_chat_template with enable_thinking=False already closes an empty think block;
    the mode's layout replaces it instead of opening a second `<think>` after it."""
    tok, lm = qwen3
    off = tok.apply_chat_template(MSGS, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    on = tok.apply_chat_template(MSGS, tokenize=False, add_generation_prompt=True)
    lm.chat_template = False
    try:
        for mode, style in (("think", "prefill"), ("latent", "prefill"), ("nothink", "prefill"), ("nothink", "empty")):
            assert lm.prefix_texts([off], mode, style) == lm.prefix_texts([on], mode, style), (mode, style)
            ids = lm.encode_prompts([off], mode, style).input_ids[0].tolist()
            assert ids.count(151667) == 1, (mode, style)
    finally:
        lm.chat_template = True


def test_qwen3_latent_suffix_embeddings(qwen3):
    """In latent mode the base sees [X, z_1..z_N, `\\n</think>\\n\\n`]: the suffix holds the real </think> id."""
    tok, lm = qwen3
    batch = lm.encode_prompts([QUESTION], "latent")
    z = torch.zeros(1, 3, lm.base.config.hidden_size)
    embeds, mask, pos = lm.assemble(batch, z)
    suffix = [*enc(tok, "\n"), 151668, *enc(tok, "\n\n")]
    assert enc(tok, layout.LATENT_SUFFIX) == suffix
    want = lm.base.get_input_embeddings()(torch.tensor(suffix))
    assert embeds.shape[1] == 3 + len(suffix) and torch.equal(embeds[0, 3:], want)
    assert pos[0].tolist() == list(range(batch.input_ids.shape[1], batch.input_ids.shape[1] + 3 + len(suffix)))
    assert layout.think_close_id(tok, "latent") == 151668


# ---------------------------------------------------------------------------------------- R1-Distill


def test_r1_rendering_already_opens_think(r1):
    tok, _ = r1
    rendered = layout.render_chat(tok, QUESTION)
    assert rendered == "<｜begin▁of▁sentence｜><｜User｜>" + QUESTION + "<｜Assistant｜><think>\n"
    # with special tokens the tokenizer would add a second bos: the layout must encode without them
    assert enc(tok, rendered).count(151646) == 1
    assert tok.encode(rendered).count(151646) == 2


def test_r1_prefix_per_mode(r1):
    tok, lm = r1
    head = "<｜begin▁of▁sentence｜><｜User｜>" + QUESTION + "<｜Assistant｜>"
    expect = {
        ("think", "prefill"): head + "<think>\n",
        ("latent", "prefill"): head + "<think>\n",
        ("nothink", "prefill"): head + "<think>\nOkay, I think I have finished thinking.\n</think>\n\n",
        ("nothink", "empty"): head + "<think>\n\n</think>\n\n",
    }
    for (mode, style), text in expect.items():
        assert lm.prefix_texts([QUESTION], mode, style) == [text], (mode, style)
    head_ids = [151646, 151644, *enc(tok, QUESTION), 151645]
    nl, nlnl = enc(tok, "\n"), enc(tok, "\n\n")
    for mode in ("think", "latent"):
        ids = seen_ids(lm, mode)
        assert ids == [*head_ids, 151648, *nl]  # the template's <think> is the only one
        assert ids.count(151648) == 1 and 151649 not in ids and ids.count(151646) == 1
    assert seen_ids(lm, "nothink", "empty") == [*head_ids, 151648, *nlnl, 151649, *nlnl]
    assert seen_ids(lm, "nothink") == [*head_ids, 151648, *enc(tok, "\nOkay, I think I have finished thinking.\n"),
                                       151649, *nlnl]
    assert enc(tok, layout.LATENT_SUFFIX) == [*nl, 151649, *nlnl]
    assert layout.think_close_id(tok, "think") == 151649


def test_r1_earlier_revision_without_think_gives_the_same_layout(r1):
    """The earlier R1-Distill revision ended its generation prompt in `<｜Assistant｜>`: same prefixes."""
    tok, lm = r1
    old = _template(R1["file"])
    assert old.count("{{'<｜Assistant｜><think>\\n'}}") == 1
    old = old.replace("{{'<｜Assistant｜><think>\\n'}}", "{{'<｜Assistant｜>'}}")
    old_tok = build_tokenizer(R1, old)
    assert layout.render_chat(old_tok, QUESTION).endswith("<｜Assistant｜>")
    for mode, style in (("think", "prefill"), ("latent", "prefill"), ("nothink", "prefill"), ("nothink", "empty")):
        want = lm.prefix_texts([QUESTION], mode, style)[0]
        assert layout.prefix_text(layout.render_chat(old_tok, QUESTION), mode, style) == want


# -------------------------------------------------------------------------------------------- decoding


def scripted(lm: LatentLM, script: list[int]) -> None:
    """Make the base emit `script` greedily, one id per forward call (the prefill call gives the first)."""
    orig, step = lm.base.forward, [0]

    def forward(*a, **kw):
        out = orig(*a, **kw)
        out.logits[:, -1] = -1e4
        out.logits[:, -1, script[min(step[0], len(script) - 1)]] = 1e4
        step[0] += 1
        return out

    lm.base.forward = forward


@pytest.mark.parametrize("spec", [QWEN3, R1], ids=["qwen3", "r1"])
def test_generated_think_tags_survive_decoding(spec):
    """A think-mode generation keeps its own `</think>` in the text (graders split on it) and the text
    does not change with skip_special_tokens: nothing relies on it to strip or keep the think tags."""
    tok = build_tokenizer(spec, _template(spec["file"]))
    lm = build_lm(tok)
    close = spec["added"]["</think>"][0]
    body, answer = enc(tok, "2+3 is 5."), enc(tok, "\n\nSo \\boxed{5}.")
    scripted(lm, [*body, close, *answer, tok.eos_token_id])
    (g,) = lm.generate([QUESTION], DecodeConfig(mode="think", max_gen_toks=64, answer_allowance=32))
    assert g.token_ids == [*body, close, *answer] and g.account.finish_reason == "eos"
    assert g.text == "2+3 is 5.</think>\n\nSo \\boxed{5}."
    assert tok.decode(g.token_ids, skip_special_tokens=False) == tok.decode(g.token_ids, skip_special_tokens=True)
    assert g.account.reasoning_tokens == len(body) + 1 and g.account.answer_tokens == len(answer)


def test_think_close_survives_when_a_tokenizer_marks_it_special():
    tok = build_tokenizer(QWEN3, _template(QWEN3["file"]), think_special=True)
    lm = build_lm(tok)
    body, answer = enc(tok, "ok"), enc(tok, "\n\n\\boxed{5}")
    scripted(lm, [*body, 151668, *answer, tok.eos_token_id])
    (g,) = lm.generate([QUESTION], DecodeConfig(mode="think", max_gen_toks=16, answer_allowance=16))
    assert g.token_ids[len(body)] == 151668  # the model did close its reasoning
    assert g.text == "ok</think>\n\n\\boxed{5}"


# ------------------------------------------------------------------------------------------ bad input


def test_template_without_generation_prompt_is_refused():
    """A template that ignores add_generation_prompt would leave the base inside the user's turn."""
    broken = _template(QWEN3["file"]).replace("{%- if add_generation_prompt %}", "{%- if false %}")
    assert broken != _template(QWEN3["file"])
    tok = build_tokenizer(QWEN3, broken)
    with pytest.raises(LRTError, match="adds no generation prompt") as e:
        layout.render_chat(tok, QUESTION)
    assert "\n" not in str(e.value) and "chat_template=False" in str(e.value)
    # a pre-rendered prompt is the way out the message names
    assert layout.render_chat(tok, "<|im_start|>assistant\n", chat_template=False) == "<|im_start|>assistant\n"
