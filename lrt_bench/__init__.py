"""lrt-bench: a benchmarking toolkit for Latent Reasoning Tuning (LRT)."""

__version__ = "0.1.0"
