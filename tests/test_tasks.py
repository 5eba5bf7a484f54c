"""lm-eval tasks and their data: YAMLs load, prompts, metrics, data errors, GPQA in memory (CPU, offline)."""

from __future__ import annotations

import builtins
import collections
import io
import json
import math
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import pytest

from lrt_bench.errors import LRTError
from lrt_bench.eval import data, task_utils
from lrt_bench.eval.response import ACCOUNT_FIELDS, Response

REPO = Path(__file__).resolve().parents[1]
TASKS_DIR = REPO / "tasks"
DATA_DIR = Path(os.environ.get("LRT_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
needs_data = pytest.mark.skipif(
    not (DATA_DIR / "math500" / "test.jsonl").is_file(),
    reason=f"offline benchmark copies not found at {DATA_DIR} (set LRT_DATA_DIR to the shared/data folder)",
)

BUDGETS = (None, 1024, 2048, 4096)
BASE_TASKS = {  # task -> number of docs in the offline copies (tiny: the fixture below)
    "lrt_math500": 500, "lrt_gsm8k": 1319, "lrt_amc23": 40, "lrt_amc83": 83, "lrt_lsat_ar": 230,
    "lrt_lsat_lr": 510, "lrt_lsat_rc": 269, "lrt_gpqa": 198, "lrt_tiny": 3,
}
CHOICE_TASKS = {"lrt_lsat_ar", "lrt_lsat_lr", "lrt_lsat_rc", "lrt_gpqa"}
SUITE = ["lrt_amc23", "lrt_math500", "lrt_gsm8k", "lrt_lsat_ar", "lrt_gpqa"]
LSAT = ["lrt_lsat_ar", "lrt_lsat_lr", "lrt_lsat_rc"]
METRICS = ["pass@1", "pass@4", "maj@4", *ACCOUNT_FIELDS]
# Variants with more samples per problem: task -> repeats (tasks/lrt_amc/lrt_amc23_r*.yaml).
REPEAT_VARIANTS = {"lrt_amc23_r16": 16, "lrt_amc23_r40": 40}
# lrt_tiny with the assistant turn opened by "<think>\n", for parity with --model hf (test_backend.py).
PARITY_TASK = "lrt_tiny_parity"

TINY_ROWS = [
    {"id": "eval-000000", "problem": "Compute 12+5.", "answer": "17", "steps": 1, "reasoning": "12+5=17\n"},
    {"id": "eval-000001", "problem": "Compute (10+2)*3.", "answer": "36", "steps": 2, "reasoning": "x\n"},
    {"id": "eval-000002", "problem": "Compute ((50-8)+1)-3.", "answer": "40", "steps": 3, "reasoning": "y\n"},
]


def _suffix(budget):
    return "" if budget is None else f"_b{budget}"


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def write_tiny(root: Path) -> Path:
    write_jsonl(root / "data" / "eval.jsonl", TINY_ROWS)
    return root


def snapshot(path: Path) -> set:
    return {p.relative_to(path) for p in path.rglob("*")}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """LRT_DATA_DIR -> the offline copies, LRT_TINY_DIR -> a 3-row tiny world fixture."""
    tiny = write_tiny(tmp_path_factory.mktemp("tiny"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(data.ENV_DATA_DIR, str(DATA_DIR))
        mp.setenv(data.ENV_TINY_DIR, str(tiny))
        yield


@pytest.fixture(scope="module")
def tm(env):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


# ------------------------------------------------------------------------------------------------
# Task YAMLs and groups through lm-eval
# ------------------------------------------------------------------------------------------------


def test_every_yaml_is_indexed(tm):
    """A YAML that lm-eval cannot parse is skipped silently by its index: every file must show up."""
    names = {n for n in tm.all_tasks if n.startswith("lrt_")}
    expected = {f"{t}{_suffix(b)}" for t in BASE_TASKS for b in BUDGETS}
    expected |= {f"{g}{_suffix(b)}" for g in ("lrt_suite", "lrt_lsat") for b in BUDGETS}
    expected |= set(REPEAT_VARIANTS) | {PARITY_TASK}
    assert names == expected
    yamls = [p for p in TASKS_DIR.rglob("*.yaml") if p.name != "_lrt_defaults.yaml"]
    assert len(yamls) == len(expected)
    assert set(tm.all_groups) == {f"{g}{_suffix(b)}" for g in ("lrt_suite", "lrt_lsat") for b in BUDGETS}


@needs_data
@pytest.mark.parametrize("budget", BUDGETS)
def test_every_task_loads_with_its_settings(tm, budget):
    for base, n_docs in BASE_TASKS.items():
        name = f"{base}{_suffix(budget)}"
        task = tm.load([name])["tasks"][name]
        cfg = task.config
        assert len(task.eval_docs) == n_docs, name
        assert cfg.output_type == "generate_until"
        assert cfg.repeats == 4
        # the whole dict is restated in each variant (include-merging is shallow)
        assert cfg.generation_kwargs == {"until": [], "max_gen_toks": budget or 512, "do_sample": True,
                                         "temperature": 0.6, "top_p": 0.95}, name
        # all samples are kept: one filter, take_first_k with k == repeats
        assert cfg.filter_list == [{"name": "none", "filter": [{"function": "take_first_k", "k": 4}]}]
        assert [f.name for f in task._filters] == ["none"]
        assert [m["metric"] for m in cfg.metric_list] == METRICS
        assert all(task.aggregation()[m].__name__ == "mean" for m in METRICS)
        hib = task.higher_is_better()
        assert [hib[m] for m in METRICS] == [True, True, True] + [False] * len(ACCOUNT_FIELDS)
        # the right grader and prompt for the benchmark's kind
        if base in CHOICE_TASKS:
            kind = (task_utils.process_choice, task_utils.choice_prompt)
        else:
            kind = (task_utils.process_math, task_utils.tiny_prompt if base == "lrt_tiny" else task_utils.math_prompt)
        assert (cfg.process_results, cfg.doc_to_text) == kind, name
        doc = task.eval_docs[0]
        assert isinstance(task.doc_to_text(doc), str) and task.doc_to_target(doc) == doc["answer"]


@needs_data
@pytest.mark.parametrize("name", sorted(REPEAT_VARIANTS))
def test_amc_repeat_variants_keep_every_sample(tm, name):
    """lrt_amc23 with n samples per problem: all n reach process_results, and pass@1 is their mean."""
    n = REPEAT_VARIANTS[name]
    task = tm.load([name])["tasks"][name]
    plain = tm.load(["lrt_amc23"])["tasks"]["lrt_amc23"]
    cfg = task.config
    assert cfg.repeats == n and len(task.eval_docs) == 40
    assert cfg.filter_list == [{"name": "none", "filter": [{"function": "take_first_k", "k": n}]}]
    # everything else is lrt_amc23's: prompt, budget, sampling, metrics
    assert cfg.generation_kwargs == plain.config.generation_kwargs
    assert [m["metric"] for m in cfg.metric_list] == METRICS
    doc = task.eval_docs[0]
    assert task.doc_to_text(doc) == plain.doc_to_text(doc)
    # 3 right of n: pass@1 = 3/n, a finer step than 1/4
    right, wrong = f"\\boxed{{{doc['answer']}}}", "\\boxed{-1}"
    got = task.process_results(doc, [[right] * 3 + [wrong] * (n - 3)])
    assert got["pass@1"] == pytest.approx(3 / n)
    assert got["pass@4"] == pytest.approx(1 - math.comb(n - 3, 4) / math.comb(n, 4))


@needs_data
@pytest.mark.parametrize("budget", BUDGETS)
def test_groups(tm, budget):
    sfx = _suffix(budget)
    for group, members in (("lrt_suite", SUITE), ("lrt_lsat", LSAT)):
        loaded = tm.load([f"{group}{sfx}"])
        assert loaded["group_map"] == {f"{group}{sfx}": [f"{m}{sfx}" for m in members]}
        assert set(loaded["tasks"]) == {f"{m}{sfx}" for m in members}
        agg = loaded["groups"][f"{group}{sfx}"].aggregate_metric_list
        assert [(a.metric, a.aggregation, a.weight_by_size, a.filter_list) for a in agg] == [
            ("pass@1", "mean", False, ["none"]), ("pass@4", "mean", False, ["none"])]
        for task in loaded["tasks"].values():
            assert task.config.generation_kwargs["max_gen_toks"] == (budget or 512)


@needs_data
def test_get_task_dict(tm):
    from lm_eval.tasks import get_task_dict

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        task_dict = get_task_dict(["lrt_suite", "lrt_tiny", "lrt_lsat_b1024"], tm)
    leaves = {}
    for key, value in task_dict.items():
        leaves.update(value if isinstance(value, dict) else {key: value})
    assert set(leaves) == {*SUITE, "lrt_tiny", *(f"{m}_b1024" for m in LSAT)}
    assert all(len(t.eval_docs) > 0 for t in leaves.values())


def test_task_folders_have_readmes():
    folders = sorted(p for p in TASKS_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    assert [f.name for f in folders] == ["lrt_amc", "lrt_gpqa", "lrt_gsm8k", "lrt_lsat", "lrt_math500",
                                         "lrt_suite", "lrt_tiny"]
    for folder in folders:
        readme = (folder / "README.md").read_text()
        assert "pass@1" in readme and "pass@4" in readme, folder.name
    for folder, hub in (("lrt_math500", "HuggingFaceH4/MATH-500"), ("lrt_gsm8k", "openai/gsm8k"),
                        ("lrt_amc", "math-ai/amc23"), ("lrt_amc", "AI-MO/aimo-validation-amc"),
                        ("lrt_lsat", "hails/agieval-lsat-ar"), ("lrt_gpqa", "Idavidrein/gpqa")):
        assert hub in (TASKS_DIR / folder / "README.md").read_text()


# ------------------------------------------------------------------------------------------------
# Prompts
# ------------------------------------------------------------------------------------------------


@needs_data
def test_prompts(tm):
    instruction = "\nPlease reason step by step, and put your final answer within \\boxed{}."
    tasks = tm.load(list(BASE_TASKS))["tasks"]
    for name in ("lrt_math500", "lrt_gsm8k", "lrt_amc23", "lrt_amc83"):
        doc = tasks[name].eval_docs[0]
        assert tasks[name].doc_to_text(doc) == doc["problem"] + instruction
    # the tiny world: the problem exactly as the tiny base was trained on it
    assert [tasks["lrt_tiny"].doc_to_text(d) for d in tasks["lrt_tiny"].eval_docs] == [
        r["problem"] for r in TINY_ROWS]
    lsat = tasks["lrt_lsat_ar"]
    doc = lsat.eval_docs[0]
    text = lsat.doc_to_text(doc)
    assert text.startswith(doc["passage"] + "\n\n" + doc["question"] + "\n\n(A) ")
    assert "\n(E) " + doc["options"][4] + "\n\n" in text
    assert text.endswith("put the letter of your final answer (A, B, C, D or E) within \\boxed{}.")
    gpqa = tasks["lrt_gpqa"]
    text = gpqa.doc_to_text(gpqa.eval_docs[0])
    assert "\n(D) " in text and "\n(E) " not in text
    assert text.endswith("(A, B, C or D) within \\boxed{}.")


def test_choice_prompt_without_passage():
    doc = {"passage": "", "question": "Q?", "options": ["x", "y"], "answer": "B"}
    assert task_utils.choice_prompt(doc) == (
        "Q?\n\n(A) x\n(B) y\n\nPlease reason step by step, and put the letter of your final answer "
        "(A or B) within \\boxed{}.")


# ------------------------------------------------------------------------------------------------
# process_results
# ------------------------------------------------------------------------------------------------

MATH_DOC = {"id": "m", "problem": "p", "answer": "18"}
CHOICE_DOC = {"id": "c", "passage": "", "question": "q", "options": ["a", "b", "c", "d", "e"], "answer": "B"}


def boxed(x):
    return f"So the answer is \\boxed{{{x}}}."


@pytest.mark.parametrize("responses, expected", [
    ([boxed(18)] * 4, (1.0, 1.0, 1.0)),
    ([boxed(17)] * 4, (0.0, 0.0, 0.0)),
    ([boxed(18), boxed(17), boxed(17), "no answer here"], (0.25, 1.0, 0.0)),  # 17 wins the vote
    ([boxed(17), boxed(18), boxed(18), boxed(16)], (0.5, 1.0, 1.0)),
    ([boxed(18), boxed(17), boxed(16), boxed(15)], (0.25, 1.0, 1.0)),  # all tie: first seen wins
    # the answer is taken after the last </think>
    (["<think>\\boxed{18}</think>\n\n" + boxed(17)] * 2 + ["<think>maybe 17</think>" + boxed(18)] * 2,
     (0.5, 1.0, 0.0)),
])
def test_process_math(responses, expected):
    m = task_utils.process_math(MATH_DOC, [responses])
    assert (m["pass@1"], m["pass@4"], m["maj@4"]) == expected
    assert set(m) == set(METRICS)


def test_process_math_latex_and_gold_key():
    doc = {"problem": "p", "answer": "\\frac{14}{3}", "gold": "4"}
    m = task_utils.process_math(doc, [[boxed("\\dfrac{14}{3}"), boxed("14/3"), boxed(4), boxed("4.7")]])
    assert (m["pass@1"], m["pass@4"], m["maj@4"]) == (0.5, 1.0, 1.0)  # 14/3 in two forms wins the vote
    m = task_utils.process_math(doc, [[boxed("\\dfrac{14}{3}"), boxed(4), boxed(4), boxed(5)]], gold_key="gold")
    assert (m["pass@1"], m["maj@4"]) == (0.5, 1.0)


def test_pass_at_k_is_the_unbiased_estimator():
    # n = 8 samples, c = 2 correct: pass@1 = 2/8; pass@4 = 1 - C(6,4)/C(8,4) = 1 - 15/70
    m = task_utils.process_math(MATH_DOC, [[boxed(18)] * 2 + [boxed(1)] * 6])
    assert m["pass@1"] == pytest.approx(0.25)
    assert m["pass@4"] == pytest.approx(1 - 15 / 70)
    assert m["maj@4"] == 0.0
    # lm-eval's default take_first filter hands over one bare response: pass@4 is undefined
    m = task_utils.process_math(MATH_DOC, [boxed(18)])
    assert m["pass@1"] == 1.0 and math.isnan(m["pass@4"]) and m["maj@4"] == 1.0


@pytest.mark.parametrize("responses, expected", [
    (["\\boxed{B}"] * 4, (1.0, 1.0, 1.0)),
    (["\\boxed{(B)}", "\\boxed{\\text{B}}", "The answer is (B).", "\\boxed{A}"], (0.75, 1.0, 1.0)),
    (["\\boxed{A}", "\\boxed{A}", "\\boxed{B}", "I cannot tell."], (0.25, 1.0, 0.0)),
    (["\\boxed{C}", "\\boxed{D}", "\\boxed{E}", "\\boxed{A}"], (0.0, 0.0, 0.0)),
    (["\\boxed{F}"] * 4, (0.0, 0.0, 0.0)),  # not an option letter
    (["<think>It is \\boxed{A}.</think>\\boxed{B}"] * 3 + ["<think>\\boxed{B}</think>\\boxed{A}"],
     (0.75, 1.0, 1.0)),
])
def test_process_choice(responses, expected):
    m = task_utils.process_choice(CHOICE_DOC, [responses])
    assert (m["pass@1"], m["pass@4"], m["maj@4"]) == expected
    assert set(m) == set(METRICS)


def test_process_choice_respects_the_number_of_options():
    doc = {**CHOICE_DOC, "options": ["a", "b", "c", "d"], "answer": "D"}
    m = task_utils.process_choice(doc, [["\\boxed{E}", "\\boxed{E}", "\\boxed{E}", "\\boxed{D}"]])
    assert (m["pass@1"], m["maj@4"]) == (0.25, 1.0)  # E is not an option of a 4-option question


def test_account_metrics():
    acc = [{"reasoning_tokens": 100, "forced_tokens": 0, "answer_tokens": 10, "latents": 0, "seconds": 1.0,
            "rerouted": 0.0, "first_pass_tokens": 0},
           {"reasoning_tokens": 300, "forced_tokens": 30, "answer_tokens": 20, "latents": 0, "seconds": 3.0,
            "rerouted": 1.0, "first_pass_tokens": 8}]  # a hybrid row re-asked in think mode
    rich = [Response(boxed(18), acc[i % 2]) for i in range(4)]
    m = task_utils.process_math(MATH_DOC, [rich])
    assert {f: m[f] for f in ACCOUNT_FIELDS} == {"reasoning_tokens": 200.0, "forced_tokens": 15.0,
                                                  "answer_tokens": 15.0, "latents": 0.0, "seconds": 2.0,
                                                  "rerouted": 0.5, "first_pass_tokens": 4.0}
    assert m["pass@1"] == 1.0
    latent = [Response("\\boxed{B}", {"answer_tokens": 7, "latents": 16, "seconds": 0.5})] * 4
    m = task_utils.process_choice(CHOICE_DOC, [latent])
    assert (m["answer_tokens"], m["latents"], m["seconds"]) == (7.0, 16.0, 0.5)
    assert math.isnan(m["reasoning_tokens"]) and math.isnan(m["forced_tokens"])  # not measured
    plain = task_utils.process_math(MATH_DOC, [[boxed(18)] * 4])  # --model hf: plain strings
    assert all(math.isnan(plain[f]) for f in ACCOUNT_FIELDS)
    # a mean over part of the samples would be biased: one unmeasured sample makes the doc's cost NaN
    mixed = task_utils.process_math(MATH_DOC, [rich[:3] + [boxed(18)]])
    assert all(math.isnan(mixed[f]) for f in ACCOUNT_FIELDS)


def fake_lm(right=(0,), rich=False):
    """An lm-eval LM whose k-th sample of a doc is right when k is in `right` (plain str or Response)."""
    from lm_eval.api.model import LM

    class FakeLM(LM):
        def __init__(self):
            super().__init__()
            self.seen = collections.Counter()
            self.contexts = []

        def loglikelihood(self, requests):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

        def generate_until(self, requests, disable_tqdm=False):
            out = []
            for req in requests:
                k = self.seen[id(req)]
                self.seen[id(req)] += 1
                self.contexts.append(req.args[0])
                gold = req.doc["answer"]
                wrong = "ABCDE"[("ABCDE".index(gold) + 1) % 5] if "options" in req.doc else "999"
                text = f"<think>\\boxed{{{wrong}}}</think>\n\n\\boxed{{{gold if k in right else wrong}}}"
                account = {"reasoning_tokens": 10.0 * (k + 1), "answer_tokens": 4, "forced_tokens": 0,
                           "latents": 0, "seconds": 0.25, "rerouted": 0.0, "first_pass_tokens": 0}
                out.append(Response(text, account) if rich else text)
            return out

    return FakeLM()


@needs_data
@pytest.mark.parametrize("rich", [False, True])
def test_evaluate_end_to_end_keeps_all_samples(tm, rich):
    """lm-eval runs the request 4 times and hands all 4 outputs to process_results; NaN costs survive."""
    from lm_eval.evaluator import evaluate
    from lm_eval.utils import handle_non_serializable, make_table

    lm = fake_lm(right=(1,), rich=rich)  # only the second of the four samples is right
    res = evaluate(lm=lm, task_dict=tm.load(["lrt_tiny", "lrt_lsat"]), limit=2, bootstrap_iters=1000)
    assert len(lm.contexts) == 4 * (2 + 3 * 2)  # 4 samples of 2 docs of each of the 4 tasks
    for name in ("lrt_tiny", "lrt_lsat_ar", "lrt_lsat_lr", "lrt_lsat_rc"):
        r = res["results"][name]
        # with take_first only the (wrong) first sample would be graded: pass@1 = 0
        assert (r["pass@1,none"], r["pass@4,none"], r["maj@4,none"]) == (0.25, 1.0, 0.0), name
        if rich:
            assert (r["reasoning_tokens,none"], r["answer_tokens,none"], r["seconds,none"]) == (25.0, 4.0, 0.25)
        else:
            assert all(math.isnan(r[f"{f},none"]) for f in ACCOUNT_FIELDS)
    group = res["groups"]["lrt_lsat"]
    assert (group["pass@1,none"], group["pass@4,none"]) == (0.25, 1.0)
    assert make_table(res) and make_table(res, "groups")  # NaN values and NaN stderrs render
    dumped = json.dumps(res, default=handle_non_serializable)
    assert ("NaN" in dumped) is (not rich)
    sample = res["samples"]["lrt_tiny"][0]
    assert len(sample["filtered_resps"][0]) == 4
    assert lm.contexts[0] == "Compute 12+5."


# ------------------------------------------------------------------------------------------------
# Data: errors
# ------------------------------------------------------------------------------------------------


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def test_row_missing_field_names_file_line_and_field(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "math500" / "test.jsonl", [
        {"problem": "1+1?", "answer": "2", "unique_id": "a"}, "", {"problem": "2+2?", "unique_id": "b"}])
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tmp_path))
    before = snapshot(tmp_path)
    with pytest.raises(LRTError) as e:
        data.load_docs("math500")
    assert one_line(e) == f"{path} line 3: missing field 'answer'"
    assert snapshot(tmp_path) == before  # nothing written


@pytest.mark.parametrize("bench, rel, rows, expected", [
    ("gsm8k", "gsm8k/test.jsonl", [{"question": "q", "answer": "so 4\n#### 4"}, {"question": "q", "answer": "4"},
                                   {"question": "q", "answer": "no number"}], "line 3: GSM8K answer field"),
    ("gsm8k", "gsm8k/test.jsonl", [{"answer": "#### 4"}], "line 1: missing field 'question'"),
    ("amc83", "amc83/amc.jsonl", [{"problem": "p", "answer": 1.0}, {"answer": 3.0}],
     "line 2: missing field 'problem' (or 'question')"),
    ("lsat_ar", "lsat/lsat-ar.jsonl", [{"passage": "p", "question": "q", "options": ["(A)x", "(B)y"], "label": "C"}],
     "line 1: gold label 'C' is not one of AB"),
    ("lsat_lr", "lsat/lsat-lr.jsonl", [{"passage": None, "question": "q", "label": "A"}],
     "line 1: missing field 'options'"),
    ("math500", "math500/test.jsonl", ["{not json"], "line 1: not valid JSON"),
    ("math500", "math500/test.jsonl", [{"problem": "  ", "answer": "1"}], "line 1: field 'problem' is empty"),
])
def test_bad_rows(tmp_path, monkeypatch, bench, rel, rows, expected):
    path = write_jsonl(tmp_path / rel, rows)
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tmp_path))
    with pytest.raises(LRTError) as e:
        data.load_docs(bench)
    assert one_line(e).startswith(f"{path} {expected}")


@pytest.mark.parametrize("bench, rel", [
    ("math500", "math500/test.jsonl"), ("gsm8k", "gsm8k/test.jsonl"), ("amc23", "amc23/test.jsonl"),
    ("amc83", "amc83/amc.jsonl"), ("lsat_rc", "lsat/lsat-rc.jsonl"), ("gpqa_diamond", "gpqa/dataset.zip"),
])
def test_missing_file_names_the_file(tmp_path, monkeypatch, bench, rel):
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tmp_path))
    with pytest.raises(LRTError) as e:
        data.load_docs(bench)
    msg = one_line(e)
    assert f"has no {rel}" in msg and str(tmp_path / rel) in msg
    assert not any(tmp_path.iterdir())


def test_data_dir_must_be_a_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tmp_path / "nowhere"))
    with pytest.raises(LRTError) as e:
        data.load_docs("gsm8k")
    assert one_line(e) == f"LRT_DATA_DIR={tmp_path / 'nowhere'} is not a directory"


def test_tiny_world_missing_or_bad(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_TINY_DIR, str(tmp_path / "world"))
    with pytest.raises(LRTError) as e:
        data.load_tiny_docs()
    msg = one_line(e)
    assert str(tmp_path / "world" / "data" / "eval.jsonl") in msg
    assert "run `lrt-bench tiny build` or set LRT_TINY_DIR" in msg
    path = write_jsonl(tmp_path / "world" / "data" / "eval.jsonl", [TINY_ROWS[0], {"id": "x", "answer": "3"}])
    with pytest.raises(LRTError) as e:
        data.load_tiny_docs()
    assert one_line(e) == f"{path} line 2: missing field 'problem'"
    monkeypatch.delenv(data.ENV_TINY_DIR)
    assert data.tiny_dir() == Path("~/.cache/lrt-bench/tiny").expanduser().resolve()
    assert data.load_tiny_docs(write_tiny(tmp_path / "other")) == [
        {"id": r["id"], "problem": r["problem"], "answer": r["answer"], "steps": r["steps"]} for r in TINY_ROWS]


def test_lm_eval_surfaces_data_errors(tmp_path, monkeypatch):
    """The user error reaches the lm-eval caller unchanged (not swallowed or re-wrapped)."""
    from lm_eval.tasks import TaskManager

    write_jsonl(tmp_path / "gsm8k" / "test.jsonl", [{"question": "q"}])
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tmp_path))
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    with pytest.raises(LRTError, match=r"test\.jsonl line 1: missing field 'answer'"):
        manager.load(["lrt_gsm8k"])
    with pytest.raises(LRTError, match=r"has no math500/test\.jsonl"):
        manager.load(["lrt_math500_b2048"])


# ------------------------------------------------------------------------------------------------
# Data: hub path (datasets.load_dataset replaced by fakes; no network)
# ------------------------------------------------------------------------------------------------


def fake_hub(monkeypatch, rows_by_path):
    import datasets

    calls = []

    def load_dataset(path, name=None, split=None, **kw):
        calls.append((path, name, split))
        if path not in rows_by_path:
            raise ConnectionError(f"Couldn't reach '{path}' on the Hub (LocalEntryNotFoundError)\nmore")
        return datasets.Dataset.from_list(rows_by_path[path])

    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_rows_are_normalised(monkeypatch):
    query = ("Passage text here.Q: Which one is right? Answer Choices: (A)one (B)two (C)three (D)four (E)five\n"
             "A: Among A through E, the answer is")
    calls = fake_hub(monkeypatch, {
        "HuggingFaceH4/MATH-500": [{"problem": "p", "answer": "\\frac12", "unique_id": "test/x/1.json"}],
        "openai/gsm8k": [{"question": "q", "answer": "work\n#### 1,234"}],
        "math-ai/amc23": [{"id": 7, "question": "q", "answer": 27.0}],
        "AI-MO/aimo-validation-amc": [{"id": 3, "problem": "p", "answer": 142.0}],
        "hails/agieval-lsat-ar": [{"query": query, "choices": ["(A)one", "(B)two", "(C)three", "(D)four",
                                                                 "(E)five"], "gold": [2]}],
        "Idavidrein/gpqa": [{"Question": "q?", "Correct Answer": "right", "Incorrect Answer 1": "w1",
                             "Incorrect Answer 2": "w2", "Incorrect Answer 3": "w3", "Record ID": "rec1"}],
    })
    assert data.load_docs("math500") == [{"id": "test/x/1.json", "problem": "p", "answer": "\\frac12"}]
    assert data.load_docs("gsm8k") == [{"id": "gsm8k-0", "problem": "q", "answer": "1234"}]
    assert data.load_docs("amc23") == [{"id": "7", "problem": "q", "answer": "27"}]
    assert data.load_docs("amc83") == [{"id": "3", "problem": "p", "answer": "142"}]
    assert data.load_docs("lsat_ar") == [{"id": "lsat-ar-0", "passage": "Passage text here.",
                                          "question": "Which one is right?",
                                          "options": ["one", "two", "three", "four", "five"], "answer": "C"}]
    (gpqa,) = data.load_docs("gpqa_diamond")
    assert gpqa["id"] == "rec1" and sorted(gpqa["options"]) == ["right", "w1", "w2", "w3"]
    assert gpqa["options"]["ABCD".index(gpqa["answer"])] == "right"
    assert calls == [("HuggingFaceH4/MATH-500", None, "test"), ("openai/gsm8k", "main", "test"),
                     ("math-ai/amc23", None, "test"), ("AI-MO/aimo-validation-amc", None, "train"),
                     ("hails/agieval-lsat-ar", None, "test"), ("Idavidrein/gpqa", "gpqa_diamond", "train")]


def test_hub_failure_is_one_actionable_line(monkeypatch):
    fake_hub(monkeypatch, {"openai/gsm8k": [{"question": "q"}]})
    with pytest.raises(LRTError) as e:
        data.load_docs("math500")
    msg = one_line(e)
    assert msg.startswith("could not load MATH-500 from the Hugging Face hub (HuggingFaceH4/MATH-500)")
    assert "ConnectionError" in msg and msg.endswith("set LRT_DATA_DIR to a folder with math500/test.jsonl")
    with pytest.raises(LRTError) as e:
        data.load_docs("gpqa_diamond")
    assert "gated" in one_line(e)
    with pytest.raises(LRTError) as e:
        data.load_docs("gsm8k")
    assert one_line(e) == "openai/gsm8k (main) test row 0: missing field 'answer'"


# ------------------------------------------------------------------------------------------------
# Data: GPQA from the encrypted zip, in memory
# ------------------------------------------------------------------------------------------------


def test_shuffle_is_fixed_per_question():
    # Pinned: a change here changes every GPQA prompt, so results stop being comparable across versions.
    assert data.shuffle_options("q1", "right", ["w1", "w2", "w3"]) == (["w2", "right", "w1", "w3"], "B")
    assert data.shuffle_options("q2", "right", ["w1", "w2", "w3"]) == (["right", "w2", "w1", "w3"], "A")


@needs_data
def test_gpqa_diamond_from_the_zip_in_memory(tmp_path, monkeypatch):
    writes = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            writes.append(str(file))
        return real_open(file, mode, *args, **kwargs)

    def spy_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            writes.append(str(path))
        return real_os_open(path, flags, *args, **kwargs)

    (tmp_path / "cwd").mkdir()
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setenv(data.ENV_DATA_DIR, str(DATA_DIR))
    data._cache.clear()
    with monkeypatch.context() as spy:
        spy.setattr(builtins, "open", spy_open)
        spy.setattr(io, "open", spy_open)
        spy.setattr(os, "open", spy_os_open)
        first = data.load_docs("gpqa_diamond")
        data._cache.clear()
        second = data.lm_eval_dataset("gpqa_diamond", version=1.0)["test"].to_list()
    assert writes == []
    assert snapshot(tmp_path) == {Path("cwd"), Path("tmp")}
    assert len(first) == 198 and first == second  # same options, same order, twice

    # gold letter -> the correct answer; the options are the four answers of the same row
    with zipfile.ZipFile(DATA_DIR / "gpqa" / "dataset.zip") as zf:
        raw = zf.read("dataset/gpqa_diamond.csv", pwd=data.GPQA_PASSWORD).decode("utf-8")
    import csv

    rows = list(csv.DictReader(io.StringIO(raw, newline="")))
    ok = 0
    for doc, row in zip(first, rows, strict=True):
        answers = [row[k].strip() for k in ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                                            "Incorrect Answer 3")]
        ok += (doc["id"] == row["Record ID"] and doc["question"] == row["Question"].strip()
               and sorted(doc["options"]) == sorted(answers)
               and doc["options"]["ABCD".index(doc["answer"])] == answers[0])
    assert ok == 198
    # shuffled, not left with the correct answer first
    letters = collections.Counter(d["answer"] for d in first)
    assert set(letters) == set("ABCD") and max(letters.values()) < 80
