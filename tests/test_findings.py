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
