"""The committed results are what the committed code produces: the demo's files name the current tiny
world, record their provenance, and the README and FINDINGS.md quote them exactly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lrt_bench.tiny.build import FULL, code_version
from lrt_bench.tools.findings import readme_summary, render_findings, seeds_table

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "results" / "tiny"
# every committed demo run: its folder, the world seed it ran on, and its README summary's markers
RUNS = {"tiny": (DEMO, 0, "demo-summary"), "tiny_seed1": (ROOT / "results" / "tiny_seed1", 1, "demo-seed1-summary")}
runs = pytest.mark.parametrize("run", list(RUNS))


def _demo(run: str = "tiny") -> dict:
    return json.loads((RUNS[run][0] / "demo.json").read_text())


@runs
def test_committed_demo_names_the_current_world(run):
    d = _demo(run)
    assert not d["quick"] and d["world_seed"] == RUNS[run][1]
    assert d["world_code_version"] == code_version(FULL), (
        f"results/{run} was produced by another tiny-world version: rerun `lrt-bench demo --out results/{run} "
        "--overwrite` and commit its output")
    for extra in ("traces.json", "latent_count.json"):  # measured beside the demo, on the same world
        f = RUNS[run][0] / extra
        if f.is_file():
            meta = json.loads(f.read_text())
            assert (meta["world_code_version"], meta["world_seed"]) == (code_version(FULL), RUNS[run][1]), extra


@runs
def test_committed_demo_records_its_provenance(run):
    prov = _demo(run)["provenance"]
    assert re.fullmatch(r"[0-9a-f]{40}", prov["commit"]), f"demo ran on uncommitted code: {prov['commit']}"
    for key in ("torch", "transformers", "lm_eval"):
        assert prov["packages"][key]
    assert prov["machine"]["cpus"] and prov["python"]
    # torch's CPU kernels set the numbers (lrt_bench/cpu_isa.py): the committed runs used the default AVX2 ones
    kernels = prov["machine"].get("cpu", {}).get("torch_capability")
    assert kernels == "AVX2", (f"results/{run} was made with torch's {kernels} CPU kernels: rerun it with "
                               "LRT_CPU_ISA unset (avx2), as a user gets them")


@runs
def test_findings_file_is_generated_from_the_results(run):
    out = RUNS[run][0]
    assert (out / "FINDINGS.md").read_text() == render_findings(out)


@runs
def test_readme_quotes_the_committed_results(run):
    out, _, marker = RUNS[run]
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = (ROOT / "README.md").read_text()
    assert start in text and end in text, f"the README lost its {marker} markers"
    quoted = text.split(start, 1)[1].split(end, 1)[0].strip()
    assert " ".join(quoted.split()) == readme_summary(out), (
        f"README's demo figures differ from results/{run}: paste lrt_bench.tools.findings.readme_summary('results/{run}')")


@runs
def test_per_problem_file_agrees_with_the_committed_results(run):
    """per_problem.json (what FINDINGS.md is computed from) averages to lm-eval's own pass@1 of each cell."""
    out = RUNS[run][0]
    per = json.loads((out / "per_problem.json").read_text())
    for key, cols in per.items():
        (res,) = (out / "results" / key).rglob("results_*.json")
        want = json.loads(res.read_text())["results"]["lrt_tiny"]["pass@1,none"]
        assert abs(sum(cols["pass1"]) / len(cols["pass1"]) - want) < 1e-9, key
    assert len(per) == len(list((out / "results").rglob("results_*.json")))


def test_readme_quotes_the_seeds_table():
    """The README's table of verdicts across the two committed world seeds is what seeds_table computes now."""
    text = (ROOT / "README.md").read_text()
    quoted = text.split("<!-- seeds-table:start -->", 1)[1].split("<!-- seeds-table:end -->", 1)[0].strip()
    assert quoted == seeds_table([RUNS[r][0] for r in RUNS]), (
        "README's seeds table differs from the committed runs: paste the output of `python -m lrt_bench.tools.findings "
        "results/tiny --seeds results/tiny_seed1`")
    rows = {line.split(" | ")[0].strip("| "): line for line in quoted.splitlines()[2:]}
    assert {"traces", "NoThinking", "GRPO vs SFT", "baseline LC-R1"} <= set(rows) and "time" not in rows


def test_findings_command_prints_the_seeds_table(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "lrt_bench.tools.findings", str(DEMO), "--seeds",
                        str(RUNS["tiny_seed1"][0])], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == seeds_table([DEMO, RUNS["tiny_seed1"][0]]), r.stderr
    assert "| seed 0 | seed 1 |" in r.stdout
    r = subprocess.run([sys.executable, "-m", "lrt_bench.tools.findings", str(DEMO), "--seeds", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "hold no finished demo" in r.stderr


def test_seeds_table_verdicts(tmp_path):
    """A finding met on one run and not the other 'differs'; one a run did not measure is 'not measured'."""
    import shutil

    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        shutil.copytree(DEMO, d, ignore=shutil.ignore_patterns("train", "results", "redundancy"))
    # run b loses its traces.json (not measured) and its LC-R1 cells (the baseline's row disappears)
    (b / "traces.json").unlink()
    per = json.loads((b / "per_problem.json").read_text())
    (b / "per_problem.json").write_text(json.dumps({k: v for k, v in per.items() if not k.endswith("/lcr1")}))
    rows = {line.split(" | ")[0].strip("| "): line for line in seeds_table([a, b]).splitlines()[2:]}
    assert rows["traces"].endswith("| met | not measured | not measured |")
    assert rows["baseline LC-R1"].endswith("| met | not measured | not measured |")
    # the runs' order is the columns' order, also for a finding only the second run has
    flipped = {line.split(" | ")[0].strip("| "): line for line in seeds_table([b, a]).splitlines()[2:]}
    assert flipped["baseline LC-R1"].endswith("| not measured | met | not measured |")
    assert rows["NoThinking"].endswith("| met | met | holds |")
    assert rows["GRPO vs SFT"].endswith("| not met | not met | fails on every seed |")
    # b's NoThinking outside the band: met on one seed only
    for k in per:
        if k.endswith("/nothink"):
            per[k]["pass1"] = [0.0] * len(per[k]["pass1"])
    (b / "per_problem.json").write_text(json.dumps(per))
    assert "**differs**" in {line.split(" | ")[0].strip("| "): line for line in seeds_table([a, b]).splitlines()[2:]}["NoThinking"]


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
