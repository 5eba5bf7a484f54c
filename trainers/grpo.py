"""GRPO of the reasoning network G_φ (DESIGN §4.7), or of the base itself (`policy: explicit`).

    python -m trainers.grpo --config trainers/recipes/tiny/grpo.yaml [--key value ...]
    accelerate launch --config_file trainers/accelerate/multi_gpu.yaml -m trainers.grpo --config ...

One step: take P prompts, sample K completions each (z computed once per prompt, KV cache shared by
the group), grade them, turn the recipe's rewards into group-normalised advantages, then optimise the
clipped token-level objective with a k3 KL to the reference, `num_iterations` times over the batch.
The tensor math lives in `trainers/grpo_core.py`, the two policies in `trainers/policies.py`, the
rewards in `trainers/rewards.py`.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time

import torch

from lrt_bench.errors import LRTError
from lrt_bench.generation import DecodeConfig, LatentLM
from lrt_bench.grading import grade_math
from lrt_bench.io import METHOD_FILE, atomic_dir, atomic_write_json
from lrt_bench.reasoner import save_reasoner
from trainers import checkpoint as ckpt
from trainers import grpo_core, rewards
from trainers.common import (
    EpochOrder,
    RunLog,
    build_reasoner,
    check_inputs,
    environment_note,
    evaluate,
    grad_norm,
    load_base,
    make_accelerator,
    make_optimizer,
    make_scheduler,
    prepare_output_dir,
    resume,
    run_main,
    step_seed,
)
from trainers.config import GRPOConfig, resolve_path
from trainers.data import load_rows
from trainers.policies import ExplicitPolicy, LatentPolicy, Rollout


def build_policy(cfg: GRPOConfig, acc):
    """-> (policy, the module that trains, the LatentLM)."""
    explicit = cfg.policy == "explicit"
    base, tok = load_base(cfg, acc.device, trainable=explicit)
    if explicit:
        lm = LatentLM(base, tok)
        base.requires_grad_(True)  # LatentLM freezes the base; here the base is the policy
        if cfg.gradient_checkpointing:
            base.gradient_checkpointing_enable()
        ref = ExplicitPolicy.frozen_copy(base) if cfg.beta > 0 else None
        return ExplicitPolicy(lm, ref), base, lm
    net = build_reasoner(cfg, base).to(acc.device)
    net.train()
    if cfg.gradient_checkpointing:
        net.backbone.gradient_checkpointing_enable()
    ref = None
    if cfg.beta > 0:
        ref = build_reasoner(cfg, base).to(acc.device).eval()
        ref.load_state_dict(net.state_dict())  # the starting reasoner (the SFT one), frozen
        ref.requires_grad_(False)
    lm = LatentLM(base, tok, net)
    return LatentPolicy(lm, net, ref), net, lm


def lcr1_shaping(cfg: GRPOConfig, policy: ExplicitPolicy, ro: Rollout, golds: list[str], texts: list[str],
                 correct: list[bool], extractor) -> tuple[list[float], list[int]]:
    """LC-R1: cut right samples' reasoning at the valid prefix; compress bonus per sample (tokens)."""
    tok = policy.lm.tokenizer
    right = rewards.lcr1_right(texts, correct)
    think_tok, valid_tok = [], []
    for i in range(len(ro.gens)):
        reasoning_ids = policy.reasoning_ids(ro, i)
        reasoning = tok.decode(reasoning_ids, skip_special_tokens=True)
        chars = extractor.valid_length(ro.prompts[i // ro.group_size], reasoning, golds[i])
        think_tok.append(len(reasoning_ids))
        if chars is None:
            valid_tok.append(None)
            continue
        # characters -> tokens: the shortest prefix of the reasoning's tokens that covers `chars`. The
        # decoded length grows with the prefix, so bisect: O(log n) decodes, not one per token.
        lo, hi = 1, len(reasoning_ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if len(tok.decode(reasoning_ids[:mid], skip_special_tokens=True)) >= chars:
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
    out = prepare_output_dir(cfg, acc.is_main_process)
    acc.wait_for_everyone()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)

    # ---- policy (latent: G_φ over a frozen base; explicit: the base), reference, rewards
    policy, trainable, lm = build_policy(cfg, acc)
    extractor = None
    if any(s.name == "lcr1" for s in cfg.rewards):
        from trainers.extractors import build_extractor

        extractor = build_extractor(cfg.extractor)

    # ---- data: prompts within max_prompt_length
    lens = [len(lm.tokenizer.encode(t, add_special_tokens=False)) for t in lm.prefix_texts([r["problem"] for r in rows], policy.mode)]
    rows = [r for r, n in zip(rows, lens) if n <= cfg.max_prompt_length]
    skipped["too_long"] = len(lens) - len(rows)
    if not rows:
        raise LRTError(f"every prompt is longer than max_prompt_length={cfg.max_prompt_length}: raise it")

    K = cfg.num_generations
    world, rank = acc.num_processes, acc.process_index
    prompts_per_micro = cfg.prompts_per_step
    prompts_per_rank = prompts_per_micro * cfg.gradient_accumulation_steps
    total_updates = cfg.max_steps * cfg.num_iterations

    # ---- optimiser, schedule, resume
    params = [p for p in trainable.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg)
    scheduler = make_scheduler(optimizer, cfg, total_updates)
    start = resume(out, trainable, optimizer, scheduler) if cfg.resume else 0
    model, optimizer = acc.prepare(trainable, optimizer)
    order = EpochOrder(len(rows), cfg.seed)
    decode = DecodeConfig(
        mode=policy.mode, max_gen_toks=cfg.max_completion_length, answer_allowance=cfg.answer_allowance,
        temperature=cfg.temperature, top_p=cfg.top_p,
    )

    log = RunLog(out, cfg.max_steps, start, f"GRPO ({cfg.policy})", acc.is_main_process, cfg.progress)
    if acc.is_main_process and start == 0:
        log.log({"step": 0, "rows": len(rows), "skipped": skipped, "params_trained": sum(p.numel() for p in params),
                 "max_steps": cfg.max_steps, **environment_note()})

    # ---- the loop
    for step in range(start, cfg.max_steps):
        t0 = time.perf_counter()
        idx = order.indices(step, prompts_per_rank * world, rank, world)
        prompts = [rows[i]["problem"] for i in idx]
        golds = [rows[i]["answer"] for i in idx for _ in range(K)]

        # rollouts: P prompts x K samples, no gradients
        ro = policy.rollout(prompts, K, DecodeConfig(**{**decode.__dict__, "seed": step_seed(cfg.seed, step, rank)}))
        t_roll = time.perf_counter() - t0
        texts = [g.text for g in ro.gens]
        correct = [grade_math(t, a) for t, a in zip(texts, golds)]
        gen_tokens = [g.account.generated_tokens for g in ro.gens]
        reasoning_tokens = [g.account.reasoning_tokens for g in ro.gens]

        # rewards -> advantages (LC-R1 also cuts sequences and adds a bonus at </think>)
        bonus, lengths = None, gen_tokens
        if extractor is not None:
            bonus, lengths = lcr1_shaping(cfg, policy, ro, golds, texts, correct, extractor)
        total, per_reward = rewards.compute_rewards(
            cfg.rewards, completions=texts, answers=golds, group_size=K, correct=correct, lengths=lengths,
            reasoning_lengths=reasoning_tokens,
        )
        adv = grpo_core.group_advantages(torch.tensor(total), K, scale=cfg.scale_rewards).to(acc.device)  # [B]
        T = max(len(c) for c in ro.completions)
        adv_tok = adv[:, None].expand(-1, T).clone()  # [B, T]
        if bonus is not None:
            for i, b in enumerate(bonus):
                pos = policy.close_position(ro, i)
                if b and pos is not None:
                    adv_tok[i, pos] += b

        # old (rollout-time) and reference log-probs, per micro-batch of whole groups
        micro = [list(range(j, min(j + prompts_per_micro, len(prompts)))) for j in range(0, len(prompts), prompts_per_micro)]
        subs = [ro.subset(m) for m in micro]
        rows_of = [[p * K + k for p in m for k in range(K)] for m in micro]
        old, ref = [None] * len(subs), [None] * len(subs)
        with torch.no_grad(), acc.autocast():
            for j, sub in enumerate(subs):
                if cfg.num_iterations > 1:
                    old[j] = policy.logprobs(sub, model, use_rollout_z=True)[0]
                if cfg.beta > 0:
                    ref[j] = policy.ref_logprobs(sub)

        # optimisation passes over the rollout batch
        stats = {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0}
        gnorm = 0.0
        lr = scheduler.get_last_lr()[0]
        for _ in range(cfg.num_iterations):
            for j, sub in enumerate(subs):
                sync = contextlib.nullcontext() if j == len(subs) - 1 else acc.no_sync(model)
                with sync, acc.autocast():
                    logp, mask = policy.logprobs(sub, model)  # [b, t]
                    t = logp.shape[1]
                    a = adv_tok[rows_of[j], :t]
                    loss, st = grpo_core.grpo_loss(
                        logp, old[j] if old[j] is not None else logp.detach(), a, mask, epsilon=cfg.epsilon,
                        epsilon_high=cfg.epsilon_high, beta=cfg.beta, ref_logp=ref[j], loss_type=cfg.loss_type,
                    )
                    loss = loss / len(subs)
                acc.backward(loss)
                n = len(subs) * cfg.num_iterations
                stats["loss"] += float(loss.detach()) * len(subs) / n
                stats["kl"] += st.get("kl", 0.0) / n
                stats["clip_fraction"] += st["clip_fraction"] / n
            gnorm = grad_norm(params)
            if cfg.max_grad_norm > 0:
                acc.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - t0

        # ---- log, evaluate, checkpoint
        done = step + 1
        r = torch.tensor(total)
        record = {
            "step": done, "loss": stats["loss"], "reward": float(r.mean()), "reward_std": float(r.std(unbiased=False)),
            "accuracy": sum(correct) / len(correct), "kl": stats["kl"], "clip_fraction": stats["clip_fraction"],
            "grad_norm": gnorm, "lr": lr, "completion_tokens": sum(gen_tokens) / len(gen_tokens),
            "reasoning_tokens": sum(reasoning_tokens) / len(reasoning_tokens),
            "rollout_tokens_per_s": sum(gen_tokens) * world / max(t_roll, 1e-9),
            "tokens_per_s": sum(gen_tokens) * world / seconds, "seconds": seconds,
            **{f"reward_{k}": sum(v) / len(v) for k, v in per_reward.items()},
        }
        if cfg.eval_steps and (done % cfg.eval_steps == 0 or done == cfg.max_steps) and acc.is_main_process:
            record["eval_accuracy"] = evaluate(
                lm, eval_rows, mode=policy.mode, max_gen_toks=cfg.eval_max_gen_toks,
                batch_size=max(1, prompts_per_rank * K), answer_allowance=cfg.answer_allowance,
            )
        if done % cfg.logging_steps == 0 or done == cfg.max_steps or "eval_accuracy" in record:
            log.log(record)
        else:
            log.advance(done)
        if cfg.save_steps and done % cfg.save_steps == 0 and done < cfg.max_steps and acc.is_main_process:
            ckpt.save_checkpoint(out, done, acc.unwrap_model(model).state_dict(), optimizer, scheduler,
                                 cfg.to_dict(), keep=cfg.save_total_limit)
        if world > 1:
            acc.wait_for_everyone()
    log.close()

    # ---- the final policy: a reasoner in Core's format, or an HF model dir for the explicit one
    if acc.is_main_process:
        final = acc.unwrap_model(model)
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
                final.save_pretrained(tmp, safe_serialization=True)
                lm.tokenizer.save_pretrained(tmp)
                atomic_write_json(tmp / METHOD_FILE, {"method": method, "recipe": recipe})
        atomic_write_json(out / "train_summary.json", {"trainer": "grpo", "policy": cfg.policy, "steps": cfg.max_steps,
                                                       "rows": len(rows), "skipped": skipped, "output": str(where),
                                                       "seconds": round(time.perf_counter() - t_start, 1)})
        print(f"GRPO done: {cfg.policy} policy written to {where}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(run_main(main, GRPOConfig, "python -m trainers.grpo"))
