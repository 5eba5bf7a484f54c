"""What GRPO trains, and how its sequences are built: the latent policy (LRT) or the explicit one.

Both policies offer the same three calls to `trainers/grpo.py`, which owns everything else (rewards,
advantages, the clipped loss, the optimiser):

    rollout(prompts, K, decode) -> Rollout        sample K completions per prompt, no gradients
    logprobs(rollout, model)    -> (logp, mask)   [B, T] per completion token, with gradients
    ref_logprobs(rollout)       -> logp           [B, T] under the frozen reference (for the KL)

latent   (LRT, DESIGN §4.7): φ trains. z = G_φ(H_X) is computed once per prompt; K answers are sampled
         from the frozen base given [X, z]; log-probs are of the answer tokens given [X, G_φ(H_X)].
         The reference is the starting reasoner (the SFT one).
explicit (ShorterBetter, LC-R1 baselines): the base itself trains (full fine-tuning). Completions are
         think-mode trajectories with budget forcing; tokens the budget forced in are not the policy's
         and are masked out of the loss. The reference is a frozen copy of the starting base.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
from torch import nn

from lrt_bench import layout
from lrt_bench.generation import DecodeConfig, Generation, LatentLM, PromptBatch, token_logprobs


@dataclass
class Rollout:
    prompts: list[str]  # P prompts
    group_size: int  # K
    batch: PromptBatch  # the prompts as the policy lays them out [P, L]
    gens: list[Generation]  # P*K, grouped by prompt
    completions: list[list[int]]  # P*K token ids that are scored (EOS appended where it ended the row)
    loss_masks: list[list[int]]  # 1 = sampled by the policy; 0 = forced by the budget
    z: torch.Tensor | None = None  # [P, N, d] the rollout's latents (latent policy)

    def subset(self, prompt_idx: list[int]) -> Rollout:
        """The rollout restricted to some prompts (with all K completions of each)."""
        K = self.group_size
        rows = [p * K + k for p in prompt_idx for k in range(K)]
        sel = torch.tensor(prompt_idx, device=self.batch.input_ids.device)
        batch = PromptBatch(self.batch.input_ids[sel], self.batch.attention_mask[sel], self.batch.lengths[sel])
        return Rollout(
            prompts=[self.prompts[p] for p in prompt_idx], group_size=K, batch=batch,
            gens=[self.gens[r] for r in rows], completions=[self.completions[r] for r in rows],
            loss_masks=[self.loss_masks[r] for r in rows],
            z=None if self.z is None else self.z[sel],
        )

    def padded(self, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Completions [B, T] right-padded, and the loss mask [B, T] (0 on padding and forced tokens)."""
        T = max(len(c) for c in self.completions)
        ids = torch.full((len(self.completions), T), pad_id, dtype=torch.long)
        mask = torch.zeros((len(self.completions), T), dtype=torch.long)
        for i, (c, m) in enumerate(zip(self.completions, self.loss_masks)):
            ids[i, : len(c)] = torch.tensor(c)
            mask[i, : len(m)] = torch.tensor(m)
        return ids.to(device), mask.to(device)


def _with_eos(g: Generation) -> list[int]:
    """The scored ids: what was generated, plus the EOS when it ended the row (so stopping is learned)."""
    return g.token_ids + ([g.eos_id] if g.eos_id is not None else [])


class LatentPolicy:
    """LRT: train G_φ; the base answers from [X, z]."""

    mode = "latent"

    def __init__(self, lm: LatentLM, net: nn.Module, ref_net: nn.Module | None):
        self.lm, self.net, self.ref_net = lm, net, ref_net

    def trainable(self) -> nn.Module:
        return self.net

    @torch.no_grad()
    def rollout(self, prompts: list[str], K: int, decode: DecodeConfig) -> Rollout:
        # z is computed once per prompt inside `generate` (one pass over X fills the cache and gives H_X)
        gens = self.lm.generate(prompts, replace(decode, mode="latent"), repeats=K)
        z = self.lm.last_latents  # [P, N, d], shared by the prompt's K samples
        batch = self.lm.encode_prompts(prompts, "latent")  # tokenisation only, for the log-prob passes
        comps = [_with_eos(g) for g in gens]
        return Rollout(prompts, K, batch, gens, comps, [[1] * len(c) for c in comps], z)

    def logprobs(self, ro: Rollout, model: nn.Module, *, use_rollout_z: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """log π(y_t) [B, T] of each answer token given [X, G_φ(H_X)] (or the rollout's z, no grad)."""
        logp, mask, _ = self.lm.answer_logprobs(
            ro.batch, ro.completions, repeats=ro.group_size, z=ro.z if use_rollout_z else None, reasoner=model
        )
        return logp, mask

    @torch.no_grad()
    def ref_logprobs(self, ro: Rollout) -> torch.Tensor:
        logp, _, _ = self.lm.answer_logprobs(ro.batch, ro.completions, repeats=ro.group_size, reasoner=self.ref_net)
        return logp


class ExplicitPolicy:
    """Baselines: train the base's own reasoning in think mode (budget-forced)."""

    mode = "think"

    def __init__(self, lm: LatentLM, ref_model: nn.Module | None):
        self.lm, self.ref_model = lm, ref_model
        self.close_id = layout.think_close_id(lm.tokenizer, "think")

    @staticmethod
    def frozen_copy(base: nn.Module) -> nn.Module:
        ref = copy.deepcopy(base).eval()
        ref.requires_grad_(False)
        return ref

    def trainable(self) -> nn.Module:
        return self.lm.base

    @torch.no_grad()
    def rollout(self, prompts: list[str], K: int, decode: DecodeConfig) -> Rollout:
        base = self.lm.base
        was_training = base.training
        base.eval()  # KV-cached decoding (gradient checkpointing would turn the cache off in train mode)
        gens = self.lm.generate(prompts, replace(decode, mode="think"), repeats=K)
        base.train(was_training)
        batch = self.lm.encode_prompts(prompts, "think")
        comps, masks = [], []
        for g in gens:
            a = g.account
            ids = _with_eos(g)
            # ids = reasoning (n_reason, a natural </think> included) + forced + answer (+ EOS)
            m = [1] * a.reasoning_tokens + [0] * a.forced_tokens + [1] * (len(ids) - a.reasoning_tokens - a.forced_tokens)
            comps.append(ids)
            masks.append(m)
        return Rollout(prompts, K, batch, gens, comps, masks)

    def _sequence_logprobs(self, model: nn.Module, ro: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        dev = ro.batch.input_ids.device
        comp, mask = ro.padded(self.lm.pad_id, dev)  # [B, T]
        rep = ro.batch.repeat(ro.group_size)  # [B, L]
        L = rep.input_ids.shape[1]
        ids = torch.cat([rep.input_ids, comp], dim=1)  # [B, L+T]
        attn = torch.cat([rep.attention_mask, (comp != self.lm.pad_id) | (mask > 0)], dim=1).long()
        # Completion positions are real tokens even where the id equals the pad id.
        attn[:, L:] = 0
        for i, c in enumerate(ro.completions):
            attn[i, L : L + len(c)] = 1
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False).logits  # [B, L+T, V]
        logp = token_logprobs(logits[:, L - 1 : -1], comp)  # position L-1 predicts completion token 0
        return logp * mask, mask

    def logprobs(self, ro: Rollout, model: nn.Module, *, use_rollout_z: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        return self._sequence_logprobs(model, ro)

    @torch.no_grad()
    def ref_logprobs(self, ro: Rollout) -> torch.Tensor:
        return self._sequence_logprobs(self.ref_model, ro)[0]

    def reasoning_ids(self, ro: Rollout, row: int) -> list[int]:
        """The reasoning tokens of completion `row`, without a natural closing `</think>`."""
        reasoning = ro.completions[row][: ro.gens[row].account.reasoning_tokens]
        return reasoning[:-1] if reasoning and reasoning[-1] == self.close_id else reasoning

    def cut(self, ro: Rollout, row: int, keep_reasoning: int) -> None:
        """LC-R1: replace a completion by its first `keep_reasoning` reasoning tokens + `</think>` + its answer.

        The whole new sequence is then trained on as the policy's (its loss mask is all ones).
        """
        ids = ro.completions[row]
        a = ro.gens[row].account
        reasoning = self.reasoning_ids(ro, row)
        tail = ids[a.reasoning_tokens + a.forced_tokens :]  # the answer (+ EOS)
        if a.forced_tokens:
            # A forced close ended in "</think>\n\n"; a natural answer starts with its own blank line.
            tail = self.lm.tokenizer.encode("\n\n", add_special_tokens=False) + tail
        new = reasoning[:keep_reasoning] + [self.close_id] + tail
        ro.completions[row] = new
        ro.loss_masks[row] = [1] * len(new)

    def close_position(self, ro: Rollout, row: int) -> int | None:
        """Index of the policy's own `</think>` in completion `row` (None when the budget forced it)."""
        ids, m = ro.completions[row], ro.loss_masks[row]
        for i, t in enumerate(ids):
            if t == self.close_id:
                return i if m[i] else None
        return None
