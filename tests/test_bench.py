"""`lrt-bench bench`: CPU smoke tests of the tiny-world and real-size paths (timings are not checked)."""

import argparse
import json

import pytest

from lrt_bench.errors import LRTError
from lrt_bench.tools import bench

SPLIT = {"prefill", "reasoner", "latent_prefill", "decode", "other"}


def test_add_parser_registers_bench():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    bench.add_parser(sub)
    args = p.parse_args(["bench", "--real-size", "qwen3-1.7b", "--layers", "2", "--vs-hf"])
    assert args.func is bench.run and args.real_size == "qwen3-1.7b" and args.layers == 2
    with pytest.raises(LRTError, match="--vs-hf runs lm-eval on the tiny world"):
        bench.run(args)


def test_bad_arguments_say_what_to_do(tmp_path):
    assert bench.main(["--world", str(tmp_path / "none"), "--out-dir", str(tmp_path)]) == 2
    with pytest.raises(LRTError, match="--layers shrinks a --real-size model"):
        bench.run(_args(["--layers", "1"]))
    with pytest.raises(LRTError, match="--batch-sizes must be positive integers"):
        bench.run(_args(["--batch-sizes", "0,x"]))


def _args(argv):
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    return p.parse_args(argv)


@pytest.mark.slow
def test_tiny_world_bench_writes_json_and_markdown(tiny_world, tmp_path):
    rc = bench.main(["--world", str(tiny_world), "--problems", "3", "--batch-sizes", "1,2", "--latents", "4",
                     "--out-dir", str(tmp_path), "--name", "smoke"])
    assert rc == 0
    res = json.loads((tmp_path / "smoke.json").read_text())
    assert res["complete"] is True
    assert res["setup"]["reasoner"]["trained"] is False
    cells = res["cells"]
    # two suites x two batch sizes x three modes, the same three problems in every cell
    assert {(c["suite"], c["batch_size"], c["mode"]) for c in cells} == {
        (s, b, m) for s in ("natural", "equal-answer") for b in (1, 2) for m in ("think", "nothink", "latent")}
    assert all(c["problems"] == 3 for c in cells)
    for c in cells:
        assert set(c["split_s"]) == SPLIT
        assert sum(c["split_s"].values()) == pytest.approx(c["seconds"], rel=0.05, abs=1e-3)
        assert c["memory"]["kind"] in ("rss_sampled", "ru_maxrss_lifetime") and c["memory"]["peak_mb"] > 0
        assert c["tokens_per_s_with_latents"] >= c["tokens_per_s"] > 0
        if c["mode"] == "latent":
            assert c["latents"] == 4 and c["label"] == "latent (untrained G_φ)"
            assert c["split_s"]["reasoner"] > 0 and c["split_s"]["latent_prefill"] > 0
        else:
            assert c["split_s"]["reasoner"] == 0 and c["latents"] == 0
        if c["mode"] == "think":
            assert c["reasoning_tokens"] > 0
    # the equal-answer suite forces every answer to the same length, exactly
    eq = [c for c in cells if c["suite"] == "equal-answer"]
    A = res["equal_answer_tokens"]
    assert A >= 1 and all(c["answer_tokens"] == A and c["exact"] is True for c in eq)
    for suite in ("natural", "equal-answer"):
        r = res["ratios"][suite]
        for key in ("think_over_latent_time@bs1", "latent_over_nothink_time@bs2", "latent_throughput_bs2_over_bs1"):
            assert r[key] > 0
    assert {t["ratio"] for t in res["targets"]} >= {"think_over_latent_time@bs1", "latent_over_nothink_time@bs1"}
    md = (tmp_path / "smoke.md").read_text()
    for text in ("## Ratios (natural)", "## Ratios (equal-answer)", "think_over_latent_time@bs1", "Time split",
                 "G_φ", "latent prefill", "## Targets", "latent (untrained G_φ)"):
        assert text in md


@pytest.mark.slow
def test_real_size_forced_counts_are_exact(tmp_path):
    """A Qwen3-1.7B-wide base and Qwen3-Embedding-0.6B-wide G_φ, one layer each, random weights, CPU."""
    rc = bench.main(["--real-size", "qwen3-1.7b", "--layers", "1", "--think-tokens", "3", "--answer-tokens", "2",
                     "--latents", "4", "--batch-sizes", "2", "--prompt-words", "6", "--device", "cpu",
                     "--no-warmup", "--out-dir", str(tmp_path)])
    assert rc == 0
    res = json.loads((tmp_path / "real_qwen3-1.7b_L1.json").read_text())
    assert res["setup"]["layers"] == 1 and res["setup"]["layers_overridden"] is True
    assert res["setup"]["reasoner"]["backbone_layers"] == 1
    by = {c["mode"]: c for c in res["cells"]}
    assert set(by) == {"think", "nothink", "latent"}
    assert all(c["exact"] is True and c["problems"] == 2 and c["finish"] == {"length": 2} for c in by.values())
    think = by["think"]
    assert think["reasoning_tokens"] == 3 and think["answer_tokens"] == 2
    assert think["forced_tokens"] == think["expected"]["forced_tokens"] > 0
    assert by["nothink"]["answer_tokens"] == by["latent"]["answer_tokens"] == 2
    assert by["latent"]["latents"] == 4 and by["nothink"]["reasoning_tokens"] == 0
    assert set(res["ratios"]["forced"]) >= {"think_over_latent_time@bs2", "latent_over_nothink_time@bs2"}
    assert "## Ratios (forced)" in (tmp_path / "real_qwen3-1.7b_L1.md").read_text()
