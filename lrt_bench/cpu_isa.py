"""One instruction set for torch's CPU kernels, so that CPU results reproduce across x86 machines.

torch picks its CPU kernels by what the CPU can do (`torch.backends.cpu.get_cpu_capability()`): AVX-512
on a recent AMD EPYC or Xeon, AVX2 on older ones. The two round differently (attention, norms,
reductions), and a training run amplifies the difference: the same seed-0 tiny-world build gave one base
on an AVX-512 EPYC and another on the AVX2 EPYC that produced results/tiny (measured 2026-12-04: think
88.2% against 89.5% at budget 512, LRT on 2-step problems 64.3% against 48.3%). With torch held to its
AVX2 kernels (ATEN_CPU_CAPABILITY=avx2) the AVX-512 machine rebuilt the committed world: its SFT's loss
and gradient norm at step 25 equal to the last digit, and `lrt-bench demo` from nothing reproduced
results/tiny's per_problem.json (and results/tiny_seed1's) byte for byte. The math libraries needed no
setting there: MKL and oneDNN held to AVX2 as well (MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA) gave the
same world's bytes, and held to AVX2 without torch's kernels they left the gradient norm different in the
4th digit. Intel CPUs are not measured: MKL may pick AVX-512 kernels there, and if an Intel AVX-512
machine gives other numbers, MKL_ENABLE_INSTRUCTIONS=AVX2 is the next setting to try.

So lrt-bench holds torch to AVX2 on x86. On the AVX-512 machine it cost
a few percent: the seed-0 demo from nothing took 21.4 min against 20.7 with torch's own kernels (one run
each; SFT 528 s against 499 s). The setting:

    LRT_CPU_ISA=avx2      (default) torch's AVX2 kernels on x86
    LRT_CPU_ISA=avx512    its AVX-512 kernels (where the CPU has them)
    LRT_CPU_ISA=default   its portable scalar kernels (slow; the same on any x86 CPU)
    LRT_CPU_ISA=native    whatever torch picks for this CPU (fastest; results may not match another CPU's)

An ATEN_CPU_CAPABILITY of the user's own wins. Other CPUs (ARM), an x86 CPU without what the setting needs
(AVX2 and FMA: Intel since 2013, AMD since 2015, not every Atom, Pentium or Celeron; asking torch for kernels
the CPU lacks would kill the process) and systems without /proc/cpuinfo are left to torch. It has to be set before
torch runs its first kernel: `lrt_bench` does it on import, and the start-up hook that plugs lrt-bench into
lm-eval (`lrt_bench/eval/_lm_eval_hook.py`) imports `lrt_bench` as every Python process of the
environment starts. What was in effect is recorded with every result (`lrt_bench.provenance.cpu`).
GPU kernels are not affected.
"""

from __future__ import annotations

import os
import platform
import warnings

ISA_ENV = "LRT_CPU_ISA"
DEFAULT_ISA = "avx2"
ISAS = ("avx2", "avx512", "default", "native")
TORCH_ENV = "ATEN_CPU_CAPABILITY"  # read once, when torch runs its first CPU kernel
X86 = ("x86_64", "amd64", "i386", "i686")
# What each setting needs of the CPU (/proc/cpuinfo flags, as torch's own checks): torch takes
# ATEN_CPU_CAPABILITY at its word, so asking for kernels the CPU lacks would end the process (SIGILL).
NEEDS = {"avx2": {"avx2", "fma"}, "avx512": {"avx512f", "avx512vl", "avx512bw", "avx512dq"}, "default": set()}


def first_cpu() -> dict[str, str] | None:
    """The first processor's fields in /proc/cpuinfo, read only up to the end of its block (this runs as
    every Python process starts; the file has a block per core); None where there is none (not Linux)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return None
    return fields


def cpu_flags() -> set[str] | None:
    """The first processor's instruction-set flags from /proc/cpuinfo; None where there are none (not Linux)."""
    fields = first_cpu()
    return None if fields is None or "flags" not in fields else set(fields["flags"].split())


def pin_cpu_isa() -> str | None:
    """Set ATEN_CPU_CAPABILITY from LRT_CPU_ISA (see the module's docstring); returns what torch will be
    asked for (None: torch's own choice). Never raises: it runs at interpreter start-up, where an error
    would break every Python process of the environment, so a bad value is a warning and no setting."""
    if TORCH_ENV in os.environ:  # the user's own choice
        return os.environ[TORCH_ENV]
    want = os.environ.get(ISA_ENV, DEFAULT_ISA).strip().lower()
    if want not in ISAS:
        warnings.warn(f"{ISA_ENV}={os.environ[ISA_ENV]!r} is not one of {', '.join(ISAS)}: torch picks its CPU "
                      f"kernels itself, so CPU results may not match another machine's; set {ISA_ENV}="
                      f"{DEFAULT_ISA} (the default) or unset it", stacklevel=2)
        return None
    if want == "native" or platform.machine().lower() not in X86:
        return None
    flags = cpu_flags() if NEEDS[want] else set()
    if flags is None:  # cannot tell what the CPU has (macOS, Windows): torch's own pick, as recorded
        return None
    if not NEEDS[want] <= flags:
        warnings.warn(f"{ISA_ENV}={want}: this CPU lacks {', '.join(sorted(NEEDS[want] - flags))}, so torch picks "
                      "its CPU kernels itself and CPU results may not match another machine's", stacklevel=2)
        return None
    os.environ[TORCH_ENV] = want
    return want
