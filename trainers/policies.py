"""What GRPO trains, and how its sequences are built: the latent policy (LRT) or the explicit one.

Both policies offer the same three calls to `trainers/grpo.py`, which owns everything else (rewards,
advantages, the clipped loss, the optimiser):

    rollout(prompts, K, decode) -> Rollout        sample K completions per prompt, no gradients, eval mode
    logprobs(rollout, model, T) -> (logp, mask)   [B, T] per completion token, with gradients
    ref_logprobs(rollout, T)    -> logp           [B, T] under the frozen reference (for the KL)

Log-probs are of the sampling distribution: logits divided by the rollout's temperature T.

latent   (LRT, docs/design.md §4.7): φ trains. z = G_φ(H_X) is computed once per prompt; K answers are sampled
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

from lrt_bench.core import layout
from lrt_bench.core.generation import (
    DecodeConfig,
    Generation,
    LatentLM,
    PromptBatch,
    head_logprobs,
    plain_lm_head,
)


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

    @staticmethod
    def concat(parts: list[Rollout], batch: PromptBatch) -> Rollout:
        """Rollouts of consecutive chunks of prompts as one; `batch`: all their prompts, encoded together."""
        return Rollout(
            prompts=[q for p in parts for q in p.prompts], group_size=parts[0].group_size, batch=batch,
            gens=[g for p in parts for g in p.gens], completions=[c for p in parts for c in p.completions],
            loss_masks=[m for p in parts for m in p.loss_masks],
            z=None if parts[0].z is None else torch.cat([p.z for p in parts]),
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
        was_training = self.net.training
        self.net.eval()
        try:
            gens = self.lm.generate(prompts, replace(decode, mode="latent"), repeats=K)
        finally:
            self.net.train(was_training)
        z = torch.stack([g.latents for g in gens[::K]])  # [P, N, d], shared by the prompt's K samples
        batch = self.lm.encode_prompts(prompts, "latent")  # tokenisation only, for the log-prob passes
        comps = [_with_eos(g) for g in gens]
        return Rollout(prompts, K, batch, gens, comps, [[1] * len(c) for c in comps], z)

    def logprobs(self, ro: Rollout, model: nn.Module, temperature: float = 1.0, *,
                 use_rollout_z: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """log π(y_t) [B, T] of each answer token given [X, G_φ(H_X)] (or the rollout's z, no grad)."""
        logp, mask, _ = self.lm.answer_logprobs(
            ro.batch, ro.completions, repeats=ro.group_size, z=ro.z if use_rollout_z else None, reasoner=model,
            temperature=temperature,
        )
        return logp, mask

    @torch.no_grad()
    def ref_logprobs(self, ro: Rollout, temperature: float = 1.0) -> torch.Tensor:
        logp, _, _ = self.lm.answer_logprobs(ro.batch, ro.completions, repeats=ro.group_size, reasoner=self.ref_net,
                                             temperature=temperature)
        return logp


class CompletionScorer(nn.Module):
    """The explicit policy's trained module: the base, scoring completions.

    forward(ids [B, L+T], attention_mask, position_ids, completions [B, T], temperature) -> log-probs
    [B, T] of the completion tokens: the base's body, then its LM head in chunks (`head_logprobs`), so
    the vocabulary-sized logits never exist for the whole batch. DDP / DeepSpeed wrap this module, so
    the whole computation runs inside their forward. `.base` is the CausalLM that is saved.
    """

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base
        plain_lm_head(base)  # refuse a head that does more than a linear layer, now rather than mid-run

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                completions: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        body = getattr(self.base, self.base.base_model_prefix)
        h = body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                 use_cache=False).last_hidden_state  # [B, L+T, d]
        T = completions.shape[1]
        return head_logprobs(h[:, -T - 1 : -1], plain_lm_head(self.base), completions, temperature)  # position L-1 predicts token 0


class ExplicitPolicy:
    """Baselines: train the base's own reasoning in think mode (budget-forced)."""

    mode = "think"

    def __init__(self, lm: LatentLM, ref_model: nn.Module | None):
        self.lm = lm
        self.scorer = CompletionScorer(lm.base)  # shares the base's parameters
        self.ref = CompletionScorer(ref_model) if ref_model is not None else None
        self.close_id = layout.think_close_id(lm.tokenizer, "think")

    @staticmethod
    def frozen_copy(base: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
        """The reference: a frozen copy of the starting base, in `dtype` (the compute dtype: the fp32
        master weights are only needed where the optimizer steps)."""
        ref = copy.deepcopy(base).eval()
        ref.requires_grad_(False)
        return ref.to(dtype) if dtype is not None else ref

    def trainable(self) -> nn.Module:
        return self.scorer

    @torch.no_grad()
    def rollout(self, prompts: list[str], K: int, decode: DecodeConfig) -> Rollout:
        base = self.lm.base
        was_training = base.training
        base.eval()  # KV-cached decoding (gradient checkpointing would turn the cache off in train mode)
        try:
            gens = self.lm.generate(prompts, replace(decode, mode="think"), repeats=K)
        finally:
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

    def _sequence_logprobs(self, scorer: nn.Module, ro: Rollout, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        dev = ro.batch.input_ids.device
        comp, mask = ro.padded(self.lm.pad_id, dev)  # [B, T]
        rep = ro.batch.repeat(ro.group_size)  # [B, L]
        ids = torch.cat([rep.input_ids, comp], dim=1)  # [B, L+T]
        # Completion positions are real tokens wherever a completion has one (even an id equal to the pad id).
        lens = torch.tensor([len(c) for c in ro.completions], device=dev)  # [B]
        comp_attn = torch.arange(comp.shape[1], device=dev)[None, :] < lens[:, None]  # [B, T]
        attn = torch.cat([rep.attention_mask.long(), comp_attn.long()], dim=1)  # [B, L+T]
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        logp = scorer(ids, attn, pos, comp, temperature)  # [B, T]
        return logp * mask, mask

    def logprobs(self, ro: Rollout, model: nn.Module, temperature: float = 1.0, *,
                 use_rollout_z: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """`model`: the prepared (DDP-wrapped) `trainable()`."""
        return self._sequence_logprobs(model, ro, temperature)

    @torch.no_grad()
    def ref_logprobs(self, ro: Rollout, temperature: float = 1.0) -> torch.Tensor:
        return self._sequence_logprobs(self.ref, ro, temperature)[0]

    def reasoning_ids(self, ro: Rollout, row: int) -> list[int]:
        """The reasoning tokens of completion `row`, without a natural closing `</think>`."""
        return layout.split_reasoning(ro.completions[row], ro.gens[row].account.reasoning_tokens, self.close_id)[0]

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
