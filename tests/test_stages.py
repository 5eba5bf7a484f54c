"""lrt_bench.tools.stages: the demo's dependency scheduler (order, parallelism, failures, bad plans)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from rich.console import Console

from lrt_bench.errors import LRTError
from lrt_bench.tools.stages import Stage, _ordered, _steps, run_stages


def record(path: str, name: str, wait_for: str = "", seconds: float = 0.0) -> None:
    """A stage: append (name, start, end) to `path`'s folder; fail if `wait_for`'s record is missing."""
    import torch

    folder = Path(path)
    if wait_for and not (folder / f"{wait_for}.json").is_file():
        raise RuntimeError(f"{name} ran before {wait_for}")
    start = time.time()
    time.sleep(seconds)
    print(f"stage {name} says hello")
    (folder / f"{name}.json").write_text(json.dumps({"start": start, "end": time.time(),
                                                     "threads": torch.get_num_threads()}))


def boom(message: str) -> None:
    print("about to fail")
    raise KeyError(message)


def quiet() -> Console:
    return Console(file=open("/dev/null", "w"), force_terminal=False)  # noqa: SIM115


def test_priority_is_cost_plus_the_heaviest_chain_of_dependants():
    stages = [Stage("a", record, cost=1), Stage("b", record, after=("a",), cost=5),
              Stage("c", record, after=("a",), cost=2), Stage("d", record, after=("b", "c"), cost=1),
              Stage("e", record, cost=3)]
    assert _ordered(stages) == {"a": 7, "b": 6, "c": 3, "d": 1, "e": 3}


@pytest.mark.parametrize("stages, message", [
    ([Stage("a", record), Stage("a", record)], "unique: a repeat"),
    ([Stage("a", record, after=("x",))], "unknown stages ['x']"),
    ([Stage("a", record, after=("b",)), Stage("b", record, after=("a",))], "depends on itself"),
])
def test_bad_plans_are_refused_before_anything_runs(stages, message, tmp_path):
    with pytest.raises(LRTError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run_stages(stages, 2, tmp_path / "logs", quiet())
    assert not (tmp_path / "logs").exists()
    with pytest.raises(LRTError, match="jobs must be >= 1"):
        run_stages([Stage("a", record)], 0, tmp_path / "logs", quiet())


def test_in_process_runs_in_dependency_order(tmp_path):
    d = str(tmp_path)
    stages = [Stage("late", record, (d, "late", "early"), after=("early",)), Stage("early", record, (d, "early"))]
    seconds = run_stages(stages, 1, tmp_path / "logs", quiet())
    assert set(seconds) == {"late", "early"} and all(v >= 0 for v in seconds.values())
    assert json.loads((tmp_path / "late.json").read_text())["threads"] == 1


def test_workers_run_independent_stages_at_once_and_respect_dependencies(tmp_path):
    d = str(tmp_path)
    stages = [Stage("x", record, (d, "x", "", 1.5), cost=10), Stage("y", record, (d, "y", "", 1.5), cost=10),
              Stage("z", record, (d, "z", "x"), after=("x",))]
    run_stages(stages, 2, tmp_path / "logs", quiet())
    t = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in "xyz"}
    assert t["x"]["start"] < t["y"]["end"] and t["y"]["start"] < t["x"]["end"]  # x and y overlapped
    assert t["z"]["start"] >= t["x"]["end"]
    assert all(v["threads"] == 1 for v in t.values())
    # each stage's output went to its own log, not to the console
    assert "stage x says hello" in (tmp_path / "logs" / "x.log").read_text()


def test_a_failing_stage_stops_the_run_and_names_its_log_and_command(tmp_path, capsys):
    d = str(tmp_path)
    stages = [Stage("bad/one", boom, ("no such key",), command="lrt-bench something --again"),
              Stage("after", record, (d, "after"), after=("bad/one",))]
    with pytest.raises(LRTError) as e:
        run_stages(stages, 2, tmp_path / "logs", quiet())
    msg = str(e.value)
    log = tmp_path / "logs" / "bad_one.log"
    assert "stage bad/one failed (KeyError: 'no such key')" in msg and str(log) in msg
    assert "rerun `lrt-bench something --again`" in msg
    assert "Traceback" in log.read_text() and "about to fail" in log.read_text()
    assert "about to fail" in capsys.readouterr().err  # the log's tail is shown
    assert not (tmp_path / "after.json").exists()


def test_training_progress_is_read_from_the_trainers_log(tmp_path):
    log = tmp_path / "log.jsonl"
    assert _steps(log) == (0, None)
    log.write_text(json.dumps({"step": 0, "max_steps": 40}) + "\n" + json.dumps({"step": 12, "loss": 1.0}) + "\n")
    assert _steps(log) == (12, 40)
    log.write_text(log.read_text() + '{"step": 1')  # a line being written: the last whole one counts
    assert _steps(log) == (12, 40)
