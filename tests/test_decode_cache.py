"""The static KV cache, the host-sync interval and dropping finished rows from the step change how the
decode loop runs, never what it outputs.

Reference: transformers' DynamicCache with a host check after every step and every row in every step
(the loop as it was). Every other engine must give the same text, ids, accounts, EOS and step count in
every mode: budget forcing, `repeats`, sampling, stop strings found late, answer scores. The tiny
world's trained base writes real traces, so rows finish at different steps and for different reasons.
"""

import dataclasses
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lrt_bench.core import kv_cache
from lrt_bench.core.generation import DecodeConfig, LatentLM
from lrt_bench.core.reasoner import load_reasoner
from lrt_bench.errors import LRTError

# (cache, sync_every, drop_finished)
REFERENCE = ("dynamic", 1, False)
ENGINES = [("static", 1, True), ("static", 5, True), ("dynamic", 3, True), ("static", 64, True), ("static", 1, False)]

CONFIGS = {
    "think": dict(mode="think", max_gen_toks=512),
    "think forced": dict(mode="think", max_gen_toks=24),
    "think in budget": dict(mode="think", max_gen_toks=180, allowance_in_budget=True, answer_allowance=20),
    "think sampled": dict(mode="think", max_gen_toks=128, temperature=1.0, seed=3),
    "think stops": dict(mode="think", max_gen_toks=128, stop=("oxed", "\n\n")),
    "nothink stops scored": dict(mode="nothink", max_gen_toks=40, stop=("{",), score_answers=True),
    "latent sampled scored": dict(mode="latent", max_gen_toks=32, temperature=1.0, seed=5, score_answers=True),
}


@pytest.fixture(scope="module")
def world(tiny_world, world_reasoner):
    tok = AutoTokenizer.from_pretrained(tiny_world / "base")
    base = AutoModelForCausalLM.from_pretrained(tiny_world / "base")
    net, _ = load_reasoner(world_reasoner, base=base)
    rows = [json.loads(line) for line in (tiny_world / "data" / "eval.jsonl").open()]
    return base, tok, net, [r["problem"] for r in rows[:6]] + ["Hi", "Compute 7+8. Show every step."]


def run(world, engine, cfg, repeats=1):
    base, tok, net, prompts = world
    cache, every, drop = engine
    lm = LatentLM(base, tok, net, cache_implementation=cache, sync_every=every)
    lm.drop_finished = drop
    gens = lm.generate(prompts, DecodeConfig(**cfg), repeats=repeats)
    return gens, lm.last_timings


SCORES = ("answer_logprob_mean", "answer_logprob_min", "router_score")


class Score(float):
    """An answer score that equals another to float32 rounding: an engine that drops finished rows runs
    the step at other batch shapes, and some CPUs' kernels round differently per shape (seen: 5e-8 on
    -0.17). Text, ids and every count stay exact."""

    def __eq__(self, other):
        return isinstance(other, float) and abs(self - other) <= 1e-5 * max(1.0, abs(other))

    __hash__ = float.__hash__


def facts(gens):
    def account(g):
        d = {k: v for k, v in dataclasses.asdict(g.account).items() if k != "seconds"}
        return {k: Score(v) if k in SCORES and isinstance(v, float) else v for k, v in d.items()}

    return [(g.text, g.token_ids, g.eos_id, account(g)) for g in gens]


SLOW_CONFIGS = {"think", "think sampled", "latent sampled scored", "think in budget"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CONFIGS else n for n in CONFIGS])
def test_engines_decode_the_same(world, name):
    cfg = CONFIGS[name]
    repeats = 2 if "sampled" in name else 1
    ref, ref_tm = run(world, REFERENCE, cfg, repeats)
    assert ref_tm.extra["rows_dropped"] == 0
    reasons = {g.account.finish_reason for g in ref}
    if "stops" in name:
        assert "stop" in reasons, reasons  # the case really exercises a stop string
    if name == "think forced":
        assert any(g.account.forced_tokens for g in ref)
    dropped = 0
    for engine in ENGINES:
        gens, tm = run(world, engine, cfg, repeats)
        assert facts(gens) == facts(ref), engine
        assert tm.steps == ref_tm.steps, engine
        assert tm.extra["sync_every"] == engine[1]
        dropped += tm.extra["rows_dropped"]
    # rows that finish early really leave the step (every row here ends within a few steps of the others
    # only where the budget caps them all, or the answer is one short box)
    assert dropped > 0 or name in ("think forced", "nothink stops scored"), name


def test_finished_rows_leave_the_step(world):
    """One long row no longer keeps every row in the base's step: the step's batch shrinks as rows end."""
    base, tok, net, prompts = world
    lm = LatentLM(base, tok, net)
    batches = []
    hook = base.model.layers[0].register_forward_hook(lambda mod, args, out: batches.append(args[0].shape[0]))
    try:
        gens = lm.generate(prompts, DecodeConfig(mode="think", max_gen_toks=512), repeats=2)
    finally:
        hook.remove()
    lengths = sorted(g.account.generated_tokens for g in gens)
    assert lengths[len(lengths) // 2] < lengths[-1]  # most rows end before the longest
    assert batches[0] == len(prompts) and batches[1] == 2 * len(prompts)  # prefill, then every row
    steps = batches[1:]
    assert all(a >= b for a, b in zip(steps, steps[1:])) and steps[-1] < len(prompts)
    assert lm.last_timings.extra["rows_dropped"] >= 1


def test_generate_from_text_matches(world):
    base, tok, net, prompts = world
    cfg = DecodeConfig(mode="nothink", max_gen_toks=30, stop=("}",))
    outs = []
    for cache in ("dynamic", "static"):
        lm = LatentLM(base, tok, cache_implementation=cache, sync_every=4)
        outs.append(facts(lm.generate_from_text(lm.prefix_texts(prompts, "nothink"), cfg)))
    assert outs[0] == outs[1]


def test_static_cache_is_written_in_place(world):
    """One buffer per layer for the whole call: the decode never allocates cache memory per step."""
    base, tok, net, prompts = world
    lm = LatentLM(base, tok, net)
    assert lm.cache_implementation == "static"
    lm.drop_finished = False  # dropping rows copies the cache once per drop (test_finished_rows_leave_the_step)
    seen = []
    real_new = lm._new_cache

    def spy(max_len=None):
        cache = real_new(max_len)
        seen.append((max_len, cache))
        return cache

    lm._new_cache = spy
    ptrs = []
    hook = base.model.layers[0].register_forward_hook(
        lambda *a: ptrs.append(seen[-1][1].layers[0].keys.data_ptr()))
    try:
        gens = lm.generate(prompts[:3], DecodeConfig(mode="think", max_gen_toks=64), repeats=2)
    finally:
        hook.remove()
    (max_len, cache), = seen
    layer = cache.layers[0]
    assert kv_cache.is_static(cache) and not kv_cache.attends_all_slots(cache)
    # prompt + the most tokens a row may generate, for 3 prompts x 2 repeats
    assert layer.keys.shape[0] == 6 and layer.keys.shape[2] == max_len
    assert layer.written == max_len - DecodeConfig(mode="think", max_gen_toks=64, forced_tokens=lm.forced_tokens).max_new_tokens \
        + lm.last_timings.steps - 1
    # the first pointer is the prefill at batch 3; after the repeat, every step writes one buffer
    assert len(set(ptrs[1:])) == 1 and len(ptrs) == lm.last_timings.steps
    assert max(g.account.reasoning_tokens for g in gens) > 0


def test_compile_failure_falls_back_to_eager(world, monkeypatch):
    """A decode step that cannot be compiled leaves a warning and the eager step's outputs."""
    base, tok, net, prompts = world
    ref = facts(LatentLM(base, tok, net, cache_implementation="dynamic").generate(prompts, DecodeConfig(max_gen_toks=40)))

    class Broken(torch.nn.Module):
        def forward(self, **kw):
            raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", lambda *a, **k: Broken())
    lm = LatentLM(base, tok, net, compile=True)
    with pytest.warns(UserWarning, match="could not be compiled"):
        gens = lm.generate(prompts, DecodeConfig(max_gen_toks=40))
    assert facts(gens) == ref
    assert lm.last_timings.extra["decode_step"] == "eager (compile failed: RuntimeError)"
    assert lm.compile is False  # the next call does not try again


def test_compiled_path_reuses_one_pooled_cache(world, monkeypatch):
    """The compiled path's plumbing, run eagerly (torch.compile replaced by the identity): X is
    prefilled into a dynamic cache and moved into one pooled StaticCache that the next call of the same
    shape reuses at the same addresses (CUDA graphs are recorded against them); outputs unchanged."""
    base, tok, net, prompts = world
    cfg = DecodeConfig(mode="latent", max_gen_toks=24, temperature=1.0, seed=2, stop=("}",))
    ref = facts(LatentLM(base, tok, net, cache_implementation="dynamic").generate(prompts, cfg, repeats=2))
    monkeypatch.setattr(torch, "compile", lambda module, **kw: module)
    lm = LatentLM(base, tok, net, compile=True, sync_every=3)
    ptrs = []
    for _ in range(2):
        assert facts(lm.generate(prompts, cfg, repeats=2)) == ref
        assert lm.last_timings.extra["decode_step"] == "compiled"
        (cache,) = lm._pool._caches.values()
        assert kv_cache.attends_all_slots(cache)
        assert cache.layers[0].keys.shape[2] % kv_cache.COMPILE_CACHE_BUCKET == 0
        ptrs.append(cache.layers[0].keys.data_ptr())
    assert ptrs[0] == ptrs[1]


@pytest.mark.parametrize("kw, msg", [
    (dict(cache_implementation="paged"), "cache_implementation must be one of static, dynamic"),
    (dict(cache_implementation="dynamic", compile=True), "use cache_implementation=static"),
    (dict(sync_every=0), "sync_every must be a whole number >= 1"),
    (dict(sync_every=True), "sync_every must be a whole number >= 1"),
])
def test_bad_engine_options(world, kw, msg):
    base, tok, net, _ = world
    with pytest.raises(LRTError, match=msg):
        LatentLM(base, tok, net, **kw)


@pytest.mark.parametrize("kw, msg", [
    (dict(cache_implementation="paged"), "model_arg cache_implementation must be one of static, dynamic"),
    (dict(cache_implementation="dynamic", compile="true"), "model_arg compile=True captures"),
    (dict(compile="maybe"), "model_arg compile='maybe' is not a boolean"),
    (dict(sync_every="0"), "model_arg sync_every"),
    (dict(sync_every="often"), "model_arg sync_every"),
])
def test_backend_engine_args_are_checked_before_loading(kw, msg):
    from lrt_bench.eval.backend import LRTLM

    with pytest.raises(LRTError, match=msg):
        LRTLM.check_args(**kw)


def test_backend_engine_args_parse():
    from lrt_bench.eval.backend import LRTLM

    assert LRTLM.engine_args("static", "true", "8") == {"cache_implementation": "static", "compile": True, "sync_every": 8}
    assert LRTLM.engine_args("dynamic", False, None) == {"cache_implementation": "dynamic", "compile": False,
                                                         "sync_every": None}


@pytest.mark.slow
def test_compiled_step_decodes_the_same(world):
    """torch.compile(mode="reduce-overhead") of the step over transformers' StaticCache (whole-length
    mask, bucketed cache length). On CPU this runs inductor without CUDA graphs (~1 min to compile);
    graph replay itself is exercised only on CUDA (bench/gpu.sh)."""
    base, tok, net, prompts = world
    cfg = DecodeConfig(mode="think", max_gen_toks=24, stop=("oxed",))
    ref = facts(LatentLM(base, tok, net, cache_implementation="dynamic").generate(prompts, cfg, repeats=2))
    lm = LatentLM(base, tok, net, compile=True, sync_every=4)
    for _ in range(2):  # the second call replays what the first compiled
        assert facts(lm.generate(prompts, cfg, repeats=2)) == ref
        assert lm.last_timings.extra["decode_step"] == "compiled"


@pytest.mark.slow
def test_decode_bench_runs_on_cpu(tiny_world, tmp_path):
    """bench/decode.py end to end at toy lengths: every contender decodes exactly the same steps."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("decode_bench", Path(__file__).parents[1] / "bench" / "decode.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "d.json"
    assert mod.main(["--world", str(tiny_world), "--device", "cpu", "--dtype", "float32", "--batch-sizes", "1,3",
                     "--think-tokens", "8", "--answer-tokens", "4", "--rounds", "1",
                     "--contenders", "ours-dynamic,ours-static,hf-eager", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["complete"] and set(res["cells"]) == {"1", "3"}
    cells = res["cells"]["3"]
    assert set(cells) == {"ours-dynamic", "ours-static", "hf-eager"}
    assert len({c["steps"] for c in cells.values()}) == 1  # 8 reasoning + the forced close + 4 answer
    assert cells["ours-static"]["engine"]["cache"] == "static" and cells["ours-dynamic"]["engine"]["cache"] == "dynamic"
    assert "ms_per_step_quarter_length_median" in cells["ours-static"]
    proj = res["projection"]
    assert proj["batch_size"] == 3 and proj["batches"] == 667 and set(proj["hours"]) == set(cells)
    assert res["environment"]["commit"]


@pytest.mark.parametrize("cfg", [dict(mode="think", max_gen_toks=8),
                                 dict(mode="think", max_gen_toks=8 + 106 + 20, allowance_in_budget=True, answer_allowance=20)],
                         ids=["forced", "forced in budget"])
def test_forced_close_in_one_forward_decodes_the_same(world, cfg):
    """When every row is capped at once, the forced close goes through the base in one forward: same
    texts, ids and accounts as forcing it one step at a time (greedy), F fewer forward passes."""
    base, tok, net, prompts = world
    prompts = prompts[:6]  # real problems: every row reasons past the cap
    out = {}
    for fast in (True, False):
        lm = LatentLM(base, tok, net)
        lm.prefill_forced = fast
        calls = []
        hook = base.model.layers[0].register_forward_hook(lambda *a, calls=calls: calls.append(1))
        try:
            gens = lm.generate(prompts, DecodeConfig(**cfg), repeats=2)
        finally:
            hook.remove()
        out[fast] = (facts(gens), lm.last_timings.steps, len(calls))
    assert out[True][0] == out[False][0]
    assert out[True][1] == out[False][1]  # steps count generated positions, not forward passes
    assert all(a["forced_tokens"] == lm.forced_tokens for *_, a in out[True][0])
    assert out[False][2] - out[True][2] == lm.forced_tokens  # F + 1 one-token passes become one


def test_forced_close_is_per_step_while_a_row_answers(world):
    """A row that closed its reasoning before the cap is answering when the others are capped: the
    forced close then runs step by step (rows cannot take different numbers of tokens in one pass)."""
    base, tok, net, prompts = world
    prompts = prompts[:6]
    lm = LatentLM(base, tok, net)
    lengths = [g.account.reasoning_tokens for g in lm.generate(prompts, DecodeConfig(mode="think", max_gen_toks=512))]
    cap = min(lengths) + 3  # the shortest row closes 3 steps before the cap and is still answering there
    assert max(lengths) > cap
    cfg = DecodeConfig(mode="think", max_gen_toks=cap)
    out = {}
    for fast in (True, False):
        lm.prefill_forced = fast
        calls = []
        hook = base.model.layers[0].register_forward_hook(lambda *a, calls=calls: calls.append(1))
        try:
            gens = lm.generate(prompts, cfg)
        finally:
            hook.remove()
        out[fast] = (facts(gens), len(calls))
    assert out[True] == out[False]
    accounts = [a for *_, a in out[True][0]]
    assert any(a["forced_tokens"] == 0 and a["answer_tokens"] > 3 for a in accounts)
    assert any(a["forced_tokens"] == lm.forced_tokens for a in accounts)
