"""The optimiser and its schedule (AdamW; linear warm-up, then cosine / linear decay or constant), and
what the trainers log about them: the updates applied and the gradient norm."""

from __future__ import annotations

import math

import torch
from torch import nn

from trainers.config import TrainConfig


def make_optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        params, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay
    )


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    """Linear warm-up, then cosine / linear decay to min_lr_ratio, or constant.

    Not `transformers.get_scheduler`: its warm-up starts at lr 0 (step 0 would train at nothing; ours is
    lr / warmup_steps) and its linear decay has no floor. Switching would change every trained result.
    """
    warm, floor = cfg.warmup_steps, cfg.min_lr_ratio

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.lr_scheduler_type == "constant":
            return 1.0
        t = (step - warm) / max(1, total_steps - warm)
        decay = 0.5 * (1 + math.cos(math.pi * min(t, 1.0))) if cfg.lr_scheduler_type == "cosine" else 1 - min(t, 1.0)
        return floor + (1 - floor) * decay

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def optimizer_steps(optimizer: torch.optim.Optimizer) -> int | None:
    """Updates the optimizer has applied (AdamW's per-parameter step count); None if it keeps none."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            st = optimizer.state.get(p, {})
            if "step" in st:
                return int(st["step"])
    return None


def grad_norm(params: list[nn.Parameter]) -> float:
    norms = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0
