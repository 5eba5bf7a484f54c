"""Tests of the tiny world: tokenizer, chat template, task generator, grader, quick build."""

from __future__ import annotations

import json
import statistics
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3Config

from lrt_bench.errors import LRTError
from lrt_bench.eval.grading import grade_math, last_boxed
from lrt_bench.io import read_jsonl
from lrt_bench.tiny.build import NOTHINK_PREFILL, build_tiny_world, code_version, recipe_for
from lrt_bench.tiny.task import Ranges, assistant_target, make_problems
from lrt_bench.tiny.tokenizer import build_tokenizer

FORCED_CLOSE = (
    "\n\nConsidering the limited time by the user, I have to give the solution based on the "
    "thinking directly now.\n</think>\n\n"
)
MESSAGES = [{"role": "user", "content": "Compute (17+25)*3."}]


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


# --- tokenizer ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "17+25=42\n42*3=126\nAnswer: 126\n</think>\n\n\\boxed{126}",
        "Okay, I think I have finished thinking.\n</think>\n\n",
        FORCED_CLOSE,
        "  two  spaces,\ttab, unicode é 漢字 and \\boxed{\\frac{1}{2}}",
    ],
)
def test_round_trip(tok, text):
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_digits_are_single_tokens(tok):
    ids = tok("1234567890", add_special_tokens=False)["input_ids"]
    assert [tok.decode([i]) for i in ids] == list("1234567890")


def test_special_and_think_tokens(tok):
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    text = "<|im_start|>assistant\n<think>\nx\n</think>\n\n\\boxed{1}<|im_end|>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    think_ids = tok.convert_tokens_to_ids(["<think>", "</think>"])
    assert all(i in ids for i in think_ids)
    assert len(tok("<think></think>", add_special_tokens=False)["input_ids"]) == 2
    # Like Qwen3: the think tags are not special, the chat markers are.
    assert tok.decode(ids, skip_special_tokens=True) == "assistant\n<think>\nx\n</think>\n\n\\boxed{1}"


def test_chat_template_modes(tok):
    think = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert think == "<|im_start|>user\nCompute (17+25)*3.<|im_end|>\n<|im_start|>assistant\n"
    empty = tok.apply_chat_template(
        MESSAGES, tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    assert empty == think + "<think>\n\n</think>\n\n"
    full = tok.apply_chat_template(MESSAGES + [{"role": "assistant", "content": "hi"}], tokenize=False)
    assert full.endswith("<|im_start|>assistant\nhi<|im_end|>\n")


def test_saved_tokenizer_loads_with_auto(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = "<|im_start|>user\nhi<|im_end|>\n<think>\n1+2=3\n</think>\n\n\\boxed{3}"
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again.apply_chat_template(
        MESSAGES, tokenize=False, add_generation_prompt=True, enable_thinking=False
    ).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


# --- task and grading --------------------------------------------------------------------------


def test_problems_deterministic_and_well_formed():
    a = make_problems(300, seed=7)
    assert a == make_problems(300, seed=7)
    assert a != make_problems(300, seed=8)
    assert len({r["problem"] for r in a}) == 300
    assert {r["steps"] for r in a} == {1, 2, 3, 4}
    for r in a:
        assert set(r) == {"id", "problem", "answer", "steps", "reasoning", "facts"}
        lines = r["reasoning"].splitlines()
        assert len(lines) == r["steps"] + 1 and r["reasoning"].endswith("\n")
        assert lines[-1] == f"Answer: {r['answer']}"
        # Each line is a true equation whose result feeds the next line.
        value = None
        for line in lines[:-1]:
            lhs, rhs = line.split("=")
            assert eval(lhs) == int(rhs) and 0 <= int(rhs) <= 999  # noqa: S307 - our own digits
            assert value is None or lhs.startswith(str(value))
            value = int(rhs)
        assert str(value) == r["answer"]
        # The problem's expression computes the answer (left-to-right, parenthesised).
        assert eval(r["problem"].removeprefix("Compute ").removesuffix(".")) == int(r["answer"])  # noqa: S307


def _check_slow_trace(r: dict) -> None:
    """Every line of a slow trace is true: equations, inverse checks, restated values, the answer."""
    lines = r["reasoning"].splitlines()
    assert r["reasoning"].endswith("\n")
    if lines[-1].startswith("Answer:"):  # the closing line is optional (TraceStyle.answer)
        assert lines.pop() == f"Answer: {r['answer']}"
    facts = [tuple(f) for f in r["facts"]]
    values = {c for _, _, _, c in facts}
    for line in lines:
        word, _, rest = line.rpartition(" ")
        if word in ("so", "so answer"):
            assert int(rest) in values, line
            continue
        lhs, rhs = (line.removeprefix("check ").removeprefix("again ")).split("=")
        assert eval(lhs.replace("/", "//")) == int(rhs), line  # noqa: S307 - our own digits
    cores = [ln for ln in lines if "=" in ln and not ln.startswith(("check", "again"))]
    assert cores == [f"{a}{op}{b}={c}" for a, op, b, c in facts]


def test_slow_traces_are_true_redundant_and_vary():
    from lrt_bench.tiny.task import SLOW
    from lrt_bench.tiny.tokenizer import build_tokenizer

    tok = build_tokenizer()
    rows = make_problems(400, seed=5, style=SLOW)
    for r in rows:
        _check_slow_trace(r)
    lengths = [len(tok.encode(r["reasoning"], add_special_tokens=False)) for r in rows]
    assert statistics.fmean(lengths) >= 60
    # one problem, many draws: the length varies a lot, the facts never change
    import random

    from lrt_bench.tiny.task import write_trace

    facts = [tuple(f) for f in rows[0]["facts"]]
    draws = [write_trace(facts, random.Random(k), SLOW) for k in range(40)]
    for d in draws:
        _check_slow_trace({**rows[0], "reasoning": d})
    n = [len(tok.encode(d, add_special_tokens=False)) for d in draws]
    assert min(n) < 0.8 * statistics.fmean(n) and len(set(n)) >= 4
    # the closing "Answer:" line is drawn too, so the base learns to read the answer off any line
    closed = [d.endswith(f"Answer: {rows[0]['answer']}\n") for d in draws]
    assert 0 < sum(closed) < len(draws)


def test_answer_line_probability():
    from dataclasses import replace

    from lrt_bench.tiny.task import DENSE, SLOW

    for p, expect in ((0.0, False), (1.0, True)):
        for r in make_problems(50, seed=2, style=replace(SLOW, answer=p)):
            assert r["reasoning"].endswith(f"Answer: {r['answer']}\n") is expect
    assert all(r["reasoning"].endswith(f"Answer: {r['answer']}\n") for r in make_problems(50, seed=2, style=DENSE))


def test_no_problem_states_its_answer_before_deriving_it():
    """A problem whose answer is an earlier value ("((95+4)-2)+2": 99 twice) is never drawn: a
    reader of its trace (LC-R1's extractor) would find the answer before it is reached."""
    from trainers.extractors import RuleExtractor

    rows = make_problems(2000, seed=4, distinct=False)
    for r in rows:
        assert r["answer"] not in {str(a) for a, _, _, _ in r["facts"]}, r
        last = f"{r['facts'][-1][0]}{r['facts'][-1][1]}{r['facts'][-1][2]}={r['answer']}\n"
        # the first line that states the answer is the last step's computing line
        assert RuleExtractor().valid_length("", r["reasoning"], r["answer"]) == r["reasoning"].index(last) + len(last)


def test_steps_mix_and_exclude():
    rows = make_problems(50, seed=1, steps_mix={2: 1.0})
    assert {r["steps"] for r in rows} == {2}
    other = make_problems(200, seed=1, steps_mix={2: 1.0}, exclude={r["problem"] for r in rows})
    assert not {r["problem"] for r in rows} & {r["problem"] for r in other}
    with pytest.raises(ValueError, match="steps_mix"):
        make_problems(5, seed=0, steps_mix={0: 1.0})
    # There are too few one-step problems for a large distinct draw; repetition is opt-in.
    with pytest.raises(ValueError, match="distinct"):
        make_problems(3000, seed=0, steps_mix={1: 1.0})
    assert len(make_problems(3000, seed=0, steps_mix={1: 1.0}, distinct=False)) == 3000


def test_ranges_bound_every_value():
    small = Ranges(max_value=29, first_value=(10, 29))
    for r in make_problems(300, seed=3, ranges=small, distinct=False):
        values = [int(x) for line in r["reasoning"].splitlines()[:-1] for x in line.split("=")[1:]]
        assert all(0 <= v <= 29 for v in values), r
    with pytest.raises(ValueError, match="Ranges"):
        Ranges(max_value=20, first_value=(10, 50))


def test_assistant_target():
    row = {"reasoning": "1+2=3\nAnswer: 3\n", "answer": "3"}
    assert assistant_target(row) == "<think>\n1+2=3\nAnswer: 3\n</think>\n\n\\boxed{3}<|im_end|>"
    assert assistant_target(row, thinking=False) == "<think>\n\n</think>\n\n\\boxed{3}<|im_end|>"


@pytest.mark.parametrize(
    "text,answer,ok",
    [
        ("1+2=3\n</think>\n\n\\boxed{3}", "3", True),
        (assistant_target({"reasoning": "12+5=17\nAnswer: 17\n", "answer": "17"}), "17", True),  # a target
        (assistant_target({"reasoning": "12+5=17\nAnswer: 17\n", "answer": "17"}), "18", False),
        ("\\boxed{ 042 }", "42", True),
        ("\\boxed{4}</think>\\boxed{5}", "4", False),  # only after the last </think>
        ("\\boxed{4} then \\boxed{5}", "5", True),  # last boxed wins
        ("\\boxed{5", "5", False),  # a box that never closes is no answer
        ("\\boxed{five}", "5", False),
        # the tiny world's old grader disagreed with grade_math on these; grade_math's rules hold
        ("The answer is 5", "5", True),  # an anchored answer counts without a box
        ("\\boxed{5.0}", "5", True),  # the same number
        ("\\boxed{1,0}", "10", False),  # a pair, not ten
    ],
)
def test_grade(text, answer, ok):
    """The tiny world is graded by grade_math: its targets are right, its edge cases follow grade_math."""
    assert grade_math(text, answer) is ok


def test_last_boxed_nested():
    assert last_boxed("a \\boxed{\\frac{1}{2}} b") == "\\frac{1}{2}"


# --- quick build -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_world(tiny_world):
    """The session's quick world (conftest builds it once: seed 0, quick)."""
    return tiny_world, json.loads((tiny_world / "world.json").read_text()), None


def test_quick_world_layout(quick_world):
    out, world, _ = quick_world
    assert json.loads((out / "world.json").read_text()) == world
    for key in ("seed", "quick", "code_version", "n_params", "train_seconds", "accuracy",
                "mean_trace_tokens", "median_trace_tokens"):
        assert key in world, key
    assert set(world["accuracy"]) == {"think", "nothink_prefill", "nothink_empty"}
    assert world["quick"] is True and world["seed"] == 0
    assert world["code_version"] == code_version(recipe_for(True))
    # the CPU it was trained on: another instruction set trains other weights (lrt_bench/tiny/README.md)
    assert world["cpu"]["torch_capability"] == torch.backends.cpu.get_cpu_capability() and world["cpu"]["model"]
    assert len(read_jsonl(out / "data" / "eval.jsonl")) == recipe_for(True).n_eval
    train = read_jsonl(out / "data" / "train.jsonl")
    evals = read_jsonl(out / "data" / "eval.jsonl")
    assert len(train) == recipe_for(True).n_train
    # Multi-step eval problems are held out; one-step ones are facts the base should know.
    assert not {r["problem"] for r in train} & {r["problem"] for r in evals if r["steps"] > 1}
    assert len({r["problem"] for r in evals}) == len(evals)
    assert not list(out.parent.glob(".world.*")), "temp dirs left behind"


def test_quick_world_loads_and_generates(quick_world):
    out, world, _ = quick_world
    model = AutoModelForCausalLM.from_pretrained(out / "base")
    tok = AutoTokenizer.from_pretrained(out / "base")
    assert type(model).__name__ == "Qwen3ForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == world["n_params"]
    assert model.generation_config.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert model.generation_config.pad_token_id == tok.pad_token_id
    prompt = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True) + NOTHINK_PREFILL
    enc = tok(prompt, return_tensors="pt")
    gen = model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert gen.shape[1] > enc["input_ids"].shape[1]
    # The backbone config shares the base's layer shapes, so base layers can initialise it.
    backbone = Qwen3Config.from_pretrained(out / "backbone")
    for key in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
                "head_dim"):
        assert getattr(backbone, key) == getattr(model.config, key), key


def test_quick_world_learned_to_reason(quick_world):
    _, world, _ = quick_world
    acc = world["accuracy"]
    assert acc["think"] > acc["nothink_prefill"] and acc["think"] > acc["nothink_empty"]
    assert world["median_trace_tokens"] > 5


def test_quick_world_cache(quick_world):
    out, world, _ = quick_world
    mtime = (out / "world.json").stat().st_mtime_ns
    start = time.perf_counter()
    again = build_tiny_world(out, quick=True, seed=0, progress=False)
    assert again == world
    assert time.perf_counter() - start < 5
    assert (out / "world.json").stat().st_mtime_ns == mtime


def test_world_built_with_other_cpu_kernels_is_rebuilt(quick_world, tmp_path, monkeypatch, capsys):
    """A cached world is reused only if torch's CPU kernels then were this process's (they set the weights);
    one recorded before the kernels were (no "cpu") is reused as before."""
    import shutil

    from lrt_bench.tiny import build

    out, world, _ = quick_world
    copy = tmp_path / "world"
    shutil.copytree(out, copy)

    def rebuilt(*args, **kwargs):
        raise RuntimeError("rebuilt")

    monkeypatch.setattr(build, "_build", rebuilt)
    meta = dict(world)
    for cpu, reused in ((world["cpu"], True), (None, True), ({**world["cpu"], "torch_capability": "OTHER"}, False)):
        if cpu is None:
            meta.pop("cpu", None)
        else:
            meta["cpu"] = cpu
        (copy / "world.json").write_text(json.dumps(meta))
        if reused:
            assert build_tiny_world(copy, quick=True, seed=0, progress=False) == meta
        else:
            with pytest.raises(RuntimeError, match="rebuilt"):
                build_tiny_world(copy, quick=True, seed=0, progress=False)
            assert "built with torch's OTHER CPU kernels" in capsys.readouterr().err
            assert json.loads((copy / "world.json").read_text()) == meta  # a failed rebuild keeps the old world


def test_refuses_foreign_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("not a world")
    with pytest.raises(LRTError, match="is not a tiny world"):
        build_tiny_world(tmp_path, quick=True, progress=False)
    assert (tmp_path / "keep.txt").exists()



def test_refuses_bad_thread_count(tmp_path):
    for bad in (0, -1, True, 1.5):
        with pytest.raises(LRTError, match="threads must be a positive integer"):
            build_tiny_world(tmp_path / "w", quick=True, progress=False, threads=bad)
    assert not list(tmp_path.iterdir())


def test_training_rows_of_each_kind():
    """Thinking rows supervise trace + answer; non-thinking rows the answer after a given block;
    fragment rows the answer after a given damaged trace closed as the redundancy analysis closes it."""
    import random

    from lrt_bench.core import layout
    from lrt_bench.tiny.build import RowKind, chat_prompt, encode_training_rows
    from lrt_bench.tiny.tokenizer import build_tokenizer

    tok = build_tokenizer()
    row = make_problems(1, seed=3, steps_mix={3: 1.0})[0]
    kinds = [RowKind(), RowKind(filler=""), RowKind(fragment_p=0.5), RowKind(fragment_p=0.5, fragment_lines=True),
             RowKind(recap=True)]
    enc = encode_training_rows(tok, [row] * len(kinds), kinds, random.Random(0))
    text = [(tok.decode(ids[:start]), tok.decode(ids[start:])) for ids, start in enc]
    prompt = chat_prompt(tok, row["problem"])
    box = f"\\boxed{{{row['answer']}}}<|im_end|>"
    assert text[0] == (prompt + "<think>\n", row["reasoning"] + "</think>\n\n" + box)
    assert text[1] == (prompt + "<think>\n\n</think>\n\n", box)
    for given, supervised in text[2:4]:
        assert given.startswith(prompt + "<think>\n") and given.endswith(layout.LATENT_SUFFIX)
        assert len(given) < len(prompt + "<think>\n" + row["reasoning"] + layout.LATENT_SUFFIX)
        assert supervised == box
    assert text[4][1] == row["reasoning"] + f"</think>\n\nThe answer is {row['answer']}.\n\n" + box


def test_batched_encoding_is_the_per_row_encoding():
    """encode_training_rows encodes every text in one batched call: the ids, the supervised spans and the
    fragments' rng draws are those of encoding each piece of each row on its own, in row order."""
    import random

    from lrt_bench.core import layout
    from lrt_bench.tiny.build import THINK_PREFIX, chat_prompt, draw_kinds, encode_training_rows, nothink_prefix
    from lrt_bench.tiny.task import answer_text

    tok = build_tokenizer()
    enc = lambda t: tok.encode(t, add_special_tokens=False)  # noqa: E731
    recipe = recipe_for(False)
    rows = make_problems(600, seed=7, steps_mix=dict(recipe.train_steps_mix), distinct=False, style=recipe.style)
    kinds = draw_kinds(rows, recipe, random.Random(1))
    assert {(k.filler is not None, k.fragment_p > 0, k.fragment_lines) for k in kinds} == {
        (True, False, False), (False, True, False), (False, True, True), (False, False, False)}
    rng = random.Random(2)
    expected = []
    for row, kind in zip(rows, kinds):
        prompt, answer = enc(chat_prompt(tok, row["problem"])), enc(answer_text(row, kind.recap) + "<|im_end|>")
        if kind.filler is not None:
            given = prompt + enc(nothink_prefix(kind.filler))
            expected.append((given + answer, len(given)))
        elif kind.fragment_lines:
            kept = [ln for ln in row["reasoning"].splitlines(keepends=True) if rng.random() >= kind.fragment_p]
            given = prompt + enc(THINK_PREFIX) + enc("".join(kept)) + enc(layout.LATENT_SUFFIX)
            expected.append((given + answer, len(given)))
        elif kind.fragment_p > 0:
            kept = [t for t in enc(row["reasoning"]) if rng.random() >= kind.fragment_p]
            given = prompt + enc(THINK_PREFIX) + kept + enc(layout.LATENT_SUFFIX)
            expected.append((given + answer, len(given)))
        else:
            given = prompt + enc(THINK_PREFIX)
            expected.append((given + enc(row["reasoning"] + "</think>\n\n") + answer, len(given)))
    assert encode_training_rows(tok, rows, kinds, random.Random(2)) == expected


def test_full_world_sft_data_is_the_sft_curriculum():
    """The full world samples D only on the step counts the tiny SFT recipe trains on (the rest would be
    sampled and then filtered away), and the quick world's D covers every step count it trains on."""
    import yaml

    from lrt_bench.tools.demo import recipes_dir

    recipe = yaml.safe_load((recipes_dir() / "sft.yaml").read_text())
    full, quick = recipe_for(False), recipe_for(True)
    assert {s for s, w in full.sft_steps_mix if w > 0} == set(recipe["dataset_where"]["steps"])
    assert {s for s, _ in quick.sft_steps_mix} == {s for s, _ in quick.train_steps_mix}


def test_fragment_warm_phase_comes_first():
    """Rows of the warm phase draw fragments at fragment_warm_fraction and are trained before the rest."""
    import dataclasses
    import random

    import torch

    from lrt_bench.tiny.build import draw_kinds, make_batches

    recipe = dataclasses.replace(recipe_for(False), fragment_warm_steps=50, fragment_warm_fraction=0.0,
                                 fragment_fraction=1.0, nothink_fraction=0.0, batch_size=4)
    rows = make_problems(400, seed=5, steps_mix={2: 1.0}, distinct=False)
    kinds = draw_kinds(rows, recipe, random.Random(0))
    warm = 50 * 4
    assert not any(k.fragment_p for k in kinds[:warm]) and all(k.fragment_p for k in kinds[warm:])
    # one token per row (its index) so each batch shows which rows it holds
    encoded = [([i], 0) for i in range(len(rows))]
    batches = make_batches(encoded, 4, pad_id=-1, rng=random.Random(0), phase_rows=warm)
    seen = [int(t) for ids, _ in batches for t in ids.flatten() if t >= 0]
    assert sorted(seen[:warm]) == list(range(warm)) and sorted(seen[warm:]) == list(range(warm, len(rows)))
    assert seen[:warm] != list(range(warm))  # shuffled inside the phase
    flat = make_batches(encoded, 4, pad_id=-1, rng=random.Random(0))
    assert sorted(int(t) for ids, _ in flat for t in ids.flatten()) == list(range(len(rows)))
    assert isinstance(batches[0][0], torch.Tensor)


def test_a_base_that_did_not_learn_is_refused(tmp_path, monkeypatch):
    """A full build whose base stays below MIN_THINK_ACCURACY raises and caches nothing."""
    from lrt_bench.tiny import build

    def stuck(tmp, recipe, quick, seed, progress):
        (tmp / "data").mkdir()
        return {"accuracy": {"think": 0.25}, "final_loss": 0.133}

    monkeypatch.setattr(build, "_build", stuck)
    out = tmp_path / "world"
    with pytest.raises(LRTError, match=r"seed 3: 25.0% .*below 50%.*--seed"):
        build_tiny_world(out, quick=False, seed=3, progress=False)
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_same_seed_same_world(tiny_world, tmp_path):
    """The build is deterministic on a machine and does not depend on its thread count: the quick world
    (built by conftest at the default TRAIN_THREADS) built again at one thread has the same bytes."""
    import hashlib

    from lrt_bench.tiny.build import TRAIN_THREADS

    again = tmp_path / "again"
    world = build_tiny_world(again, quick=True, seed=0, progress=False, threads=1)
    assert world["torch_threads"] == 1 and json.loads((tiny_world / "world.json").read_text())["torch_threads"] == TRAIN_THREADS
    for rel in ("base/model.safetensors", "data/train.jsonl", "data/eval.jsonl", "data/sft.jsonl"):
        a, b = (hashlib.sha256((w / rel).read_bytes()).hexdigest() for w in (tiny_world, again))
        assert a == b, rel
    meta = json.loads((again / "world.json").read_text())
    assert meta["code_version"] == code_version(recipe_for(True))
