import pytest
import torch
from conftest import backbone_config, make_base

from lrt_bench.core import layout
from lrt_bench.core.generation import DecodeConfig, LatentLM
from lrt_bench.core.reasoner import ReasoningNetwork
from lrt_bench.errors import LRTError

PROMPTS = [
    "Compute 3+4.",
    "Compute ((17+25)*3)-19.",
    "Compute 8*9.",
    "Compute (((2+2)*2)-1)+5.",
    "Hi",
    "Compute 12-7.",
    "Compute ((40-3)*2)+11.",
    "Compute 99+1.",
]


@pytest.fixture()
def lm(tokenizer, base):
    torch.manual_seed(0)
    net = ReasoningNetwork.for_base(base, backbone_config=backbone_config(), num_latents=4).eval()
    return LatentLM(base, tokenizer, net)


@pytest.mark.slow
def test_latent_batch_equals_one_by_one(lm):
    cfg = DecodeConfig(mode="latent", max_gen_toks=12)
    batched = lm.generate(PROMPTS, cfg)
    single = [lm.generate([p], cfg)[0] for p in PROMPTS]
    # the batch really is left-padded: prompt lengths differ
    assert len({g.account.prompt_tokens for g in batched}) > 1
    for b, s in zip(batched, single):
        assert b.token_ids == s.token_ids
        assert b.text == s.text
        assert b.account.latents == 4 and b.account.reasoning_tokens == 0


@pytest.mark.parametrize("mode", ["think", "nothink"])
@pytest.mark.slow
def test_batch_equals_one_by_one_explicit(lm, mode):
    cfg = DecodeConfig(mode=mode, max_gen_toks=8, answer_allowance=4)
    batched = lm.generate(PROMPTS, cfg)
    single = [lm.generate([p], cfg)[0] for p in PROMPTS]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]


@pytest.mark.slow
def test_think_prefix_matches_hf_generate(lm, tokenizer, base):
    """Until the budget cuts in, think mode decodes exactly what model.generate decodes."""
    B = 20
    for prompt in PROMPTS[:3]:
        g = lm.generate([prompt], DecodeConfig(mode="think", max_gen_toks=B, answer_allowance=4))[0]
        text = layout.prefix_text(layout.render_chat(tokenizer, prompt), "think")
        ids = torch.tensor([tokenizer.encode(text, add_special_tokens=False)])
        ref = base.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=B, do_sample=False)
        ref = ref[0, ids.shape[1]:].tolist()
        assert g.account.reasoning_tokens == B == len(ref)
        assert g.token_ids[:B] == ref


@pytest.mark.slow
def test_budget_forcing_exact(lm, tokenizer):
    """The budget rule: reasoning cut at B, then the forced close, then the answer's allowance.

    (allowance, in_budget) -> (B, reasoning cap, answer cap): by default the answer gets B tokens, as in
    nothink / latent mode; answer_allowance overrides it; allowance_in_budget keeps all within B.
    """
    forced = tokenizer.encode(layout.FORCED_CLOSE, add_special_tokens=False)
    F = len(forced)
    cases = [(None, False, 10, 10, 10), (3, False, 10, 10, 3), (3, True, F + 10, 7, 3)]
    for allowance, in_budget, B, cap, answer_cap in cases:
        cfg = DecodeConfig(mode="think", max_gen_toks=B, answer_allowance=allowance, allowance_in_budget=in_budget)
        for g in lm.generate(PROMPTS, cfg):
            a = g.account
            if a.forced_tokens == 0:  # closed naturally or hit EOS first: never on this random base
                pytest.fail(f"expected forcing, got {a}")
            assert a.reasoning_tokens == cap
            assert a.forced_tokens == F
            assert g.token_ids[cap : cap + F] == forced
            assert a.answer_tokens == len(g.token_ids) - cap - F <= answer_cap
            assert a.generated_tokens == len(g.token_ids)
            assert layout.FORCED_CLOSE in g.text
            assert a.allowance_in_budget is in_budget
            if in_budget:
                assert a.generated_tokens <= B


def test_allowance_in_budget_needs_room():
    with pytest.raises(LRTError, match="leave room for reasoning"):
        DecodeConfig(mode="think", max_gen_toks=100, answer_allowance=64, allowance_in_budget=True, forced_tokens=40)


class ScriptedBase(torch.nn.Module):
    """A test double: a base that emits a given token sequence, whatever it is fed.

    Wraps a real tiny base (for its config, cache and shapes) and overwrites the logits so that the
    n-th generated position predicts script[n]; n counts the decode steps since the last prefill.
    """

    def __init__(self, base, script: list[int]):
        super().__init__()
        self.inner, self.script, self.n = base, script, 0
        self.config, self.generation_config = base.config, base.generation_config
        self.base_model_prefix = base.base_model_prefix
        setattr(self, base.base_model_prefix, getattr(base, base.base_model_prefix))

    def get_input_embeddings(self):
        return self.inner.get_input_embeddings()

    def forward(self, input_ids=None, inputs_embeds=None, **kw):
        out = self.inner(input_ids=input_ids, inputs_embeds=inputs_embeds, **kw)
        width = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        self.n = 0 if width > 1 else self.n + 1  # a prefill restarts the script
        nxt = self.script[min(self.n, len(self.script) - 1)]
        out.logits[:, -1] = -1e4
        out.logits[:, -1, nxt] = 1e4
        return out


@pytest.mark.slow
def test_long_natural_answer_is_kept_at_default_budget(tokenizer):
    """An R1-style run: 300 reasoning tokens, a natural </think>, a 150-token recap ending in \\boxed{}.

    With the old 64-token answer cap the box was cut off (graded wrong); the default now gives the
    answer the budget B, as nothink and latent mode get, so it is graded right at B = 512.
    """
    from lrt_bench.eval.grading import grade_math

    enc = lambda t: tokenizer.encode(t, add_special_tokens=False)  # noqa: E731
    reasoning = enc(("so 6 times 7 is 42, wait, let me verify: 7+7+7+7+7+7 = 42. " * 6)[:300])
    box = enc(r" \boxed{42}")
    answer = enc("To recap, six sevens add up to forty-two, as the check above confirms. " * 3)[: 150 - len(box)] + box
    assert len(reasoning) == 300 and len(answer) == 150
    script = reasoning + [tokenizer.convert_tokens_to_ids("</think>")] + answer + [tokenizer.eos_token_id]
    lm = LatentLM(ScriptedBase(make_base(tokenizer), script), tokenizer)
    g = lm.generate(["What is 6 times 7?"], DecodeConfig(mode="think", max_gen_toks=512))[0]
    assert g.account.reasoning_tokens == 301 and g.account.forced_tokens == 0  # reasoning + </think>
    assert g.account.answer_tokens == 150 and g.account.finish_reason == "eos"
    assert grade_math(g.text, "42")
    # the old rule (answer capped at 64 after a natural close) loses the box: graded wrong
    old = lm.generate(["What is 6 times 7?"], DecodeConfig(mode="think", max_gen_toks=512, answer_allowance=64))[0]
    assert old.account.answer_tokens == 64 and not grade_math(old.text, "42")


def test_natural_close_opens_answer(tokenizer):
    """A base that says </think> at once: no forcing, and the allowance (not EOS) ends the answer."""
    close = tokenizer.convert_tokens_to_ids("</think>")
    (seven,) = tokenizer.encode("7", add_special_tokens=False)
    script = [close] + [seven] * 50  # never EOS: only the allowance can end the answer
    lm = LatentLM(ScriptedBase(make_base(tokenizer), script), tokenizer)
    g = lm.generate(["Compute 1+1."], DecodeConfig(mode="think", max_gen_toks=50, answer_allowance=5))[0]
    assert g.token_ids == [close] + [seven] * 5 and g.text == "</think>77777"
    assert g.account.reasoning_tokens == 1 and g.account.forced_tokens == 0
    assert g.account.answer_tokens == 5 and g.account.finish_reason == "length"


def test_repeats_share_prefill(lm):
    cfg = DecodeConfig(mode="latent", max_gen_toks=6)
    one = lm.generate(PROMPTS[:2], cfg)
    rep = lm.generate(PROMPTS[:2], cfg, repeats=3)
    assert [g.token_ids for g in rep] == [one[0].token_ids] * 3 + [one[1].token_ids] * 3


@pytest.mark.slow
def test_sampling_is_seeded(lm):
    cfg = DecodeConfig(mode="nothink", max_gen_toks=10, temperature=0.9, top_p=0.95, top_k=50, seed=3)
    a = lm.generate(PROMPTS[:3], cfg, repeats=2)
    b = lm.generate(PROMPTS[:3], cfg, repeats=2)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    c = lm.generate(PROMPTS[:3], DecodeConfig(mode="nothink", max_gen_toks=10, temperature=0.9, seed=4), repeats=2)
    assert [g.token_ids for g in a] != [g.token_ids for g in c]


def test_stop_strings_cut_answer(lm):
    full = lm.generate(PROMPTS[:1], DecodeConfig(mode="nothink", max_gen_toks=12))[0]
    assert len(full.text) > 3
    stop = full.text[2:4]
    g = lm.generate(PROMPTS[:1], DecodeConfig(mode="nothink", max_gen_toks=12, stop=(stop,)))[0]
    assert g.account.finish_reason == "stop"
    assert g.text == full.text[: full.text.find(stop)]


def test_teacher_forcing_matches_full_forward(lm, base):
    """The cached, assembled forward equals one plain forward over [X, z, suffix, Y]."""
    answers = [[5, 6, 7], [8, 9], [10, 11, 12], [13]]
    logp, amask, z = lm.answer_logprobs(PROMPTS[:2], answers, repeats=2)
    assert logp.shape == (4, 3) and z.shape[:2] == (2, 4)
    suffix = lm._suffix_ids
    emb = base.get_input_embeddings()
    for i, a in enumerate(answers):
        p = i // 2
        x = lm.encode_prompts([PROMPTS[p]], "latent").input_ids[0]
        ids_after = torch.tensor(suffix + a)
        embeds = torch.cat([emb(x), z[p], emb(ids_after)])[None]
        with torch.no_grad():
            logits = base(inputs_embeds=embeds).logits[0]
        start = len(x) + z.shape[1] + len(suffix) - 1
        ref = torch.log_softmax(logits[start : start + len(a)].float(), -1)[torch.arange(len(a)), torch.tensor(a)]
        assert torch.allclose(logp[i, : len(a)], ref, atol=1e-4)
        assert amask[i].sum() == len(a)


def test_gradients_reach_phi_only(lm, base):
    theta = {k: v.clone() for k, v in base.state_dict().items()}
    phi = {k: v.clone() for k, v in lm.reasoner.state_dict().items()}
    lm.reasoner.train()
    opt = torch.optim.AdamW(lm.reasoner.parameters(), lr=1e-2)
    logp, mask, _ = lm.answer_logprobs(PROMPTS[:2], [[5, 6, 7], [8, 9]])
    loss = -(logp.sum() / mask.sum())
    loss.backward()
    opt.step()
    for k, v in lm.reasoner.state_dict().items():
        assert not torch.equal(v, phi[k]), f"φ parameter {k} did not change"
    for k, v in base.state_dict().items():
        assert torch.equal(v, theta[k]), f"θ parameter {k} changed"
    assert all(p.grad is None for p in base.parameters())


# ------------------------------------------------------------------------------------ bad input


def test_unknown_mode():
    with pytest.raises(LRTError, match="unknown mode 'fast'"):
        DecodeConfig(mode="fast")


def test_latent_without_reasoner(tokenizer, base):
    with pytest.raises(LRTError, match="needs a reasoning network"):
        LatentLM(base, tokenizer).generate(["x"], DecodeConfig(mode="latent"))


@pytest.mark.parametrize("budget", [0, -3])
def test_budget_below_one(budget):
    with pytest.raises(LRTError, match="budget max_gen_toks must be >= 1"):
        DecodeConfig(max_gen_toks=budget)


def test_tokenizer_without_think_close(base):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    raw = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="!", pad_token="!")
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}>{% endif %}"
    lm = LatentLM(base, tok)
    for mode in ("think", "latent"):
        with pytest.raises(LRTError, match="no single `</think>` token") as e:
            lm.generate(["x"], DecodeConfig(mode=mode))
        assert "\n" not in str(e.value)
    assert lm.generate(["x"], DecodeConfig(mode="nothink", max_gen_toks=2))  # nothink still works


def test_prompt_longer_than_context(tokenizer):
    base = make_base(tokenizer, max_position_embeddings=64)
    lm = LatentLM(base, tokenizer)
    with pytest.raises(LRTError, match="longer than the base's context of 64"):
        lm.generate(["ok", "x" * 200], DecodeConfig(mode="nothink"))


def test_generation_stops_at_context(tokenizer):
    base = make_base(tokenizer, max_position_embeddings=80)
    g = LatentLM(base, tokenizer).generate(["Compute 1+1."], DecodeConfig(mode="nothink", max_gen_toks=100))[0]
    assert g.account.finish_reason == "context"
    assert g.account.prompt_tokens + g.account.answer_tokens <= 80


def test_template_that_already_opens_think():
    r1 = "<｜User｜>hi<｜Assistant｜><think>\n"
    qwen = "<|im_start|>assistant\n"
    assert layout.prefix_text(r1, "think") == r1
    assert layout.prefix_text(r1, "nothink", "empty") == "<｜User｜>hi<｜Assistant｜>" + layout.NOTHINK_EMPTY
    assert layout.prefix_text(qwen, "latent") == qwen + "<think>\n"
    assert layout.prefix_text(qwen, "nothink") == qwen + layout.NOTHINK_PREFILL


@pytest.mark.slow
def test_think_equals_hf_generate_on_the_tiny_world(tiny_world):
    """A trained base that closes </think> itself: think mode is exactly model.generate."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lrt_bench.io import read_jsonl

    base = AutoModelForCausalLM.from_pretrained(tiny_world / "base")
    tok = AutoTokenizer.from_pretrained(tiny_world / "base")
    lm = LatentLM(base, tok)
    rows = read_jsonl(tiny_world / "data" / "eval.jsonl")[:6]
    natural = 0
    for r in rows:
        g = lm.generate([r["problem"]], DecodeConfig(mode="think", max_gen_toks=200, answer_allowance=64))[0]
        text = layout.prefix_text(layout.render_chat(tok, r["problem"]), "think")
        ids = torch.tensor([tok.encode(text, add_special_tokens=False)])
        ref = base.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=300, do_sample=False)
        ref = [t for t in ref[0, ids.shape[1]:].tolist() if t not in lm.eos_ids]
        if g.account.forced_tokens == 0 and g.account.finish_reason == "eos":
            natural += 1
            assert g.token_ids == ref
    assert natural >= 4, "the tiny base should close its reasoning by itself"


def test_latent_generations_carry_their_z(lm):
    """Each latent-mode generation returns the z it answered from (GRPO keeps it for its log-probs)."""
    gens = lm.generate(PROMPTS[:3], DecodeConfig(mode="latent", max_gen_toks=4), repeats=2)
    with torch.no_grad():
        z = lm.latents(lm.encode_prompts(PROMPTS[:3], "latent"))  # [3, N, d]
    for i, g in enumerate(gens):
        torch.testing.assert_close(g.latents, z[i // 2])
    assert all(g.latents is None for g in lm.generate(PROMPTS[:2], DecodeConfig(mode="think", max_gen_toks=4)))
