"""Every command in the README is checked here, so the README cannot drift from the code.

The cheap commands are run for real elsewhere (the demo, leaderboard, redundancy, trainers and bench
tests; CI runs the set-up and test commands). Commands that need a GPU or the hub (real models) are
checked as far as possible offline: the recipe loads into its validated config, the accelerate config
file exists, the lm-eval model_args are accepted by `--model lrt`, the task names exist, the CLI flags
parse, the scripts' `--help` runs.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def readme_commands() -> list[str]:
    """Commands of the ```bash blocks, line continuations joined, comments dropped."""
    text = README.read_text()
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            if line:
                cmds.extend(part.strip() for part in line.split("&&"))
    return cmds


COMMANDS = readme_commands()


def test_readme_has_the_two_setup_commands():
    assert "lrt-bench demo" in COMMANDS
    assert "python -m pytest -q" in COMMANDS


def _check_trainer(argv: list[str]) -> None:
    from trainers.cli import parse_cli
    from trainers.config import GRPOConfig, SFTConfig

    module = argv[argv.index("-m") + 1]
    rest = argv[argv.index("-m") + 2 :]
    cls = {"trainers.sft": SFTConfig, "trainers.grpo": GRPOConfig}[module]
    cfg = parse_cli(cls, [a for a in rest], module)
    assert (ROOT / rest[rest.index("--config") + 1]).is_file()
    assert cfg.output_dir


def _check_lm_eval(argv: list[str]) -> None:
    from lm_eval.tasks import TaskManager

    from lrt_bench.eval.backend import _HFLM_ARGS, LRT_ARGS

    flags = {"--apply_chat_template", "--log_samples"}
    argv = [a for a in argv if a not in flags]
    args = dict(zip(argv[1::2], argv[2::2]))
    assert args.get("--model") in ("lrt", "hf")
    for item in args["--model_args"].split(","):
        key = item.split("=", 1)[0]
        assert key in _HFLM_ARGS or (args["--model"] == "lrt" and key in LRT_ARGS), key
    include = [str(ROOT / args["--include_path"])] if "--include_path" in args else None
    names = set(TaskManager(include_path=include, include_defaults=False).all_tasks)
    for task in args["--tasks"].split(","):
        assert task in names, task


def _check_lrt_bench(argv: list[str]) -> None:
    from lrt_bench.cli import build_parser

    build_parser().parse_args(argv[1:])


@pytest.mark.parametrize("cmd", COMMANDS)
def test_readme_command(cmd):
    if "..." in cmd or "<" in cmd:
        pytest.skip("placeholder command (documented shape only)")
    argv = shlex.split(cmd)
    while "=" in argv[0] and argv[0].split("=", 1)[0].isupper():  # leading VAR=value assignments
        argv = argv[1:]
    head = argv[0]
    if head in ("python3", "pip", ".") or argv[:3] == ["python", "-m", "pytest"]:
        pytest.skip("set-up and test commands: .ci/run runs them on a fresh clone")
    if head == "lrt-bench":
        _check_lrt_bench(argv)
    elif head == "lm_eval":
        _check_lm_eval(argv)
    elif head == "accelerate":
        if "--config_file" in argv:
            cfg = argv[argv.index("--config_file") + 1]
            assert (ROOT / cfg).is_file(), cfg
        else:  # the CPU multi-process form, run for real by tests/test_trainers_scale.py
            assert "--multi_gpu" in argv and "--num_processes" in argv and cmd.startswith("ACCELERATE_USE_CPU=1 ")
        _check_trainer(argv)
    elif argv[:3] in (["python", "-m", "trainers.sft"], ["python", "-m", "trainers.grpo"]):
        _check_trainer(argv)
    elif head == "python" and argv[1].startswith("bench/"):
        r = subprocess.run([sys.executable, str(ROOT / argv[1]), "--help"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
    elif head == "bash":
        r = subprocess.run(["bash", "-n", str(ROOT / argv[1])], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    else:
        pytest.fail(f"README command not covered by this test: {cmd}")
