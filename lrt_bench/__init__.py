"""lrt-bench: a benchmarking toolkit for Latent Reasoning Tuning (LRT)."""

from lrt_bench.cpu_isa import pin_cpu_isa

__version__ = "0.1.0"

# Before torch runs a kernel: one instruction set for its CPU kernels, so CPU results reproduce across
# machines (lrt_bench/cpu_isa.py; LRT_CPU_ISA=native opts out).
pin_cpu_isa()
