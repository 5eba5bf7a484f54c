"""Tiny-world latency: think (full trajectory) vs nothink vs latent at batch 1 and 32, one run.

    python bench/latency.py [--world DIR] [--reasoner DIR] [--problems 64] [--repeats 3] ...

A thin wrapper over `lrt-bench bench` (lrt_bench/tools/bench.py, same arguments; see its docstring for what is
measured): writes results/bench/tiny.json and tiny.md unless --out-dir / --name say otherwise.
Targets (docs/design.md §4.15): latent >= 5x faster than full thinking at the same batch size; latent within
1.3x of nothink; batch 32 >= 8x the throughput of batch 1. Without --reasoner an untrained G_φ is timed
(same shapes and cost; its answers are not meaningful, and answer lengths are reported).
"""

import sys

from lrt_bench.tools.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
