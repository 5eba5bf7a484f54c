"""Rewards (trainers/rewards.py) and valid-thinking extractors (trainers/extractors.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lrt_bench.errors import LRTError
from trainers.extractors import (
    LLMExtractor,
    RuleExtractor,
    build_extractor,
    map_copy_to_offset,
    split_steps,
    step_reaches,
)
from trainers.rewards import (
    REWARDS,
    CheckedReward,
    compute_rewards,
    cut_positions,
    get_reward,
    lcr1_compress,
    lcr1_right,
    parse_specs,
    register,
)

GOOD = "17+5=22\n</think>\n\n\\boxed{22}"  # a well-formed think-mode completion


def call(name, completions, correct, lengths, group_size=None, reasoning_lengths=None, answers=None, **params):
    n = len(completions)
    return get_reward(name)(
        completions, answers or ["0"] * n, group_size=group_size or n, correct=correct, lengths=lengths,
        reasoning_lengths=reasoning_lengths or [0] * n, **params,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------------------------


def test_registry_has_the_rewards():
    assert {"correctness", "format", "shorterbetter", "lcr1"} <= set(REWARDS)
    assert get_reward("shorterbetter").params == {"alpha": 2.0, "beta": 0.001}


def test_unknown_reward_lists_the_known_ones():
    with pytest.raises(LRTError) as e:
        get_reward("shortest")
    msg = str(e.value)
    assert msg.startswith("unknown reward 'shortest': use one of ")
    for name in ("correctness", "format", "lcr1", "shorterbetter"):
        assert name in msg


def test_unknown_and_bad_params_are_named():
    with pytest.raises(LRTError, match=r"unknown parameter\(s\) gamma.*known: alpha, beta"):
        call("shorterbetter", [GOOD] * 2, [True, False], [3, 4], gamma=1.0)
    with pytest.raises(LRTError, match="unknown parameter.*known: none"):
        call("correctness", [GOOD], [True], [3], alpha=1.0)
    with pytest.raises(LRTError, match="alpha must be a number"):
        call("shorterbetter", [GOOD] * 2, [True, False], [3, 4], alpha="2")
    with pytest.raises(LRTError, match="beta must be >= 0"):
        call("shorterbetter", [GOOD] * 2, [True, False], [3, 4], beta=-1.0)
    with pytest.raises(LRTError, match="length_scope"):
        call("lcr1", [GOOD] * 2, [True, False], [3, 4], length_scope="all")
    with pytest.raises(LRTError, match="mode"):
        call("format", [GOOD], [True], [3], mode="explicit")


def test_bad_inputs():
    with pytest.raises(LRTError, match="do not split into groups of 2"):
        call("correctness", [GOOD] * 3, [True] * 3, [1] * 3, group_size=2)
    with pytest.raises(LRTError, match="lengths has 2 entries for 3"):
        call("correctness", [GOOD] * 3, [True] * 3, [1, 2])
    with pytest.raises(LRTError, match="group_size must be a positive integer"):
        get_reward("correctness")([GOOD] * 2, ["1"] * 2, group_size=0, correct=[True] * 2, lengths=[1, 2],
                                  reasoning_lengths=[0, 0])  # fmt: skip


def test_register_rejects_duplicates_and_params_without_defaults():
    with pytest.raises(LRTError, match="already registered"):
        register("correctness")(lambda *a, **k: [])

    def needs(completions, answers, *, group_size, correct, lengths, reasoning_lengths, k):
        return []

    with pytest.raises(TypeError, match="need defaults: k"):
        register("test_needs_default")(needs)
    assert "test_needs_default" not in REWARDS


# ----------------------------------------------------------------------------------------------
# correctness and format
# ----------------------------------------------------------------------------------------------


def test_correctness():
    assert call("correctness", [GOOD] * 3, [True, False, 1], [1, 2, 3]) == [1.0, 0.0, 1.0]


def test_format_think_and_latent():
    comps = [
        GOOD,  # one </think>, boxed after: ok
        "a</think>b</think>\\boxed{1}",  # two </think>
        "\\boxed{1}</think> 1",  # boxed only before </think>
        "r</think>\\boxed{}",  # empty box
        "r</think>\\boxed{1",  # unbalanced
        "r</think>\\boxed{\\frac{1}{2}}",  # nested braces
        "\\boxed{7}",  # latent: no </think>, boxed
        "the answer is 7",  # latent without a box
    ]
    assert call("format", comps, [True] * 8, [1] * 8) == [1, 0, 0, 0, 0, 1, 1, 0]
    # mode=think: a completion that never closed its reasoning fails
    assert call("format", comps[6:], [True] * 2, [1] * 2, mode="think") == [0, 0]
    assert call("format", ["r</think>\\boxed{3}"], [True], [1], mode="latent") == [1.0]


# ----------------------------------------------------------------------------------------------
# ShorterBetter
# ----------------------------------------------------------------------------------------------


def test_shorterbetter_mixed_group_uses_shortest_correct():
    # ℓ* = 100 (shortest correct); α = 2, β = 0.001
    r = call("shorterbetter", [GOOD] * 4, [True, True, False, False], [100, 300, 50, 400])
    assert r == pytest.approx([2.0, 2.0 - 0.2, -0.05, -0.3])


def test_shorterbetter_all_correct_ties():
    r = call("shorterbetter", [GOOD] * 3, [True] * 3, [80, 80, 120], alpha=1.0, beta=0.01)
    assert r == pytest.approx([1.0, 1.0, 1.0 - 0.4])


def test_shorterbetter_none_correct_uses_mean():
    r = call("shorterbetter", [GOOD] * 2, [False, False], [100, 300])
    assert r == pytest.approx([-0.1, -0.1])  # ℓ* = 200


def test_shorterbetter_two_groups_are_independent():
    r = call("shorterbetter", [GOOD] * 4, [True, False, False, False], [10, 20, 1000, 3000], group_size=2)
    # group 1: ℓ* = 10; group 2: none correct, ℓ* = 2000
    assert r == pytest.approx([2.0, -0.01, -1.0, -1.0])


# ----------------------------------------------------------------------------------------------
# LC-R1
# ----------------------------------------------------------------------------------------------


def test_lcr1_length_reward_on_right_samples():
    comps = [GOOD, GOOD, GOOD, GOOD]
    r = call("lcr1", comps, [True, True, True, False], [50, 100, 100, 20])
    # base 2 for right, 1 (format only) for the wrong one; max right length 100
    assert r == pytest.approx([2.5, 2.0, 2.0, 1.0])


def test_lcr1_group_scope_as_in_released_code():
    r = call("lcr1", [GOOD] * 3, [True, False, False], [100, 50, 200], length_scope="group", length_coef=0.5)
    assert r == pytest.approx([2.0, 1.0 + 0.5 * 0.5, 1.0 + 0.5 * -1.0])


def test_lcr1_none_correct_no_length_reward():
    r = call("lcr1", [GOOD, "no close"], [False, False], [10, 200])
    assert r == [1.0, 0.0]


def test_lcr1_right_needs_one_think_close():
    comps = [GOOD, "a</think>b</think>\\boxed{22}", "\\boxed{22}"]
    assert lcr1_right(comps, [True, True, True]) == [True, False, False]
    # the malformed correct sample is not "right": it earns accuracy only, and does not set the max
    r = call("lcr1", comps, [True, True, True], [100, 400, 10])
    assert r == pytest.approx([2.0, 1.0, 1.0])


def test_lcr1_two_groups_and_zero_lengths():
    r = call("lcr1", [GOOD] * 4, [True, True, True, False], [0, 0, 30, 60], group_size=2)
    # group 1: every right length is 0 -> no length reward; group 2: one right sample -> 1 - 30/30 = 0
    assert r == pytest.approx([2.0, 2.0, 2.0, 1.0])


def test_lcr1_compress():
    correct = [True, True, True, False, True]
    valid = [25, None, 100, 10, None]
    think = [100, 80, 100, 100, 0]
    assert lcr1_compress(correct, valid, think) == pytest.approx([0.75, -1.0, 0.0, 0.0, -1.0])
    assert lcr1_compress([True], [0], [0]) == [0.0]  # nothing to compress
    assert cut_positions(correct, valid, think) == [25, None, None, None, None]


def test_lcr1_compress_rejects_inconsistent_lengths():
    with pytest.raises(LRTError, match="valid_length <= think_length"):
        lcr1_compress([True], [120], [100])
    with pytest.raises(LRTError, match="differ in length"):
        cut_positions([True, False], [1], [2, 3])


# ----------------------------------------------------------------------------------------------
# compute_rewards / parse_specs
# ----------------------------------------------------------------------------------------------


def test_compute_rewards_weighted_total_and_parts():
    comps = [GOOD, "r</think>no box", GOOD, GOOD]
    specs = parse_specs(
        [("correctness", 1.0), ("format", 0.5, {}), {"name": "shorterbetter", "weight": 2, "params": {"beta": 0.01}}]
    )
    total, per = compute_rewards(
        specs, completions=comps, answers=["22"] * 4, group_size=2, correct=[True, False, False, False],
        lengths=[10, 20, 30, 50], reasoning_lengths=[5, 15, 25, 45],
    )  # fmt: skip
    assert list(per) == ["correctness", "format", "shorterbetter"]
    assert per["correctness"] == [1.0, 0.0, 0.0, 0.0]
    assert per["format"] == [1.0, 0.0, 1.0, 1.0]
    assert per["shorterbetter"] == pytest.approx([2.0, -0.1, -0.1, -0.1])
    expected = [c + 0.5 * f + 2 * s for c, f, s in zip(per["correctness"], per["format"], per["shorterbetter"])]
    assert total == pytest.approx(expected)


def test_parse_specs_forms_and_errors():
    assert parse_specs([("lcr1", 1, {"length_coef": 2})])[0].params == {"length_coef": 2.0}
    assert parse_specs(["format"]) == [CheckedReward("format", 1.0, {})]
    recipe_entry = SimpleNamespace(name="shorterbetter", weight=0.5, params={"alpha": 1})  # a CheckedReward-like
    assert parse_specs([recipe_entry]) == [CheckedReward("shorterbetter", 0.5, {"alpha": 1.0})]
    assert parse_specs(parse_specs([recipe_entry])) == parse_specs([recipe_entry])  # checking again changes nothing
    with pytest.raises(LRTError, match="unknown reward 'acc'"):
        parse_specs([("acc", 1.0)])
    with pytest.raises(LRTError, match="listed twice"):
        parse_specs([("format", 1.0), ("format", 0.5)])
    with pytest.raises(LRTError, match="weight must be a number"):
        parse_specs([("format", "1")])
    with pytest.raises(LRTError, match=r"unknown parameter\(s\) alpha"):
        parse_specs([{"name": "lcr1", "params": {"alpha": 1.0}}])
    with pytest.raises(LRTError, match="no rewards given"):
        compute_rewards([], completions=[], answers=[], group_size=1, correct=[], lengths=[], reasoning_lengths=[])
    # each reward's own value checks run when the specs are parsed, not at the first step
    for spec, match in ((("shorterbetter", 1.0, {"beta": -1}), "beta must be >= 0"),
                        (("lcr1", 1.0, {"length_scope": "all"}), "length_scope"),
                        (("format", 1.0, {"mode": "explicit"}), "mode must be one of")):  # fmt: skip
        with pytest.raises(LRTError, match=match):
            parse_specs([spec])


def test_config_checks_rewards_once_and_the_step_uses_them(monkeypatch):
    from trainers import rewards
    from trainers.config import GRPOConfig

    cfg = GRPOConfig(base="b", dataset="d.jsonl", output_dir="o",
                     rewards=[{"name": "shorterbetter", "params": {"alpha": 1}}, "format"])  # fmt: skip
    assert cfg.rewards == [CheckedReward("shorterbetter", 1.0, {"alpha": 1.0}), CheckedReward("format", 1.0, {})]
    assert cfg.to_dict()["rewards"][0] == {"name": "shorterbetter", "weight": 1.0, "params": {"alpha": 1.0}}
    with pytest.raises(LRTError, match="beta must be >= 0"):
        GRPOConfig(base="b", dataset="d.jsonl", output_dir="o", rewards=[{"name": "shorterbetter", "params": {"beta": -1}}])

    def no_check(*a, **k):
        raise AssertionError("a step checked the params again")

    monkeypatch.setattr(rewards, "check_params", no_check)
    total, per = compute_rewards(cfg.rewards, completions=[GOOD] * 2, answers=["22"] * 2, group_size=2,
                                 correct=[True, False], lengths=[3, 4], reasoning_lengths=[1, 2])  # fmt: skip
    assert per["shorterbetter"] == pytest.approx([1.0, -0.001])


# ----------------------------------------------------------------------------------------------
# rule extractor
# ----------------------------------------------------------------------------------------------

TRACE = "17+5=22\n22*3=66\n66-9=57\nAnswer: 57\n"


def test_split_steps_covers_the_text():
    text = "a = 3.5 here. Next\nline! end"
    spans = split_steps(text)
    assert "".join(text[s:e] for s, e in spans) == text
    assert [text[s:e] for s, e in spans] == ["a = 3.5 here.", " Next\n", "line!", " end"]


def test_rule_extractor_tiny_world_traces():
    ext = RuleExtractor()
    assert ext.valid_length("Compute ((17+5)*3)-9.", TRACE, "57") == len("17+5=22\n22*3=66\n66-9=57\n")
    # the answer only on the Answer line (leading newline as after "<think>")
    assert ext.valid_length("", "\n12+3=15\nAnswer: 15\n", "15") == len("\n12+3=15\n")
    # 57 as an operand or inside 157 does not count; the line whose result is 57 does
    trace = "57+100=157\n157-100=57\nAnswer: 57\n"
    assert ext.valid_length("", trace, "57") == len("57+100=157\n157-100=57\n")
    assert ext.valid_length("", "17+5=22\n22*3=66\n", "57") is None
    assert ext.valid_length("", "", "57") is None


def test_rule_extractor_prose():
    ext = RuleExtractor()
    text = "We have 2x + 1 = 25, so 2x = 24. Hence x = 12. Let me double check: 12 works."
    n = ext.valid_length("Solve 2x+1=25.", text, "12")
    assert text[:n] == "We have 2x + 1 = 25, so 2x = 24. Hence x = 12."
    text = "... so x = 12. Let me double check: 12 works."
    assert text[: ext.valid_length("", text, "12")] == "... so x = 12."
    assert ext.valid_lengths(["", ""], [text, "nothing"], ["12", "12"]) == [len("... so x = 12."), None]


@pytest.mark.parametrize(
    "step, gold, hit",
    [
        ("66-9=57", "57", True),
        ("Answer: 57", "57", True),
        ("100+57=157", "57", False),
        ("57+3=60", "57", False),
        ("it is 5.7", "57", False),
        ("x = 57.0", "57", True),
        ("x^{57}", "57", False),
        ("so \\boxed{57}", "57", True),
        ("x = \\frac{1}{2}", "2", False),
        ("x = \\frac{1}{2}", "1/2", True),
        ("that is 0.5", "\\frac{1}{2}", True),
        ("5-8=-3", "-3", True),
        ("5-8=-3", "3", False),
        ("total 1,234 apples", "1234", True),
        ("3 \\times 4 = 12", "3", False),
        ("2x = 24", "2", False),
        ("1. Start from 17", "1", False),
        ("f(x) = x^2 + 1.", "x^2+1", True),
        ("f(x) = x^2+10", "x^2+1", False),
        ("r = 2\\sqrt{3}", "2\\sqrt{3}", True),
    ],
)
def test_step_reaches(step, gold, hit):
    assert step_reaches(step, gold) is hit


# ----------------------------------------------------------------------------------------------
# LLM extractor: mapping a copy back onto the reasoning
# ----------------------------------------------------------------------------------------------

PROSE = "First, 2x + 1 = 25.\nSo 2x = 24, hence x = 12.\nLet me double check: 2*12+1 = 25. Yes, 12 works.\n"
CUT = len("First, 2x + 1 = 25.\nSo 2x = 24, hence x = 12.")


@pytest.mark.parametrize(
    "output, expected",
    [
        ("First, 2x + 1 = 25.\nSo 2x = 24, hence x = 12.", CUT),  # exact copy
        ("First, 2x + 1 = 25. So 2x = 24,\n hence x = 12.", CUT),  # whitespace re-flowed
        ("First, 2x + 1 = 25.\nSo 2x = 24, hence x = 12", CUT),  # stops before the full stop: snapped
        ("First, 2x + 1 = 25.\nSo 2x = 24, hence", CUT),  # stops mid-sentence: snapped to its end
        ('"First, 2x + 1 = 25.\nSo 2x = 24, hence x = 12."', CUT),  # quoted
        ("```\nFirst, 2x + 1 = 25.\nSo 2x = 24, hence x = 12.\n```", CUT),  # fenced
        ("Here is the prefix: First, 2x + 1 = 25.\nSo 2x = 24, hence x = 12.", CUT),  # lead-in
        ("<think>let me see</think>First, 2x + 1 = 25.\nSo 2x = 24, hence x = 12.", CUT),
        ("First, 2x+1 equals 25. So 2x = 24, hence x = 12.", CUT),  # paraphrase; last step verbatim
        ("NONE", None),
        ("None.", None),
        ("", None),
        ("The value is twelve.", None),  # unplaceable
        (PROSE + " and then some more", None),  # longer than the reasoning, last step not in it
    ],
)
def test_map_copy_to_offset(output, expected):
    got = map_copy_to_offset(PROSE, output)
    assert got == expected
    if got is not None:
        assert PROSE[:got].rstrip().endswith("x = 12.")


def test_map_copy_full_reasoning_and_garbage():
    assert map_copy_to_offset(TRACE, TRACE) == len(TRACE)
    assert map_copy_to_offset("", "x") is None
    for junk in ("\x00\x01", "}}}{{{", "1" * 5000, "</think>"):
        got = map_copy_to_offset(TRACE, junk)
        assert got is None or 0 < got <= len(TRACE)


# ----------------------------------------------------------------------------------------------
# LLM extractor: construction and plumbing with a tiny random Qwen3
# ----------------------------------------------------------------------------------------------


def test_build_extractor_specs():
    with pytest.raises(LRTError, match=r"lcr1 needs an extractor: set extractor: \{type: rule\}"):
        build_extractor(None)
    assert isinstance(build_extractor({"type": "rule"}), RuleExtractor)
    with pytest.raises(LRTError, match="unknown extractor type"):
        build_extractor({"type": "regex"})
    with pytest.raises(LRTError, match="takes no other keys"):
        build_extractor({"type": "rule", "model": "x"})
    with pytest.raises(LRTError, match=r"unknown extractor key\(s\) temperature"):
        build_extractor({"type": "llm", "model": "x", "temperature": 0.7})
    with pytest.raises(LRTError, match="needs model"):
        build_extractor({"type": "llm"})
    with pytest.raises(LRTError, match="unknown dtype"):
        build_extractor({"type": "llm", "model": "x", "dtype": "float13"})
    with pytest.raises(LRTError, match="unknown mode"):
        build_extractor({"type": "llm", "model": "x", "mode": "sample"})
    ext = build_extractor({"type": "llm", "model": "some/model", "max_new_tokens": 256, "dtype": "bfloat16"})
    assert isinstance(ext, LLMExtractor) and ext._model is None  # lazy: nothing loaded yet


def test_llm_extractor_missing_model_is_an_lrt_error(tmp_path):
    ext = build_extractor({"type": "llm", "model": str(tmp_path / "nowhere"), "device": "cpu"})
    with pytest.raises(LRTError, match="cannot load"):
        ext.valid_length("p", "r = 1.", "1")


@pytest.fixture(scope="module")
def tiny_extractor_dir(tmp_path_factory, tokenizer):
    from conftest import make_base

    d = tmp_path_factory.mktemp("extractor")
    # byte-level tokens: the prompt alone is ~700 tokens, so the default 512 positions are too few
    make_base(tokenizer, max_position_embeddings=2048).save_pretrained(d, safe_serialization=True)
    tokenizer.save_pretrained(d)
    return d


@pytest.mark.parametrize("mode", ["generate", "teacher_forced"])
def test_llm_extractor_plumbing_random_model(tiny_extractor_dir, mode):
    ext = build_extractor({"type": "llm", "model": str(tiny_extractor_dir), "device": "cpu",
                           "dtype": "float32", "max_new_tokens": 12, "mode": mode, "batch_size": 2})  # fmt: skip
    reasonings = [TRACE, "\n12+3=15\nAnswer: 15\n", ""]
    got = ext.valid_lengths(["Compute ((17+5)*3)-9.", "Compute 12+3.", "Compute 1+1."], reasonings,
                            ["57", "15", "2"])  # fmt: skip
    for val, r in zip(got, reasonings):
        assert val is None or 0 < val <= len(r)  # garbage in, never a crash or an out-of-range offset
    assert got[2] is None  # empty reasoning: the answer never appears
    assert ext.stats["calls"] == 3 and ext.stats["too_long"] == 0
    assert ext.valid_length("Compute 12+3.", "12+3=15\n", "15") in (None, len("12+3=15\n"))


def test_llm_extractor_generate_maps_the_copy(tiny_extractor_dir, monkeypatch):
    """The generate path end to end, with the model's reply scripted: copy -> decode -> offset."""
    ext = build_extractor({"type": "llm", "model": str(tiny_extractor_dir), "device": "cpu", "dtype": "float32"})
    ext._load()
    tok = ext._tok
    replies = iter(["17+5=22\n22*3=66\n66-9=57", "NONE"])

    def fake_generate(input_ids, attention_mask, max_new_tokens, **kw):
        rows = []
        for _ in range(input_ids.shape[0]):
            ids = tok(next(replies), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            rows.append(ids + [tok.pad_token_id] * (max_new_tokens - len(ids)))
        return torch.cat([input_ids, torch.tensor(rows)], dim=1)

    monkeypatch.setattr(ext._model, "generate", fake_generate)
    got = ext.valid_lengths(["p1", "p2"], [TRACE, TRACE], ["57", "99"])
    assert got == [len("17+5=22\n22*3=66\n66-9=57\n"), None]
    assert ext.stats["none"] == 1


@pytest.mark.parametrize("on_failure, expected", [("keep", len(TRACE)), ("none", None)])
def test_llm_extractor_failures(tiny_extractor_dir, monkeypatch, on_failure, expected):
    """An unplaceable copy, a copy cut off by max_new_tokens and an over-long input are failures."""
    ext = build_extractor({"type": "llm", "model": str(tiny_extractor_dir), "device": "cpu",
                           "dtype": "float32", "on_failure": on_failure, "max_new_tokens": 8})  # fmt: skip
    ext._load()
    tok = ext._tok

    def fake_generate(input_ids, attention_mask, max_new_tokens, **kw):
        garbage = tok("zz qq", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        rows = [garbage + [tok.pad_token_id] * (max_new_tokens - len(garbage)),
                tok("17+5=22\n22*3", add_special_tokens=False)["input_ids"][:max_new_tokens]]  # fmt: skip
        return torch.cat([input_ids, torch.tensor(rows)], dim=1)

    monkeypatch.setattr(ext._model, "generate", fake_generate)
    assert ext.valid_lengths(["p", "p"], [TRACE, TRACE], ["57", "57"]) == [expected, expected]
    ext.max_input_tokens = 50
    assert ext.valid_length("p", TRACE, "57") == expected
    assert {k: ext.stats[k] for k in ("unmapped", "truncated", "too_long")} == {
        "unmapped": 1, "truncated": 1, "too_long": 1}  # fmt: skip
    with pytest.raises(LRTError, match="on_failure"):
        build_extractor({"type": "llm", "model": "x", "on_failure": "raise"})


def test_llm_extractor_teacher_forced_reads_the_first_stop(tiny_extractor_dir, monkeypatch):
    """Teacher forcing: the cut is where the argmax first turns to end-of-turn, mapped to characters."""
    ext = build_extractor({"type": "llm", "model": str(tiny_extractor_dir), "device": "cpu",
                           "dtype": "float32", "mode": "teacher_forced"})  # fmt: skip
    ext._load()
    tok = ext._tok
    eos = tok.eos_token_id
    # stop after the reasoning token that ends "66-9=57" (before its newline) -> snapped to the line end
    stop_after = len(tok("17+5=22\n22*3=66\n66-9=57", add_special_tokens=False)["input_ids"])
    n_r = len(tok(TRACE, add_special_tokens=False)["input_ids"])

    short = "12+3=15\n"
    n_short = len(tok(short, add_special_tokens=False)["input_ids"])

    def fake_forward(input_ids, attention_mask, logits_to_keep):
        B, T = input_ids.shape
        logits = torch.zeros(B, T, len(tok))
        logits[:, :, 0] = 1.0
        # row 0 stops after `stop_after` reasoning tokens; row 1 never stops; row 2 (shorter, so
        # left-padded) stops right after its prompt, before copying anything; row 3 after all of it
        logits[0, T - n_r + stop_after - 1, eos] = 5.0
        logits[2, T - n_short - 1, eos] = 5.0
        logits[3, T - 1, eos] = 5.0
        return SimpleNamespace(logits=logits[:, -logits_to_keep:])

    monkeypatch.setattr(ext, "_model", fake_forward)
    ext._model.generation_config = None  # fake model: eos ids come from the tokenizer
    got = ext.valid_lengths(["p"] * 4, [TRACE, TRACE, short, TRACE], ["57", "57", "15", "57"])
    assert got == [len("17+5=22\n22*3=66\n66-9=57\n"), None, None, len(TRACE)]


def test_llm_extractor_lcr1_prompt_is_their_pieces_tokenized_one_by_one(tiny_extractor_dir):
    """prompt: lcr1 sends LC-R1's own prompt: its four parts around problem, thinking and answer, each
    piece tokenized on its own (as their get_prefix does), with no chat template on top."""
    from trainers.extractors import LCR1_PROMPT_PARTS

    with pytest.raises(LRTError, match="set mode: teacher_forced"):
        build_extractor({"type": "llm", "model": "x", "prompt": "lcr1"})
    with pytest.raises(LRTError, match="prompt must be one of default, lcr1"):
        build_extractor({"type": "llm", "model": "x", "prompt": "mine"})
    ext = build_extractor({"type": "llm", "model": str(tiny_extractor_dir), "device": "cpu", "dtype": "float32",
                           "mode": "teacher_forced", "prompt": "lcr1"})
    ext._load()
    enc = lambda s: ext._tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    a, b, c, d = LCR1_PROMPT_PARTS
    assert a.startswith("<|im_start|>system\nYou are Qwen") and d.endswith("<|im_start|>assistant\n")
    want = enc(a) + enc("Compute 12+3.") + enc(b) + enc("12+3=15\n") + enc(c) + enc("15") + enc(d)
    assert ext._prompt_ids("Compute 12+3.", "12+3=15\n", "15") == want
    got = ext.valid_lengths(["Compute 12+3."], ["12+3=15\n"], ["15"])  # the whole path runs
    assert got[0] is None or 0 < got[0] <= len("12+3=15\n")
