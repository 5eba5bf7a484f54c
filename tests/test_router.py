"""Hybrid reasoning (lrt_bench/eval/router.py, router.generate_hybrid, mode=hybrid in the backend):
the routing is a pure function of the scores, the extremes of τ are latent and think mode per
document, the sweep's arithmetic, and bad router settings as one line each."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from lrt_bench.core.generation import DecodeConfig, LatentLM
from lrt_bench.errors import LRTError
from lrt_bench.eval import router


def test_route_is_a_pure_function_of_the_scores():
    scores = [-0.1, -2.0, -0.5, 0.0]
    assert router.route(scores, -0.5) == [False, True, False, False]  # strictly below τ is re-asked
    assert router.route(scores, -math.inf) == [False] * 4
    assert router.route(scores, math.inf) == [True] * 4
    assert router.route(scores, -0.5) == router.route(list(scores), -0.5)  # same scores, same choice


def test_sweep_arithmetic_by_hand():
    # 3 samples: latent right/wrong/right at 2 tokens each, think right everywhere at 10 tokens
    pts = router.sweep([1, 0, 1], [2, 2, 2], [1, 1, 1], [10, 10, 10], [-0.1, -3.0, -1.0],
                       [-math.inf, -2.0, -0.5, math.inf])
    assert [p["accuracy"] for p in pts] == pytest.approx([2 / 3, 1.0, 1.0, 1.0])
    # re-asked rows pay for both passes: 2 + 10
    assert [p["mean_generated_tokens"] for p in pts] == pytest.approx([2, (2 + 2 + 12) / 3, (2 + 12 + 12) / 3, 12])
    assert [p["rerouted"] for p in pts] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    with pytest.raises(LRTError, match="same samples"):
        router.sweep([1], [2], [1, 0], [3, 3], [0.0], [0.0])


def test_agreement_scores_by_hand():
    class G:
        def __init__(self, text):
            self.text = text

    gens = [G(r"\boxed{3}"), G(r"\boxed{3}"), G(r"\boxed{4}"), G("no answer"), G(r"\boxed{1}"), G(r"\boxed{1}")]
    assert router.scores(gens, 3, "agreement") == pytest.approx([2 / 3, 2 / 3, 1 / 3, 0.0, 2 / 3, 2 / 3])


@pytest.mark.parametrize("args, message", [
    ({"router_threshold": -0.5, "router_score": "entropy"},
     "router_score 'entropy' is not one of mean_logprob, min_logprob, agreement"),
    ({"router_threshold": 0.5}, "outside the range of router_score=mean_logprob"),
    ({"router_threshold": 1.5, "router_score": "agreement"}, "outside the range of router_score=agreement"),
    ({"router_threshold": "nan"}, "router_threshold=nan is not a threshold"),
    ({"router_threshold": "lots"}, "router_threshold='lots' is not a number"),
    ({}, "mode=hybrid needs router_threshold"),
])
def test_bad_router_settings_are_one_line(world_reasoner, args, message):
    from lrt_bench.eval.backend import LRTLM

    with pytest.raises(LRTError) as e:
        LRTLM.check_args(mode="hybrid", reasoner=str(world_reasoner), **args)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_hybrid_without_a_reasoner_and_router_args_elsewhere(world_reasoner):
    from lrt_bench.eval.backend import LRTLM

    with pytest.raises(LRTError, match="mode=hybrid needs a reasoner"):
        LRTLM.check_args(mode="hybrid", router_threshold=-0.5)
    with pytest.raises(LRTError, match="apply to mode=hybrid only, not mode=latent"):
        LRTLM.check_args(mode="latent", reasoner=str(world_reasoner), router_threshold=-0.5)
    for tau in ("inf", "-inf", -0.5, 0):  # the extremes and in-range values are accepted
        LRTLM.check_args(mode="hybrid", reasoner=str(world_reasoner), router_threshold=tau)


@pytest.fixture(scope="module")
def lm(tiny_world, world_reasoner):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lrt_bench.core.reasoner import load_reasoner

    base = AutoModelForCausalLM.from_pretrained(Path(tiny_world) / "base")
    tok = AutoTokenizer.from_pretrained(Path(tiny_world) / "base")
    net, _ = load_reasoner(world_reasoner, base)
    return LatentLM(base, tok, net)


@pytest.fixture(scope="module")
def problems(tiny_world):
    rows = [json.loads(ln) for ln in (Path(tiny_world) / "data" / "eval.jsonl").read_text().splitlines()[:6]]
    return [r["problem"] for r in rows]


def _same(a, b):
    return [g.text for g in a] == [g.text for g in b] and [g.token_ids for g in a] == [g.token_ids for g in b]


@pytest.mark.slow
def test_hybrid_extremes_are_latent_and_think_per_document(lm, problems):
    cfg = DecodeConfig(max_gen_toks=48)
    latent = lm.generate(problems, DecodeConfig(mode="latent", max_gen_toks=48))
    think = lm.generate(problems, DecodeConfig(mode="think", max_gen_toks=48))
    never = router.generate_hybrid(lm, problems, cfg, threshold=-math.inf)
    always = router.generate_hybrid(lm, problems, cfg, threshold=math.inf)
    assert _same(never, latent) and {g.account.route for g in never} == {"latent"}
    assert _same(always, think) and {g.account.route for g in always} == {"think"}
    for h, lat in zip(always, never):  # a re-asked row pays for both passes
        assert h.account.first_pass_tokens == lat.account.generated_tokens > 0
        assert h.account.generated_tokens == h.account.reasoning_tokens + h.account.forced_tokens \
            + h.account.answer_tokens + lat.account.generated_tokens
        assert h.account.router_score == lat.account.router_score


@pytest.mark.slow
def test_hybrid_in_between_routes_by_score(lm, problems):
    cfg = DecodeConfig(max_gen_toks=48)
    never = router.generate_hybrid(lm, problems, cfg, threshold=-math.inf)
    scores = [g.account.router_score for g in never]
    assert all(s is not None and s <= 0 for s in scores)
    tau = sorted(scores)[len(scores) // 2]  # the median: some rows each way
    mixed = router.generate_hybrid(lm, problems, cfg, threshold=tau)
    think = lm.generate(problems, DecodeConfig(mode="think", max_gen_toks=48))
    for g, s, lat, th in zip(mixed, scores, never, think):
        assert g.account.route == ("think" if s < tau else "latent")
        assert g.text == (th.text if s < tau else lat.text)


def test_answer_scores_are_the_tokens_log_probs(lm, problems):
    """score_answers records the mean / min log-prob of the answer tokens (EOS included) at T = 1."""
    g = lm.generate(problems[:1], DecodeConfig(mode="nothink", max_gen_toks=16, score_answers=True))[0]
    ids = lm.encode_prompts(problems[:1], "nothink").input_ids[0].tolist()
    seq = ids + g.token_ids + ([g.eos_id] if g.eos_id is not None else [])
    with torch.no_grad():
        logp = torch.log_softmax(lm.base(input_ids=torch.tensor([seq])).logits[0].float(), -1)
    n = len(seq) - len(ids)
    lps = [float(logp[len(ids) - 1 + t, seq[len(ids) + t]]) for t in range(n)]
    assert g.account.answer_logprob_mean == pytest.approx(sum(lps) / n, abs=1e-4)
    assert g.account.answer_logprob_min == pytest.approx(min(lps), abs=1e-4)


@pytest.mark.parametrize("tau, rerouted", [("-inf", 0.0), ("inf", 1.0)])
@pytest.mark.slow
def test_backend_hybrid_mode_through_lm_eval(tiny_world, world_reasoner, tmp_path, monkeypatch, tau, rerouted):
    """`--model lrt ... mode=hybrid,router_threshold=τ`: the results carry the re-asked share and the
    replaced latent answers' tokens; the model info records the router."""
    from lrt_bench.eval.evaluate import metric, run_lm_eval

    monkeypatch.setenv("LRT_TINY_DIR", str(tiny_world))
    res = run_lm_eval({"pretrained": str(Path(tiny_world) / "base"), "mode": "hybrid", "reasoner": str(world_reasoner),
                       "router_threshold": tau}, ["lrt_tiny"], tmp_path / "out", limit=3, batch_size=4,
                      gen_kwargs={"max_gen_toks": 32, "do_sample": "false", "temperature": 0}, device="cpu")
    assert metric(res, "lrt_tiny", "rerouted") == rerouted
    assert (metric(res, "lrt_tiny", "first_pass_tokens") > 0) == (rerouted == 1.0)
    assert (metric(res, "lrt_tiny", "reasoning_tokens") > 0) == (rerouted == 1.0)
    info = res["config"]["lrt"]
    assert info["mode"] == "hybrid" and info["router_score"] == "mean_logprob"
    assert info["router_threshold"] == float(tau)


@pytest.mark.slow
def test_router_sweep_cli_writes_its_curve(tiny_world, world_reasoner, tmp_path):
    from lrt_bench.cli import main

    out = tmp_path / "router"
    assert main(["router-sweep", "--world", str(tiny_world), "--reasoner", str(world_reasoner), "--limit", "8",
                 "--budget", "32", "--out", str(out)]) == 0
    r = json.loads((out / "router_sweep.json").read_text())
    pts = r["points"]
    assert pts[0]["threshold"] == -math.inf and pts[0]["rerouted"] == 0 and pts[-1]["rerouted"] == 1
    assert pts[-1]["vs_think_points"] == 0.0 and r["problems"] == 8
    assert r["oracle"]["accuracy"] >= max(p["accuracy"] for p in pts)  # no τ beats a perfect router
    assert all(a["rerouted"] <= b["rerouted"] for a, b in zip(pts, pts[1:]))  # τ grows: more re-asked
    assert (out / "router_sweep.png").stat().st_size > 0 and "Hybrid router sweep" in (out / "ROUTER.md").read_text()
    assert r["provenance"]["commit"]
