"""`lrt-bench demo --quick` end to end on the quick tiny world (train, evaluate, analyse, leaderboard)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # two quick demo runs: ~2 min on 2 cores


@pytest.fixture()
def demo_env(tiny_world):
    env = dict(os.environ, LRT_TINY_DIR=str(tiny_world), OMP_NUM_THREADS="1")
    return env


def test_demo_quick_end_to_end(tiny_world, demo_env, tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run(
        [sys.executable, "-m", "lrt_bench.cli", "demo", "--quick", "--world", str(tiny_world), "--out", str(out)],
        capture_output=True, text=True, env=demo_env, timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    # every stage left its artefacts
    assert (out / "train" / "sft" / "reasoner" / "model.safetensors").is_file()
    assert (out / "train" / "grpo" / "reasoner" / "model.safetensors").is_file()
    for name in ("shorterbetter", "lcr1"):
        meta = json.loads((out / "train" / name / "model" / "lrt_method.json").read_text())
        assert meta["method"] in ("ShorterBetter", "LC-R1")
    red = json.loads((out / "redundancy" / "redundancy.json").read_text())
    # one measured cell per (granularity, p): accuracies, and deletion keeps less of the trace as p grows
    cells = {(c["granularity"], c["p"]): c for c in red["results"]}
    assert set(cells) == {(g, p) for g in red["granularities"] for p in red["p"]} and red["n_problems"] > 0
    for g in red["granularities"]:
        kept = [cells[(g, p)]["kept_fraction"] for p in sorted(red["p"])]
        assert kept[0] == 1.0 and kept[-1] < 1.0 and all(0.0 <= cells[(g, p)]["accuracy"] <= 1.0 for p in red["p"])
    assert (out / "redundancy" / "redundancy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # groups of 8 sampled traces per problem: the spread the "traces" finding reports
    traces = json.loads((out / "traces.json").read_text())
    assert traces["problems"] == 16 and traces["group"] == 8 and traces["world_code_version"]
    assert 0 < traces["groups_with_a_right_sample"] <= 16 and -1 < traces["shortest_right_vs_group_mean"] < 1
    assert (out / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the leaderboard holds every method at both budgets, each with a measured pass@1
    board = (out / "LEADERBOARD.md").read_text()
    for label in ("think", "nothink", "LRT (untrained)", "LRT (SFT)", "LRT", "ShorterBetter", "LC-R1"):
        assert f"| {label} " in board or f"| **{label}** " in board, label
    assert "512 tokens" in board and "16 tokens" in board
    results = {}  # (budget, method) -> lrt_tiny's metrics, from results/b<budget>/<method>/<model>/results_*.json
    for f in (out / "results").rglob("results_*.json"):
        budget, method = f.relative_to(out / "results").parts[:2]
        results[(int(budget[1:]), method)] = json.loads(f.read_text())["results"]["lrt_tiny"]
    methods = ("think", "nothink", "lrt-untrained", "lrt-sft", "lrt", "shorterbetter", "lcr1")
    assert set(results) == {(b, m) for b in (512, 16) for m in methods}
    assert all(0.0 <= res["pass@1,none"] <= 1.0 for res in results.values())
    # each method's cost account is its mode's: think is cut and forced at 16 tokens (the quick base's
    # traces are longer), NoThinking and LRT generate no reasoning, LRT feeds the reasoner's N latents
    n_latents = json.loads((out / "train" / "grpo" / "reasoner" / "reasoner_config.json").read_text())["network"]["num_latents"]
    for (budget, method), res in results.items():
        think = method in ("think", "shorterbetter", "lcr1")
        assert res["latents,none"] == (0 if think or method == "nothink" else n_latents), (budget, method)
        if think:
            assert 0 < res["reasoning_tokens,none"] <= budget, (budget, method)
        else:
            assert res["reasoning_tokens,none"] == res["forced_tokens,none"] == 0, (budget, method)
    assert results[(16, "think")]["forced_tokens,none"] > results[(512, "think")]["forced_tokens,none"]
    timing = json.loads((out / "demo.json").read_text())
    assert timing["quick"] is True and timing["seconds"]["total"] > 0
    assert timing["world_code_version"] and timing["provenance"]["packages"]["torch"]
    assert timing["provenance"]["machine"]["cpu"]["torch_capability"]  # what the floats depend on
    assert not [r for r in timing["reused"] if not r.startswith("world")]
    # the demo ran the documented commands: commands.sh lists each stage's; a training command parses to the
    # config that run saved, and a recorded lm_eval command, run as it is, gives the demo's samples
    commands = timing["commands"]
    assert (out / "commands.sh").read_text().splitlines()[3:] == commands
    kinds = [c.split()[:3] for c in commands]
    assert kinds.count(["python", "-m", "trainers.sft"]) == 1 and kinds.count(["python", "-m", "trainers.grpo"]) == 3
    assert sum(c.startswith("lm_eval --model lrt ") for c in commands) == len(results)
    from trainers.cli import parse_cli
    from trainers.config import SFTConfig

    sft_argv = shlex.split(next(c for c in commands if c.startswith("python -m trainers.sft ")))[3:]
    saved = json.loads((out / "train" / "sft" / "config.json").read_text())
    assert json.loads(json.dumps(parse_cli(SFTConfig, sft_argv, "sft").to_dict())) == saved
    cell = out / "results" / "b16" / "nothink"
    (command,) = [c for c in commands if f"--output_path {cell}" in c]
    argv = shlex.split(command.replace(str(cell), str(tmp_path / "again")))
    r3 = subprocess.run([sys.executable, "-m", "lm_eval", *argv[1:]], capture_output=True, text=True, env=demo_env,
                        timeout=600)
    assert r3.returncode == 0, r3.stderr[-3000:]

    def responses(where):
        (f,) = where.rglob("samples_lrt_tiny_*.jsonl")
        return [(s["doc_id"], s["resps"], s["pass@1"]) for s in map(json.loads, f.read_text().splitlines())]

    assert responses(tmp_path / "again") == responses(cell)
    # the findings: every paper finding with its target, ours and a verdict
    from lrt_bench.tools.findings import render_findings

    findings = (out / "FINDINGS.md").read_text()
    assert findings == render_findings(out)
    assert "samples" in next(line for line in findings.splitlines() if line.startswith("| traces |"))
    for name in ("NoThinking", "LRT vs NoThinking", "GRPO vs SFT", "baseline ShorterBetter", "redundancy (Fig. 2)"):
        assert f"| {name} |" in findings, name

    # a second run reuses every finished stage: no trainer or evaluation runs again, the trained weights
    # stay as they were, and the leaderboard rebuilt from the reused results is the same
    weights = {f: f.read_bytes() for f in (out / "train").rglob("*.safetensors")}
    assert len(weights) == 5  # untrained, SFT and GRPO reasoners, the two baselines' models
    r2 = subprocess.run(
        [sys.executable, "-m", "lrt_bench.cli", "demo", "--quick", "--world", str(tiny_world), "--out", str(out)],
        capture_output=True, text=True, env=demo_env, timeout=900,
    )
    assert r2.returncode == 0, r2.stderr[-3000:]
    reused = set(json.loads((out / "demo.json").read_text())["reused"])
    assert {f"train/{name}" for name in ("sft", "grpo", "shorterbetter", "lcr1")} <= reused
    assert {f"results/b{b}/{m}" for b, m in results} | {"traces"} <= reused
    assert {f: f.read_bytes() for f in (out / "train").rglob("*.safetensors")} == weights
    assert len(list((out / "results").rglob("results_*.json"))) == len(results)
    assert (out / "LEADERBOARD.md").read_text() == board
