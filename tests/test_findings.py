"""The demo's findings helpers on hand-made inputs: the by-steps breakdown and where its steps come from."""

from __future__ import annotations

import json

from lrt_bench.tools.findings import MethodResult, by_steps_table, load_demo, write_per_problem


def _result(pass1: list[float], steps: list[int]) -> MethodResult:
    ids = range(len(pass1))
    return MethodResult(dict(zip(ids, pass1)), {i: 10.0 for i in ids}, {i: 3.0 for i in ids}, dict(zip(ids, steps)))


def test_by_steps_table_splits_accuracy_by_operations():
    steps = [1, 1, 2, 2, 2, 2]
    at = {"nothink": _result([1, 1, 0, 0, 0, 0], steps), "lrt": _result([1, 0, 1, 1, 0, 0], steps)}
    lines = by_steps_table(at, 512)
    assert lines[1] == "## Accuracy by number of operations (budget 512)"
    assert lines[3] == "| method | 1 step | 2 steps |"
    assert "| NoThinking | 100.0% | 0.0% |" in lines
    assert "| LRT (SFT + GRPO) | 50.0% | 50.0% |" in lines
    assert "| problems | 2 | 4 |" in lines
    (diff,) = [ln for ln in lines if ln.startswith("| LRT (SFT + GRPO) − NoThinking")]
    cells = [c.strip() for c in diff.strip("|").split("|")[1:]]
    assert cells[0].startswith("-50.0 [") and cells[1].startswith("+50.0 [")


def test_by_steps_table_needs_steps():
    at = {"nothink": MethodResult({0: 1.0}, {0: 1.0}, {0: 1.0})}
    assert by_steps_table(at, 16) == []


def test_per_problem_keeps_the_docs_steps(tmp_path):
    """Steps come from the sample logs' docs (the tiny world's); cells whose docs lack them have none."""
    for method, docs in (("nothink", [{"steps": 1}, {"steps": 3}]), ("think", [{}, {"steps": 2}])):
        d = tmp_path / "results" / "b16" / method / "model"
        d.mkdir(parents=True)
        rows = [{"doc_id": i, "pass@1": 1.0, "reasoning_tokens": 0, "answer_tokens": 4, "doc": doc}
                for i, doc in enumerate(docs)]
        (d / "samples_lrt_tiny_x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    per = json.loads(write_per_problem(tmp_path).read_text())
    assert per["b16/nothink"]["steps"] == [1, 3] and "steps" not in per["b16/think"]
    runs = load_demo(tmp_path)
    assert runs[16]["nothink"].steps == {0: 1, 1: 3} and runs[16]["think"].steps == {}


def test_readme_summary_says_how_the_run_got_its_world(tmp_path):
    """The README's run time says whether the world was built in it (from nothing), cached, or stages resumed."""
    import shutil
    from pathlib import Path

    from lrt_bench.tools.findings import readme_summary

    src = Path(__file__).resolve().parents[1] / "results" / "tiny"
    out = tmp_path / "tiny"
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("train", "results", "redundancy"))
    meta = json.loads((out / "demo.json").read_text())

    def took(reused: list[str], seconds: dict) -> str:
        (out / "demo.json").write_text(json.dumps({**meta, "reused": reused, "seconds": seconds}))
        return readme_summary(out).split("The run ", 1)[1]

    assert took([], {"world": 552.0, "total": 1284.0}).startswith("took 21.4 min from nothing (the world's build 9.2 min of it) on")
    assert took(["world /w"], {"world": 0.0, "total": 1062.0}).startswith("took 17.7 min with the tiny world cached on")
    assert took(["world /w", "train/sft"], {"world": 0.0, "total": 300.0}).startswith(
        "resumed 1 stages finished by an earlier one and took 5.0 min more")
