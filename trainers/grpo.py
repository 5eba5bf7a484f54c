"""GRPO of the reasoning network G_φ (docs/design.md §4.7), or of the base itself (`policy: explicit`).

    python -m trainers.grpo --config trainers/recipes/tiny/grpo.yaml [--key value ...]
    accelerate launch --config_file trainers/accelerate/multi_gpu.yaml -m trainers.grpo --config ...

One step: take P prompts, sample K completions each (z computed once per prompt, KV cache shared by
the group), grade them, turn the recipe's rewards into group-normalised advantages, then optimise the
clipped token-level objective with a k3 KL to the reference, `num_iterations` times over the batch.
Rollouts are generated `generation_batch_size` completions at a time (bounding the KV cache), the
updates accumulate over micro-batches of `per_device_train_batch_size` completions with accelerate's
own accumulation (right under DDP and DeepSpeed alike), and log-probs are of the sampling
distribution (logits / temperature). One step is `grpo_step`, which bench/grpo_gpu.py also calls. The
tensor math lives in `trainers/grpo_core.py`, the two policies in `trainers/policies.py`, the
rewards in `trainers/rewards.py`.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrt_bench.core.generation import DecodeConfig, LatentLM
from lrt_bench.core.reasoner import save_reasoner
from lrt_bench.errors import LRTError
from lrt_bench.eval.grading import grade_math
from lrt_bench.io import METHOD_FILE, atomic_dir, atomic_write_json
from trainers import checkpoint as ckpt
from trainers import grpo_core, rewards
from trainers.accelerator import check_synced, make_accelerator, prepare
from trainers.cli import run_main
from trainers.config import GRPOConfig, resolve_path
from trainers.data import load_rows
from trainers.models import base_dtype, build_reasoner, load_base
from trainers.optim import grad_norm, make_optimizer, make_scheduler, optimizer_steps
from trainers.order import EpochOrder, step_seed
from trainers.output import check_inputs, prepare_output_dir, record_resumed_config
from trainers.policies import ExplicitPolicy, LatentPolicy, Rollout
from trainers.runlog import RunLog, environment_note, evaluate


def build_policy(cfg: GRPOConfig, acc):
    """-> (policy, the module that trains, the LatentLM)."""
    explicit = cfg.policy == "explicit"
    base, tok = load_base(cfg, acc.device, trainable=explicit)
    if explicit:
        lm = LatentLM(base, tok)  # (puts the base in eval mode and freezes it: undone below)
        base.requires_grad_(True)  # here the base is the policy
        base.train()  # the log-prob passes run in train mode: transformers checkpoints only in it
        if cfg.gradient_checkpointing:
            base.gradient_checkpointing_enable()
        ref = ExplicitPolicy.frozen_copy(base, base_dtype(cfg, acc.device)) if cfg.beta > 0 else None
        policy = ExplicitPolicy(lm, ref)
        return policy, policy.trainable(), lm
    net = build_reasoner(cfg, base).to(acc.device)
    net.train()
    if cfg.gradient_checkpointing:
        net.backbone.gradient_checkpointing_enable()
    ref = None
    if cfg.beta > 0:
        ref = build_reasoner(cfg, base).to(acc.device).eval()
        ref.load_state_dict(net.state_dict())  # the starting reasoner (the SFT one), frozen
        ref.requires_grad_(False).to(base_dtype(cfg, acc.device))
    lm = LatentLM(base, tok, net)
    return LatentPolicy(lm, net, ref), net, lm


@dataclass
class GRPORun:
    """What a GRPO step needs, built once (`setup`); `grpo_step` uses it, as bench/grpo_gpu.py does."""

    cfg: GRPOConfig
    acc: Any  # accelerate.Accelerator
    policy: LatentPolicy | ExplicitPolicy
    model: nn.Module  # the trained module as `acc.prepare` wrapped it (DDP, DeepSpeed)
    optimizer: torch.optim.Optimizer
    scheduler: Any
    params: list[nn.Parameter]
    decode: DecodeConfig  # the rollouts' sampling (the seed is set per chunk)
    extractor: Any = None  # LC-R1's valid-prefix finder


def setup(cfg: GRPOConfig, acc, out: Path | None = None) -> tuple[GRPORun, int]:
    """Policy, reference, extractor, optimiser and schedule; resumed from `out` with --resume.

    Returns (the run, the step to start from).
    """
    policy, trainable, lm = build_policy(cfg, acc)
    extractor = None
    if any(s.name == "lcr1" for s in cfg.rewards):
        from trainers.extractors import build_extractor

        extractor = build_extractor(cfg.extractor)
    params = [p for p in trainable.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg)
    scheduler = make_scheduler(optimizer, cfg, cfg.max_steps * cfg.num_iterations)
    start = ckpt.resume(out, trainable, optimizer, scheduler) if cfg.resume and out is not None else 0
    if cfg.resume and out is not None:
        record_resumed_config(cfg, out, acc)
    model, optimizer = prepare(acc, cfg, trainable, optimizer)
    decode = DecodeConfig(
        mode=policy.mode, max_gen_toks=cfg.max_completion_length, answer_allowance=cfg.answer_allowance,
        temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
    )
    return GRPORun(cfg, acc, policy, model, optimizer, scheduler, params, decode, extractor), start


def lcr1_shaping(policy: ExplicitPolicy, ro: Rollout, golds: list[str], texts: list[str], correct: list[bool],
                 extractor) -> tuple[list[float], list[int]]:
    """LC-R1: cut right samples' reasoning at the valid prefix; compress bonus per sample (tokens).

    golds, texts, correct: one per completion of `ro`. The extractor sees the whole step in one call
    (the LLM extractor batches it).
    """
    tok = policy.lm.tokenizer
    right = rewards.lcr1_right(texts, correct)
    ids = [policy.reasoning_ids(ro, i) for i in range(len(ro.gens))]
    reasonings = [tok.decode(r, skip_special_tokens=True) for r in ids]
    problems = [ro.prompts[i // ro.group_size] for i in range(len(ro.gens))]
    chars = extractor.valid_lengths(problems, reasonings, golds)
    think_tok = [len(r) for r in ids]
    valid_tok: list[int | None] = []
    for reasoning_ids, c in zip(ids, chars):
        if c is None:
            valid_tok.append(None)
            continue
        # characters -> tokens: the shortest prefix of the reasoning's tokens that covers `c`. The
        # decoded length grows with the prefix, so bisect: O(log n) decodes, not one per token.
        lo, hi = 1, len(reasoning_ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if len(tok.decode(reasoning_ids[:mid], skip_special_tokens=True)) >= c:
                hi = mid
            else:
                lo = mid + 1
        valid_tok.append(hi)
    bonus = rewards.lcr1_compress(right, valid_tok, think_tok)
    cuts = rewards.cut_positions(right, valid_tok, think_tok)
    for i, c in enumerate(cuts):
        if c is not None:
            policy.cut(ro, i, c)
    return bonus, [len(c) for c in ro.completions]


def grpo_step(run: GRPORun, prompts: list[str], golds: list[str], step: int, positions: list[int],
              score: Callable[[list[str], list[str], list[bool]], list[float]] | None = None) -> dict[str, Any]:
    """One GRPO step on this process's P prompts: roll out, score, `num_iterations` optimizer updates.

    golds: one per prompt. positions[p]: prompt p's index in the step's global batch; it seeds the
    prompt's rollout chunk, so samples depend on (seed, step, position) and not on how many processes
    share the batch. `score(texts, golds, correct) -> rewards` replaces the recipe's rewards (the GPU
    check: random weights answer nothing right). Returns the step's statistics for the log.
    """
    cfg, acc, policy = run.cfg, run.acc, run.policy
    K, world = cfg.num_generations, acc.num_processes
    t0 = time.perf_counter()

    # ---- rollouts in chunks of generation_batch_size completions (whole groups), no gradients
    per_gen = cfg.prompts_per_generation
    chunks: list[Rollout] = []
    for c in range(0, len(prompts), per_gen):
        with acc.autocast():
            chunks.append(policy.rollout(prompts[c : c + per_gen], K,
                                         replace(run.decode, seed=step_seed(cfg.seed, step, positions[c]))))
    # [P prompts, B = P*K completions]; several chunks need the step's prompts padded together
    ro = chunks[0] if len(chunks) == 1 else Rollout.concat(chunks, policy.lm.encode_prompts(prompts, policy.mode))
    t_roll = time.perf_counter() - t0
    golds_k = [a for a in golds for _ in range(K)]  # [B]
    texts = [g.text for g in ro.gens]
    correct = [grade_math(t, a) for t, a in zip(texts, golds_k)]
    gen_tokens = [g.account.generated_tokens for g in ro.gens]
    reasoning_tokens = [g.account.reasoning_tokens for g in ro.gens]

    # ---- rewards -> advantages (LC-R1 also cuts sequences and adds a bonus at </think>)
    bonus: list[float] | None = None
    lengths = gen_tokens
    if run.extractor is not None:
        bonus, lengths = lcr1_shaping(policy, ro, golds_k, texts, correct, run.extractor)
    if score is not None:
        total, per_reward = score(texts, golds_k, correct), {}
    else:
        total, per_reward = rewards.compute_rewards(
            cfg.rewards, completions=texts, answers=golds_k, group_size=K, correct=correct, lengths=lengths,
            reasoning_lengths=reasoning_tokens,
        )
    adv = grpo_core.group_advantages(torch.tensor(total), K, scale=cfg.scale_rewards).to(acc.device)  # [B]

    # ---- micro-batches of whole groups: (rollout, rows into the step's B completions)
    micro: list[tuple[Rollout, list[int]]] = []
    for j in range(0, len(prompts), cfg.prompts_per_step):
        idx = list(range(j, min(j + cfg.prompts_per_step, len(prompts))))
        micro.append((ro.subset(idx), [p * K + k for p in idx for k in range(K)]))

    def token_advantages(sub: Rollout, rows: list[int], t: int) -> torch.Tensor:
        a = adv[rows][:, None].expand(-1, t).clone()  # [b, t]
        for i, r in enumerate(rows):
            pos = policy.close_position(sub, i) if bonus is not None and bonus[r] else None
            if pos is not None and pos < t:
                a[i, pos] += bonus[r]
        return a

    # dapo: the loss-mask tokens of the whole step, over every micro-batch and process
    num_items = 0.0
    if cfg.loss_type == "dapo":
        n = torch.tensor(float(sum(sum(m) for sub, _ in micro for m in sub.loss_masks)), device=acc.device)
        num_items = float(acc.reduce(n, reduction="sum")) if world > 1 else float(n)
    # accelerate divides each micro-batch's loss by the accumulation steps and DDP averages over the
    # processes; dapo's shares are already fractions of the step's total, so undo both.
    loss_scale = cfg.gradient_accumulation_steps * world if cfg.loss_type == "dapo" else 1.0

    # ---- old (rollout-time) and reference log-probs, no gradients
    old: list[torch.Tensor | None] = [None] * len(micro)
    ref: list[torch.Tensor | None] = [None] * len(micro)
    with torch.no_grad(), acc.autocast():
        for j, (sub, _) in enumerate(micro):
            if cfg.num_iterations > 1:
                old[j] = policy.logprobs(sub, run.model, cfg.temperature, use_rollout_z=True)[0]
            if cfg.beta > 0:
                ref[j] = policy.ref_logprobs(sub, cfg.temperature)

    # ---- num_iterations updates, each accumulated over the micro-batches (accelerate's accumulation)
    stats = {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0}  # this process's; combined across processes below
    n_terms = len(micro) * cfg.num_iterations
    gnorm = 0.0
    lr = run.scheduler.get_last_lr()[0]
    for _ in range(cfg.num_iterations):
        for j, (sub, rows) in enumerate(micro):
            with acc.accumulate(run.model), acc.autocast():
                logp, mask = policy.logprobs(sub, run.model, cfg.temperature)  # [b, t]
                a = token_advantages(sub, rows, logp.shape[1])
                loss, st = grpo_core.grpo_loss(
                    logp, old[j] if old[j] is not None else logp.detach(), a, mask, epsilon=cfg.epsilon,
                    epsilon_high=cfg.epsilon_high, beta=cfg.beta, ref_logp=ref[j], loss_type=cfg.loss_type,
                    max_completion_length=cfg.max_completion_length, num_items=num_items,
                )
                acc.backward(loss * loss_scale)
            # dapo: the micro-batches' shares add up to the step's loss; otherwise they average to it
            stats["loss"] += float(loss.detach()) / (cfg.num_iterations if cfg.loss_type == "dapo" else n_terms)
            stats["kl"] += st.get("kl", 0.0) / n_terms
            stats["clip_fraction"] += st["clip_fraction"] / n_terms
        check_synced(acc)
        gnorm = grad_norm(run.params)
        if cfg.max_grad_norm > 0:
            acc.clip_grad_norm_(run.params, cfg.max_grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - t0

    # ---- the step's statistics over every process (each holds the same number of completions)
    per_row = {"reward": total, "accuracy": [float(c) for c in correct], "completion_tokens": gen_tokens,
               "reasoning_tokens": reasoning_tokens, **{f"reward_{k}": v for k, v in per_reward.items()}}
    names = list(per_row)
    rows_all = torch.tensor([per_row[k] for k in names], dtype=torch.float64, device=acc.device)  # [F, B]
    scalars = torch.tensor([stats["loss"], stats["kl"], stats["clip_fraction"]], dtype=torch.float64, device=acc.device)
    if world > 1:
        rows_all = acc.gather(rows_all.T.contiguous()).T  # [F, B * world]
        scalars = acc.reduce(scalars, reduction="sum")
        scalars[0] = scalars[0] if cfg.loss_type == "dapo" else scalars[0] / world
        scalars[1:] /= world
    means = {k: float(rows_all[i].mean()) for i, k in enumerate(names)}
    n_tok = float(rows_all[names.index("completion_tokens")].sum())
    return {
        "loss": float(scalars[0]), "reward": means["reward"], "reward_std": float(rows_all[0].std(unbiased=False)),
        "accuracy": means["accuracy"], "kl": float(scalars[1]), "clip_fraction": float(scalars[2]),
        "grad_norm": gnorm, "lr": lr, "completion_tokens": means["completion_tokens"],
        "reasoning_tokens": means["reasoning_tokens"], "rollout_tokens_per_s": n_tok / max(t_roll, 1e-9),
        "tokens_per_s": n_tok / seconds, "seconds": seconds, "rollout_seconds": t_roll,
        **{k: means[k] for k in names if k.startswith("reward_")},
    }


def main(cfg: GRPOConfig) -> None:
    t_start = time.perf_counter()
    # ---- set-up: devices, data (read first: a bad dataset must not leave an output dir), output dir, seeds
    acc = make_accelerator(cfg)
    rows, skipped = load_rows(
        cfg.dataset, config=cfg.dataset_config, split=cfg.dataset_split, problem_field=cfg.problem_field,
        answer_field=cfg.answer_field, max_samples=cfg.max_samples, where=cfg.dataset_where,
    )
    eval_rows = load_rows(cfg.eval_dataset)[0][: cfg.eval_samples] if cfg.eval_steps else []
    check_inputs(cfg)
    out = prepare_output_dir(cfg, acc)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)

    # ---- policy (latent: G_φ over a frozen base; explicit: the base), reference, rewards, optimiser
    run, start = setup(cfg, acc, out)
    lm = run.policy.lm

    # ---- data: prompts within max_prompt_length
    lens = [len(lm.tokenizer.encode(t, add_special_tokens=False))
            for t in lm.prefix_texts([r["problem"] for r in rows], run.policy.mode)]
    rows = [r for r, n in zip(rows, lens) if n <= cfg.max_prompt_length]
    skipped["too_long"] = len(lens) - len(rows)
    if not rows:
        raise LRTError(f"every prompt is longer than max_prompt_length={cfg.max_prompt_length}: raise it")

    K = cfg.num_generations
    world, rank = acc.num_processes, acc.process_index
    prompts_per_rank = cfg.prompts_per_step * cfg.gradient_accumulation_steps
    order = EpochOrder(len(rows), cfg.seed)

    log = RunLog(out, cfg.max_steps, start, f"GRPO ({cfg.policy})", acc.is_main_process, cfg.progress)
    if acc.is_main_process and start == 0:
        log.log({"step": 0, "rows": len(rows), "skipped": skipped, "params_trained": sum(p.numel() for p in run.params),
                 "max_steps": cfg.max_steps, **environment_note()})

    # ---- the loop
    for step in range(start, cfg.max_steps):
        idx = order.indices(step, prompts_per_rank * world, rank, world)
        positions = [rank + world * i for i in range(len(idx))]  # where this rank's prompts sit in the global batch
        record = {"step": step + 1, **grpo_step(run, [rows[i]["problem"] for i in idx],
                                                [rows[i]["answer"] for i in idx], step, positions)}

        # ---- log, evaluate, checkpoint
        done = step + 1
        if cfg.eval_steps and (done % cfg.eval_steps == 0 or done == cfg.max_steps) and acc.is_main_process:
            record["eval_accuracy"] = evaluate(
                lm, eval_rows, mode=run.policy.mode, max_gen_toks=cfg.eval_max_gen_toks,
                batch_size=max(1, prompts_per_rank * K), answer_allowance=cfg.answer_allowance,
            )
        if done % cfg.logging_steps == 0 or done == cfg.max_steps or "eval_accuracy" in record:
            log.log(record)
        else:
            log.advance(done)
        if cfg.save_steps and done % cfg.save_steps == 0 and done < cfg.max_steps and acc.is_main_process:
            ckpt.save_checkpoint(out, done, acc.unwrap_model(run.model).state_dict(), run.optimizer, run.scheduler,
                                 cfg.to_dict(), keep=cfg.save_total_limit)
        if world > 1:
            acc.wait_for_everyone()
    log.close()

    # ---- the final policy: a reasoner checkpoint (`save_reasoner`), or an HF model dir for the explicit one
    if acc.is_main_process:
        final = acc.unwrap_model(run.model)
        recipe = {"trainer": "grpo", **cfg.to_dict()}
        if cfg.policy == "latent":
            where = save_reasoner(final.eval(), out / "reasoner", base_id=resolve_path(cfg.base),
                                  base_revision=cfg.base_revision, recipe=recipe, step=cfg.max_steps)
        else:
            where = out / "model"
            names = {s.name for s in cfg.rewards}
            method = cfg.method or ("ShorterBetter" if "shorterbetter" in names else "LC-R1" if "lcr1" in names
                                    else "GRPO (explicit)")
            with atomic_dir(where) as tmp:
                final.base.save_pretrained(tmp, safe_serialization=True)  # the CompletionScorer's CausalLM
                lm.tokenizer.save_pretrained(tmp)
                atomic_write_json(tmp / METHOD_FILE, {"method": method, "recipe": recipe})
        atomic_write_json(out / "train_summary.json", {
            "trainer": "grpo", "policy": cfg.policy, "steps": cfg.max_steps, "optimizer_steps": optimizer_steps(run.optimizer),
            "processes": world, "rows": len(rows), "skipped": skipped, "output": str(where),
            "seconds": round(time.perf_counter() - t_start, 1)})
        print(f"GRPO done: {cfg.policy} policy written to {where}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(run_main(main, GRPOConfig, "python -m trainers.grpo"))
