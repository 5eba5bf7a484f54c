"""The GRPO core: group-normalised advantages, the clipped token-level objective, k3 KL.

Pure tensor functions, no model, no data: `trainers/grpo.py` feeds them log-probs.

    A_i      = (r_i − mean(r_group)) / (std(r_group) + eps)          (scale_rewards=False: no division)
    ρ_t      = exp(log π_φ(y_t) − log π_φ_old(y_t))
    L_clip,t = −min(ρ_t · A_t, clip(ρ_t, 1 − ε, 1 + ε_high) · A_t)
    KL_t     = exp(ref_t − cur_t) − (ref_t − cur_t) − 1              (k3, Schulman 2020; ≥ 0, unbiased)
    ℓ_it     = L_clip,it + β KL_it,  summed with the loss mask m_it, by `loss_type` (TRL's names):
    grpo     mean_i [Σ_t m_it ℓ_it / Σ_t m_it]          per-sequence mean, then over the micro-batch
    bnpo     Σ_it m_it ℓ_it / Σ_it m_it                 token mean over the micro-batch
    dr_grpo  Σ_it m_it ℓ_it / (B · max_completion_length)   a constant normaliser (Dr. GRPO)
    dapo     Σ_it m_it ℓ_it / (tokens of the whole step)    token mean over every micro-batch and
                                                         process of one optimizer step (`num_items`)
"""

from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, group_size: int, *, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """rewards [B] (groups of `group_size` adjacent rows) -> advantages [B].

    The std is the population std of each group (TRL's `scale_rewards="group"` uses the unbiased one;
    with K = 8 the two differ by 7%, a constant factor absorbed by the learning rate). A group whose rewards are all equal gets
    advantage 0 everywhere: it carries no signal about which sample was better.
    """
    B = rewards.shape[0]
    if B % group_size:
        raise ValueError(f"{B} rewards do not split into groups of {group_size}")
    r = rewards.float().view(-1, group_size)  # [G, K]
    mean = r.mean(-1, keepdim=True)  # [G, 1]
    adv = r - mean  # [G, K]
    if scale:
        std = r.std(-1, unbiased=False, keepdim=True)  # [G, 1]
        adv = adv / (std + eps)
    return adv.view(B)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(π_φ || π_ref): logp, ref_logp [B, T] -> [B, T] (≥ 0)."""
    d = ref_logp - logp  # [B, T]
    return torch.exp(d) - d - 1


def clipped_objective(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    epsilon: float,
    epsilon_high: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO/GRPO clipped surrogate per token.

    logp, old_logp: [B, T]; advantages: [B] (one per sequence) or [B, T] (per token, e.g. LC-R1's
    bonus at </think>). Returns (loss per token [B, T], clipped indicator [B, T] as float).
    """
    adv = advantages if advantages.dim() == 2 else advantages[:, None]  # [B, T] or [B, 1]
    ratio = torch.exp(logp - old_logp)  # [B, T]
    hi = 1 + (epsilon if epsilon_high is None else epsilon_high)
    clipped_ratio = ratio.clamp(1 - epsilon, hi)
    unclipped = ratio * adv
    clipped = clipped_ratio * adv
    loss = -torch.min(unclipped, clipped)  # [B, T]
    was_clipped = (clipped < unclipped).float()  # the clip was the binding term
    return loss, was_clipped


LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")


def masked_mean(x: torch.Tensor, mask: torch.Tensor, loss_type: str = "bnpo", *, max_completion_length: int = 0,
                num_items: float = 0.0) -> torch.Tensor:
    """x, mask [B, T] -> scalar, normalised as `loss_type` says (module docstring).

    dr_grpo needs `max_completion_length`; dapo needs `num_items`, the loss-mask tokens of the whole
    optimizer step (all micro-batches and processes), so that each micro-batch's share adds up to one
    token mean of the step.
    """
    m = mask.to(x.dtype)
    total = (x * m).sum()
    if loss_type == "bnpo":
        return total / m.sum().clamp(min=1)
    if loss_type == "grpo":
        per_row = (x * m).sum(-1) / m.sum(-1).clamp(min=1)  # [B]
        return per_row.mean()
    if loss_type == "dr_grpo":
        if max_completion_length < 1:
            raise ValueError("loss_type dr_grpo needs max_completion_length >= 1")
        return total / (x.shape[0] * max_completion_length)
    if loss_type == "dapo":
        if num_items <= 0:
            raise ValueError("loss_type dapo needs num_items > 0 (the step's loss-mask tokens)")
        return total / num_items
    raise ValueError(f"unknown loss_type {loss_type!r}: one of {', '.join(LOSS_TYPES)}")


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon: float,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    epsilon_high: float | None = None,
    loss_type: str = "bnpo",
    max_completion_length: int = 0,
    num_items: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The GRPO loss and its statistics. logp/old_logp/ref_logp/mask: [B, T]; advantages [B] or [B, T].

    `max_completion_length` (dr_grpo) and `num_items` (dapo): see `masked_mean`.
    """
    per_token, was_clipped = clipped_objective(logp, old_logp, advantages, epsilon, epsilon_high)  # [B, T]
    stats: dict[str, float] = {}
    if beta > 0:
        if ref_logp is None:
            raise ValueError("beta > 0 needs ref_logp")
        kl = kl_k3(logp, ref_logp)  # [B, T]
        per_token = per_token + beta * kl
        stats["kl"] = float(masked_mean(kl.detach(), mask))
    elif ref_logp is not None:
        stats["kl"] = float(masked_mean(kl_k3(logp.detach(), ref_logp), mask))
    loss = masked_mean(per_token, mask, loss_type, max_completion_length=max_completion_length,
                       num_items=num_items)
    stats["clip_fraction"] = float(masked_mean(was_clipped, mask))
    return loss, stats
