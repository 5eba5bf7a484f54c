"""The redundancy analysis: seeded deletions, step splitting, generate_from_text, one run on the tiny world."""

import argparse
import json
import math
import random
from pathlib import Path

import pytest
from conftest import make_base

from lrt_bench.core.generation import DecodeConfig, LatentLM
from lrt_bench.errors import LRTError
from lrt_bench.tools import redundancy, redundancy_deletion, redundancy_inputs, redundancy_report
from lrt_bench.tools.redundancy_deletion import delete_steps, delete_tokens, split_steps

# ------------------------------------------------------------------------------------- deletions


def test_delete_tokens_rate_is_p():
    ids = list(range(10_000))
    kept = delete_tokens(ids, 0.3, random.Random(0))
    # binomial sd of the kept fraction is sqrt(0.3 * 0.7 / 10_000) = 0.0046: allow ~3 sd
    assert abs(len(kept) / len(ids) - 0.7) < 0.014
    assert kept == sorted(kept) and set(kept) <= set(ids)  # order kept, nothing invented


def test_delete_tokens_exact_small_case():
    assert delete_tokens(list(range(10)), 0.5, random.Random(1234)) == [0, 3, 4, 5, 6, 8]
    # pure: the same seed gives the same output, and the input is untouched
    ids = [5, 6, 7, 8, 9, 10]
    a = delete_tokens(ids, 0.4, random.Random(3))
    assert a == delete_tokens(ids, 0.4, random.Random(3)) and ids == [5, 6, 7, 8, 9, 10]


def test_deletions_nest_across_p():
    ids = list(range(2_000))
    kept = {p: set(delete_tokens(ids, p, redundancy_deletion.deletion_rng(0, 7, "token"))) for p in (0.1, 0.3, 0.5)}
    assert kept[0.5] <= kept[0.3] <= kept[0.1]


def test_p_zero_keeps_everything():
    ids = list(range(500))
    assert delete_tokens(ids, 0.0, random.Random(0)) == ids
    text = "17+5=22\n22*3=66\nAnswer: 66"
    assert delete_steps(text, 0.0, random.Random(0)) == text


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), "x"])
def test_bad_p(p):
    with pytest.raises(LRTError, match="p="):
        delete_tokens([1, 2, 3], p, random.Random(0))
    with pytest.raises(LRTError, match="p="):
        delete_steps("a. b.", p, random.Random(0))


def test_parse_ps_and_granularities():
    assert redundancy_deletion.parse_ps("0.3,0, 0.1,0.3") == [0.0, 0.1, 0.3]
    with pytest.raises(LRTError, match=r"outside \[0, 1\)"):
        redundancy_deletion.parse_ps("0,1")
    assert redundancy_deletion.parse_granularities("step,token") == ["token", "step"]
    with pytest.raises(LRTError, match="granularity"):
        redundancy_deletion.parse_granularities("word")


def test_split_steps_on_hand_written_reasoning():
    text = "Let me compute 17+5. That is 22.\nThen 22*3=66!\n\nSo the answer is 3.14? Yes"
    assert split_steps(text) == [
        "Let me compute 17+5. ", "That is 22.\n", "Then 22*3=66!\n\n", "So the answer is 3.14? ", "Yes",
    ]
    assert split_steps("17+5=22\n22*3=66\nAnswer: 66") == ["17+5=22\n", "22*3=66\n", "Answer: 66"]
    assert split_steps("\nWait. Hmm\n") == ["\nWait. ", "Hmm\n"]  # leading whitespace joins the next step
    assert split_steps("") == []
    for t in (text, "a.b. c", "e.g., x = 1.5 and y.\n\n\nz", "  lead", "x\n\n"):
        assert "".join(split_steps(t)) == t


def test_delete_steps_seeded():
    text = "Let me compute 17+5. That is 22.\nThen 22*3=66!\n\nSo the answer is 3.14? Yes"
    assert delete_steps(text, 0.5, random.Random(7)) == "Then 22*3=66!\n\nYes"
    many = "".join(f"Step {i} is done.\n" for i in range(10_000))
    kept = delete_steps(many, 0.3, random.Random(1))
    assert abs(kept.count("\n") / 10_000 - 0.7) < 0.014


def test_paper_curve_from_reference_shape():
    data = {"source": "x", "figure2_redundancy_r1_distill_7b_math500": {
        "full_trajectory": {"accuracy": 92.8, "mean_tokens": 3529}, "deletion_p": [0.1, 0.5],
        "token_level": [92.24, 90.6], "step_level": [91.85, 89.48]}}
    ref = redundancy_report.paper_curve(data)
    assert ref["p"] == [0.0, 0.1, 0.5] and ref["mean_full_tokens"] == 3529
    assert ref["token"] == pytest.approx([0.928, 0.9224, 0.906]) and ref["step"][-1] == pytest.approx(0.8948)
    assert redundancy_report.paper_curve({"rows": []}) is None
    shared = Path(__file__).resolve().parents[2] / "shared" / "paper" / "reference_results.json"
    if shared.is_file():  # the project's own copy has the same shape
        assert len(redundancy_report.paper_curve(json.loads(shared.read_text()))["p"]) == 6


# ------------------------------------------------------------------------------ generate_from_text

PROMPTS = ["Compute 3+4.", "Compute ((17+25)*3)-19.", "Hi", "Compute (((2+2)*2)-1)+5."]


def test_generate_from_text_equals_nothink(tokenizer):
    lm = LatentLM(make_base(tokenizer), tokenizer)
    cfg = DecodeConfig(mode="nothink", max_gen_toks=10)
    ref = lm.generate(PROMPTS, cfg)
    texts = lm.prefix_texts(PROMPTS, "nothink")
    got = lm.generate_from_text(texts, cfg)
    assert len({g.account.prompt_tokens for g in got}) > 1  # left padding is exercised
    assert [g.token_ids for g in got] == [g.token_ids for g in ref]
    assert [g.text for g in got] == [g.text for g in ref]
    assert [g.account.answer_tokens for g in got] == [g.account.answer_tokens for g in ref]
    # token ids work as prefixes too, and the mode of the config does not matter: it is answer-only
    ids = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    think = DecodeConfig(mode="think", max_gen_toks=10, answer_allowance=3)
    again = lm.generate_from_text(ids, think)
    assert [g.token_ids for g in again] == [g.token_ids for g in ref]
    assert all(g.account.reasoning_tokens == 0 for g in again)
    with pytest.raises(LRTError, match="empty"):
        lm.generate_from_text(["x", []], cfg)


# ------------------------------------------------------------------------------- on the tiny world


def _args(**kw):
    parser = argparse.ArgumentParser()
    redundancy.add_parser(parser.add_subparsers())
    argv = ["redundancy"]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return parser.parse_args(argv)


@pytest.mark.slow
def test_end_to_end_on_the_tiny_world(tiny_world, tmp_path, monkeypatch):
    monkeypatch.setenv("LRT_TINY_DIR", str(tiny_world))
    out = tmp_path / "red"
    args = _args(model=tiny_world / "base", task="lrt_tiny", limit=4, p="0,0.3", granularity="token,step",
                 out=out, batch_size=3)
    assert args.func is redundancy.run
    assert redundancy.run(args) == 0
    res = json.loads((out / "redundancy.json").read_text())
    assert (out / "redundancy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert res["n_problems"] == 4 and res["p"] == [0.0, 0.3] and res["granularities"] == ["token", "step"]
    assert res["metric"] == "pass@1"
    rows = {(r["granularity"], r["p"]): r for r in res["results"]}
    assert len(rows) == 4
    for r in rows.values():
        assert r["n"] == 4 and 0.0 <= r["accuracy"] <= 1.0
        assert 0 <= r["mean_kept_tokens"] <= r["mean_full_tokens"]
    for gran in ("token", "step"):
        assert rows[(gran, 0.0)]["mean_kept_tokens"] == rows[(gran, 0.0)]["mean_full_tokens"] > 0
        assert rows[(gran, 0.3)]["mean_kept_tokens"] < rows[(gran, 0.0)]["mean_kept_tokens"]
    assert rows[("token", 0.0)]["mean_full_tokens"] == pytest.approx(res["think"]["mean_reasoning_tokens"])
    assert 0.0 <= res["think"]["accuracy"] <= 1.0 and res["think"]["cut_at_budget"] == 0
    lines = (out / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 4 + 4 * 2 * 2
    # the numbers of the table are the ones in the JSON
    from rich.console import Console

    con = Console(record=True, width=200)
    con.print(redundancy_report.render_table(res))
    assert f"{100 * rows[('step', 0.3)]['accuracy']:.1f}%" in con.export_text()


def test_loaded_model_without_output_writes_nothing(tiny_world, tmp_path, monkeypatch):
    """The demo's path: an already loaded LatentLM, results returned, no files."""
    monkeypatch.setenv("LRT_TINY_DIR", str(tiny_world))
    monkeypatch.chdir(tmp_path)
    lm = redundancy_inputs.load_model(str(tiny_world))  # a tiny world directory stands for its base
    res = redundancy.run_redundancy(lm, task="lrt_tiny", ps=[0.0], granularities=["step"], limit=2,
                                    progress=False)
    assert [r["p"] for r in res["results"]] == [0.0] and "files" not in res
    assert list(tmp_path.iterdir()) == []
    # p = 0 answers from the intact trajectory: same closing tokens as the model's own, so the
    # trained base answers as it did in think mode
    assert res["results"][0]["accuracy"] == pytest.approx(res["think"]["accuracy"])


def test_paper_curve_in_table_and_plot():
    res = {
        "task": "t", "model": "m", "n_problems": 1, "metric": "pass@1", "p": [0.0, 0.1],
        "granularities": ["token"], "answer_toks": 8, "paper_note": "note",
        "think": {"max_gen_toks": 8, "mean_reasoning_tokens": 4.0, "cut_at_budget": 0, "accuracy": 1.0},
        "results": [{"granularity": "token", "p": 0.0, "accuracy": 1.0, "mean_kept_tokens": 4.0},
                    {"granularity": "token", "p": 0.1, "accuracy": 0.5, "mean_kept_tokens": 3.0}],
        "paper": {"p": [0.0, 0.1, 0.2], "token": [0.928, 0.9224, 0.9228], "step": [0.928, 0.9185, 0.9145],
                  "mean_full_tokens": 3529},
    }
    from rich.console import Console

    con = Console(record=True, width=200)
    con.print(redundancy_report.render_table(res))
    text = con.export_text()
    assert "paper token" in text and "92.2%" in text and "50.0%" in text
    assert redundancy_report.render_plot(res)[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------------------- errors


@pytest.mark.slow
def test_non_generative_task_is_refused(tiny_world, tmp_path):
    out = tmp_path / "red"
    with pytest.raises(LRTError, match="arc_easy has output_type multiple_choice, not generate_until") as e:
        redundancy.run_redundancy(model=str(tiny_world), task="arc_easy", out=out, progress=False)
    assert "\n" not in str(e.value)
    assert not out.exists()


@pytest.mark.slow
def test_bad_inputs_write_nothing(tiny_world, tmp_path):
    out = tmp_path / "red"
    with pytest.raises(LRTError, match="does not exist"):
        redundancy.run_redundancy(model=str(tmp_path / "no-such-model"), task="lrt_tiny", out=out)
    with pytest.raises(LRTError, match=r"outside \[0, 1\)"):
        redundancy.run_redundancy(model=str(tiny_world), task="lrt_tiny", ps="0,0.5,1", out=out)
    with pytest.raises(LRTError, match="unknown task"):
        redundancy.run_redundancy(model=str(tiny_world), task="lrt_tinyy", out=out)
    assert not out.exists()


def test_check_p_message_is_one_line():
    with pytest.raises(LRTError) as e:
        redundancy_deletion.check_p(2)
    assert "\n" not in str(e.value) and not math.isnan(redundancy_deletion.check_p(0.25))

