"""The grader against public graders' own test suites (external_cases.jsonl; see its README.md).

Every ``must`` case runs through the ``process_results`` of the lm-eval task it belongs to
(``lrt_math500`` for math, ``lrt_lsat_ar`` / ``lrt_gpqa`` for 5 / 4 option letters), built by lm-eval
from tasks/*.yaml, exactly as an evaluation calls it. ``policy`` and ``n/a`` cases are not asserted:
the project's choices on them are stated in lrt_bench/eval/grading.py's module docstring.

The file is read from ``$LRT_GRADING_DIR`` (default ``$LRT_DATA_DIR/../grading``); it is not part
of the repository.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("LRT_DATA_DIR") or REPO.parent / "shared" / "data")
GRADING_DIR = Path(os.environ.get("LRT_GRADING_DIR") or DATA_DIR / ".." / "grading")
CASES_FILE = GRADING_DIR / "external_cases.jsonl"
MATH_TASK, CHOICE_TASKS = "lrt_math500", {5: "lrt_lsat_ar", 4: "lrt_gpqa"}

pytestmark = pytest.mark.skipif(
    not CASES_FILE.is_file(),
    reason=f"grader conformance cases not found at {CASES_FILE}: set LRT_GRADING_DIR to the folder "
    "with external_cases.jsonl (default: $LRT_DATA_DIR/../grading)",
)


def load_cases() -> list[tuple[str, dict]]:
    """(id, case) for every case of the file; the id names the line and the source suite."""
    if not CASES_FILE.is_file():
        return []
    out = []
    for n, line in enumerate(CASES_FILE.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            case = json.loads(line)
            suite = case["source"].split(":")[0].split("/")[-1]
            out.append((f"L{n:03d}-{case['domain']}-{suite}", case))
    return out


CASES = load_cases()
MUST = [(cid, c) for cid, c in CASES if c["judged"] == "must"]


def response_of(case: dict) -> str:
    """The response as written; ``{REPEAT}`` stands for ``repeat[0] * repeat[1]`` (README.md)."""
    text = case["response"]
    if "{REPEAT}" in text:
        piece, times = case["repeat"]
        text = text.replace("{REPEAT}", piece * times)
    return text


@pytest.fixture(scope="module")
def tasks():
    """The lm-eval tasks the cases run through, built from tasks/*.yaml (their loaders need the data)."""
    if not (DATA_DIR / "math500" / "test.jsonl").is_file():
        pytest.skip(f"offline benchmark copies not found at {DATA_DIR}: set LRT_DATA_DIR (the tasks load them)")
    from lm_eval.tasks import TaskManager

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LRT_DATA_DIR", str(DATA_DIR))
        manager = TaskManager(include_path=str(REPO / "tasks"), include_defaults=False)
        names = [MATH_TASK, *CHOICE_TASKS.values()]
        yield manager.load(names)["tasks"]


def verdict(tasks, case: dict) -> int:
    """1 when the task's process_results grades the response right against the case's gold."""
    if case["domain"] == "math":
        task, doc = tasks[MATH_TASK], {"problem": "", "answer": case["gold"]}
    else:
        letters = case["letters"]
        task = tasks[CHOICE_TASKS[len(letters)]]
        doc = {"passage": "", "question": "", "options": [f"option {x}" for x in letters], "answer": case["gold"]}
    pass1 = task.process_results(doc, [[response_of(case)]])["pass@1"]  # lm-eval: [filtered_resps]
    assert pass1 in (0.0, 1.0), pass1
    return int(pass1)


def test_the_file_holds_must_cases():
    """An emptied or reshaped file must not pass as zero cases."""
    assert MUST, f"no 'must' case in {CASES_FILE}"
    assert all(c["domain"] in ("math", "mcq") and c["expected"] in (0, 1) for _, c in CASES)
    assert all(len(c["letters"]) in CHOICE_TASKS for _, c in CASES if c["domain"] == "mcq")


@pytest.mark.parametrize("case", [c for _, c in MUST], ids=[cid for cid, _ in MUST])
def test_must_case(tasks, case):
    got = verdict(tasks, case)
    assert got == case["expected"], (
        f"graded {'right' if got else 'wrong'}, the source says {'right' if case['expected'] else 'wrong'}: "
        f"gold {case['gold']!r}, response ...{response_of(case)[-160:]!r} ({case['source']}; "
        f"{case.get('verdict') or case.get('note') or ''})"
    )
