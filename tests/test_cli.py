"""The README's commands: `lrt-bench tiny build`, `lrt-bench bench`, and the benchmark scripts."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lrt_bench.cli import main

REPO = Path(__file__).resolve().parents[1]


def cli(*args, env=None, cwd=None):
    exe = shutil.which("lrt-bench") or sys.executable
    cmd = [exe, *args] if exe.endswith("lrt-bench") else [exe, "-m", "lrt_bench.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}, cwd=cwd)


def test_tiny_build_reuses_a_matching_world(tiny_world, capsys):
    # The session's quick world is cached: the README's build command returns without retraining.
    before = (tiny_world / "world.json").stat().st_mtime_ns
    assert main(["tiny", "build", "--out", str(tiny_world), "--quick", "--no-progress"]) == 0
    assert (tiny_world / "world.json").stat().st_mtime_ns == before
    assert "greedy accuracy" in capsys.readouterr().out


def test_bench_without_world_says_what_to_do(tmp_path):
    r = cli("bench", "--out-dir", str(tmp_path / "out"), env={"LRT_TINY_DIR": str(tmp_path / "none")})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"lrt-bench: error: no tiny world at {tmp_path / 'none'}: run `lrt-bench tiny build --out "
        f"{tmp_path / 'none'}` first, or pass --world"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_latent_count_sweep_smoke(tiny_world, tmp_path):
    """bench/tiny_sweep.py: one SFT run per latent count, JSON with provenance and a plot; the demo's
    findings read it as the latent-count row."""
    from lrt_bench.tools.findings import _latent_count

    out = tmp_path / "latent_count.json"
    r = subprocess.run([sys.executable, str(REPO / "bench" / "tiny_sweep.py"), "--steps", "2", "--latents", "2,4",
                        "--eval-problems", "4", "--runs", str(tmp_path / "runs"), "--out", str(out)],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "LRT_TINY_DIR": str(tiny_world)})
    assert r.returncode == 0, r.stderr
    payload = json.loads(out.read_text())
    assert [(c["num_latents"], c["steps"], c["eval_problems"]) for c in payload["cells"]] == [(2, 2, 4), (4, 2, 4)]
    assert all(0 <= c["eval_accuracy"] <= 1 for c in payload["cells"])
    assert payload["provenance"]["commit"] and payload["world_code_version"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    row = _latent_count(tmp_path)
    assert row.met is False and "2: " in row.ours and "4: " in row.ours  # 8, 16, 32, 64 not measured
    # the cells ran side by side (default --jobs on 2 cores); one at a time gives the same numbers
    again = tmp_path / "again" / "latent_count.json"
    r = subprocess.run([sys.executable, str(REPO / "bench" / "tiny_sweep.py"), "--steps", "2", "--latents", "2,4",
                        "--eval-problems", "4", "--runs", str(tmp_path / "runs1"), "--out", str(again), "--jobs", "1"],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "LRT_TINY_DIR": str(tiny_world)})
    assert r.returncode == 0, r.stderr
    measured = [{k: v for k, v in c.items() if k != "seconds"} for c in payload["cells"]]
    assert [{k: v for k, v in c.items() if k != "seconds"} for c in json.loads(again.read_text())["cells"]] == measured


def test_demo_uses_the_seed_of_the_world_it_is_given(tmp_path):
    """`lrt-bench demo --world DIR` takes DIR's world as it is (a seed-1 world is not rebuilt as seed 0);
    --seed asks for a seed; with no world there, the seed is 0."""
    from lrt_bench.cli import build_parser
    from lrt_bench.tools.demo import _world_seed

    (tmp_path / "world.json").write_text(json.dumps({"seed": 1, "quick": False}))
    parse = build_parser().parse_args
    assert _world_seed(parse(["demo", "--world", str(tmp_path)]), tmp_path) == 1
    assert _world_seed(parse(["demo", "--world", str(tmp_path), "--seed", "2"]), tmp_path) == 2
    assert _world_seed(parse(["demo", "--world", str(tmp_path / "none")]), tmp_path / "none") == 0
