"""Which rows each step trains on, and each rollout chunk's sampling seed: functions of (seed, step) and
the batch position alone, so a resumed run repeats an uninterrupted one whatever the number of processes."""

from __future__ import annotations

import torch


class EpochOrder:
    """Which rows each step trains on.

    Rows are walked in a fresh seeded permutation per epoch; the order depends only on (seed, step),
    so a resumed run sees exactly the batches an uninterrupted one would. Each rank takes every
    world-th row of the global batch.
    """

    def __init__(self, n_rows: int, seed: int):
        self.n, self.seed, self._perms = n_rows, seed, {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.n, generator=g).tolist()}
        return self._perms[epoch]

    def indices(self, step: int, global_batch: int, rank: int = 0, world: int = 1) -> list[int]:
        out = []
        for pos in range(step * global_batch, (step + 1) * global_batch):
            epoch, i = divmod(pos, self.n)
            out.append(self._perm(epoch)[i])
        return out[rank::world]


def step_seed(seed: int, step: int, position: int) -> int:
    """Sampling seed of one rollout chunk: a function of (seed, step, the global batch position of the
    chunk's first prompt), so resume is exact and the samples do not depend on the number of processes
    (rank r's first prompt sits at position r: `EpochOrder` deals the global batch out round-robin)."""
    return (seed * 1_000_003 + step * 7_919 + position * 104_729) % (2**62)
