"""Where a result came from: the commit, the package versions and the machine, recorded beside it."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from lrt_bench.cpu_isa import first_cpu

_PACKAGES = ("torch", "transformers", "lm_eval", "accelerate", "safetensors", "math_verify")


def git_commit() -> str | None:
    """The checkout's commit, with "+dirty" when tracked files differ from it; None outside git."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        if not sha:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def cpu() -> dict[str, Any]:
    """The CPU a result was computed on: its model (with x86's family and model numbers) and the
    instruction set torch's kernels dispatch to (`torch.backends.cpu.get_cpu_capability`). Floating-point
    results on the CPU depend on both, not only on the seed and the code: the same tiny-world build
    trains different weights on an AVX-512 and on an AVX2 machine (lrt_bench/tiny/README.md)."""
    info: dict[str, Any] = {"model": platform.processor() or platform.machine()}
    fields = first_cpu() or {}  # {} where there is no /proc/cpuinfo (not Linux)
    if fields.get("model name"):
        info["model"] = fields["model name"]
    for key, name in (("cpu family", "family"), ("model", "model_number"), ("stepping", "stepping")):
        if fields.get(key, "").isdigit():
            info[name] = int(fields[key])
    try:
        import torch

        info["torch_capability"] = torch.backends.cpu.get_cpu_capability()
    except (ImportError, AttributeError):  # pragma: no cover
        info["torch_capability"] = None
    return info


def provenance() -> dict[str, Any]:
    """Commit, lrt-bench and package versions, Python, machine, threads and time, as a JSON-able dict."""
    from importlib import metadata

    from lrt_bench import __version__

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        import torch

        threads = torch.get_num_threads()
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        threads, device = None, "cpu"
    return {
        "commit": git_commit(),
        "lrt_bench": __version__,
        "packages": versions,
        "python": platform.python_version(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "cpu": cpu(), "torch_threads": threads, "device": device},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
