"""lrt_bench.tools.traces: groups of sampled think-mode traces per problem, and the spread the "traces"
finding reports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lrt_bench.tools.traces import shortest_right_cut


def _run(world, out):
    r = subprocess.run([sys.executable, "-m", "lrt_bench.tools.traces", "--world", str(world), "--problems", "16",
                        "--group", "4", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(out.read_text())


def test_traces_command_writes_the_groups_spread(tiny_world, tmp_path):
    got = _run(tiny_world, tmp_path / "traces.json")
    assert (got["problems"], got["group"], got["temperature"]) == (16, 4, 0.6)
    world = json.loads((tiny_world / "world.json").read_text())
    assert (got["world_code_version"], got["world_seed"]) == (world["code_version"], world["seed"])
    assert got["provenance"]["packages"]["torch"] and "--problems 16" in got["command"]
    # the quick base thinks for tens of tokens and is right on some problems
    assert got["mean_reasoning_tokens"] > 10 and got["groups_with_a_right_sample"] >= 1 and got["accuracy"] > 0
    assert -1 < got["shortest_right_vs_group_mean"] < 1
    # seeded: the same call measures the same groups
    again = _run(tiny_world, tmp_path / "again.json")
    same = lambda d: {k: v for k, v in d.items() if k not in ("provenance", "command")}  # noqa: E731
    assert same(again) == same(got)


def test_shortest_right_cut():
    # mean 25, shortest right 20: 20% below the mean; a wrong shorter sample does not count
    assert shortest_right_cut([10, 20, 30, 40], [False, True, True, False]) == pytest.approx(0.2)
    assert shortest_right_cut([40, 20], [True, False]) == pytest.approx(1 - 40 / 30) # the only right one is the longest
    assert shortest_right_cut([10, 20], [False, False]) is None and shortest_right_cut([0, 0], [True, True]) is None


def test_traces_command_rejects_a_missing_world_and_bad_temperature(tmp_path):
    out = tmp_path / "t.json"
    for args, msg in ((["--world", str(tmp_path)], "holds no tiny world"), (["--temperature", "0"], "--temperature")):
        r = subprocess.run([sys.executable, "-m", "lrt_bench.tools.traces", *args, "--out", str(out)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and msg in r.stderr, r.stderr
    assert not out.exists()
