"""The committed results are what the committed code produces: the demo's files name the current tiny
world, record their provenance, and the README and FINDINGS.md quote them exactly."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lrt_bench.tiny.build import FULL, code_version
from lrt_bench.tools.findings import readme_summary, render_findings

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "results" / "tiny"
START, END = "<!-- demo-summary:start -->", "<!-- demo-summary:end -->"


def _demo() -> dict:
    return json.loads((DEMO / "demo.json").read_text())


def test_committed_demo_names_the_current_world():
    d = _demo()
    assert not d["quick"]
    assert d["world_code_version"] == code_version(FULL), (
        "results/tiny was produced by another tiny-world version: rerun `lrt-bench demo --out results/tiny "
        "--overwrite` and commit its output")


def test_committed_demo_records_its_provenance():
    prov = _demo()["provenance"]
    assert re.fullmatch(r"[0-9a-f]{40}", prov["commit"]), f"demo ran on uncommitted code: {prov['commit']}"
    for key in ("torch", "transformers", "lm_eval"):
        assert prov["packages"][key]
    assert prov["machine"]["cpus"] and prov["python"]


def test_findings_file_is_generated_from_the_results():
    assert (DEMO / "FINDINGS.md").read_text() == render_findings(DEMO)


def test_readme_quotes_the_committed_results():
    text = (ROOT / "README.md").read_text()
    assert START in text and END in text, "the README lost its demo-summary markers"
    quoted = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert " ".join(quoted.split()) == readme_summary(DEMO), (
        "README's demo figures differ from results/tiny: paste lrt_bench.tools.findings.readme_summary('results/tiny')")


def test_per_problem_file_agrees_with_the_committed_results():
    """per_problem.json (what FINDINGS.md is computed from) averages to lm-eval's own pass@1 of each cell."""
    per = json.loads((DEMO / "per_problem.json").read_text())
    for key, cols in per.items():
        (res,) = (DEMO / "results" / key).rglob("results_*.json")
        want = json.loads(res.read_text())["results"]["lrt_tiny"]["pass@1,none"]
        assert abs(sum(cols["pass1"]) / len(cols["pass1"]) - want) < 1e-9, key
    assert len(per) == len(list((DEMO / "results").rglob("results_*.json")))


def test_findings_command_rewrites_findings(tmp_path):
    """`python -m lrt_bench.tools.findings OUT` rewrites OUT/FINDINGS.md from OUT's files; a directory without a
    demo's results is one line."""
    import shutil
    import subprocess
    import sys

    out = tmp_path / "demo"
    shutil.copytree(DEMO, out, ignore=shutil.ignore_patterns("train", "results", "redundancy"))
    (out / "FINDINGS.md").write_text("stale\n")
    r = subprocess.run([sys.executable, "-m", "lrt_bench.tools.findings", str(out)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert (out / "FINDINGS.md").read_text() == render_findings(out) == r.stdout
    r = subprocess.run([sys.executable, "-m", "lrt_bench.tools.findings", str(tmp_path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "has neither per_problem.json nor sample logs" in r.stderr.strip().splitlines()[-1]
