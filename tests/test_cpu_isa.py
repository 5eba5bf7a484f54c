"""lrt-bench holds torch to one CPU instruction set (lrt_bench/cpu_isa.py): set before torch's first kernel
in every Python process of the environment, overridable, recorded with results."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from lrt_bench import cpu_isa


def _has_avx2() -> bool:
    return cpu_isa.NEEDS["avx2"] <= (cpu_isa.cpu_flags() or set())


x86_avx2 = pytest.mark.skipif(platform.machine().lower() not in cpu_isa.X86 or not _has_avx2(),
                              reason="the AVX2 pin applies to x86 CPUs with AVX2")


def _capability(**env: str) -> subprocess.CompletedProcess:
    """torch's CPU capability in a new interpreter of this environment that imports torch and nothing of
    lrt-bench (the start-up hook is what pins it), with `env` on top of a clean one."""
    clean = {k: v for k, v in os.environ.items() if k not in (cpu_isa.ISA_ENV, cpu_isa.TORCH_ENV)}
    return subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                          env={**clean, **env}, capture_output=True, text=True, timeout=120)


@x86_avx2
def test_every_process_of_the_environment_gets_avx2():
    r = _capability()
    assert r.returncode == 0 and r.stdout.strip() == "AVX2", r.stderr


@x86_avx2
def test_the_users_own_settings_win():
    assert _capability(**{cpu_isa.TORCH_ENV: "default"}).stdout.strip() == "DEFAULT"
    assert _capability(**{cpu_isa.ISA_ENV: "default"}).stdout.strip() == "DEFAULT"
    native = _capability(**{cpu_isa.ISA_ENV: "native"}).stdout.strip()
    assert native in ("AVX2", "AVX512")  # torch's own pick for this CPU


@x86_avx2
def test_a_bad_setting_warns_and_leaves_torch_its_choice():
    r = _capability(**{cpu_isa.ISA_ENV: "avx-2"})
    assert r.returncode == 0, r.stderr
    assert "LRT_CPU_ISA='avx-2' is not one of avx2, avx512, default, native" in r.stderr
    assert r.stdout.strip() == _capability(**{cpu_isa.ISA_ENV: "native"}).stdout.strip()


def test_pin_sets_torch_variable_only_where_the_cpu_has_the_kernels(monkeypatch):
    monkeypatch.delenv(cpu_isa.TORCH_ENV, raising=False)
    monkeypatch.delenv(cpu_isa.ISA_ENV, raising=False)
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert cpu_isa.pin_cpu_isa() is None and cpu_isa.TORCH_ENV not in os.environ
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    flags = {"sse2", "avx", "avx2", "fma"}
    monkeypatch.setattr(cpu_isa, "cpu_flags", lambda: flags)
    assert cpu_isa.pin_cpu_isa() == "avx2" and os.environ[cpu_isa.TORCH_ENV] == "avx2"
    monkeypatch.delenv(cpu_isa.TORCH_ENV)
    # asking torch for AVX-512 kernels on a CPU without them would kill the process: not set, and said
    monkeypatch.setenv(cpu_isa.ISA_ENV, "AVX512")
    with pytest.warns(UserWarning, match="this CPU lacks avx512bw, avx512dq, avx512f, avx512vl"):
        assert cpu_isa.pin_cpu_isa() is None
    assert cpu_isa.TORCH_ENV not in os.environ
    flags |= {"avx512f", "avx512vl", "avx512bw", "avx512dq"}
    assert cpu_isa.pin_cpu_isa() == "avx512"
    monkeypatch.delenv(cpu_isa.TORCH_ENV)
    # an old x86 CPU without AVX2, and a system that cannot say: torch's own pick
    monkeypatch.delenv(cpu_isa.ISA_ENV)
    monkeypatch.setattr(cpu_isa, "cpu_flags", lambda: {"sse2", "avx"})
    with pytest.warns(UserWarning, match="lacks avx2, fma"):
        assert cpu_isa.pin_cpu_isa() is None
    monkeypatch.setattr(cpu_isa, "cpu_flags", lambda: None)
    assert cpu_isa.pin_cpu_isa() is None and cpu_isa.TORCH_ENV not in os.environ
    monkeypatch.setenv(cpu_isa.ISA_ENV, "default")  # the scalar kernels need nothing
    assert cpu_isa.pin_cpu_isa() == "default"


def test_results_record_the_kernels_in_effect():
    import torch

    from lrt_bench.provenance import provenance

    got = provenance()["machine"]["cpu"]
    assert got["torch_capability"] == torch.backends.cpu.get_cpu_capability() and got["model"]
