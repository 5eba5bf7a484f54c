"""SFT of the reasoning network G_φ (docs/design.md §4.7).

    python -m trainers.sft --config trainers/recipes/tiny/sft.yaml [--key value ...]
    accelerate launch --config_file trainers/accelerate/multi_gpu.yaml -m trainers.sft --config ...

loss = −log P_θ(Y | [X, G_φ(H_X)]), averaged over the answer tokens Y (EOS included, so the base
learns to stop); the base θ is frozen in eval mode and only φ trains. Reads top to bottom:
set-up, data, model, optimiser, (resume), the loop, the final reasoner.
"""

from __future__ import annotations

import math
import random
import sys
import time

import torch

from lrt_bench.core.generation import LatentLM
from lrt_bench.core.reasoner import save_reasoner
from lrt_bench.errors import LRTError
from lrt_bench.io import atomic_write_json
from trainers import checkpoint as ckpt
from trainers.accelerator import check_synced, make_accelerator, prepare
from trainers.cli import run_main
from trainers.config import SFTConfig, resolve_path
from trainers.data import load_rows
from trainers.models import build_reasoner, load_base
from trainers.optim import grad_norm, make_optimizer, make_scheduler, optimizer_steps
from trainers.order import EpochOrder
from trainers.output import check_inputs, prepare_output_dir, record_resumed_config
from trainers.runlog import RunLog, environment_note, evaluate


def main(cfg: SFTConfig) -> None:
    t_start = time.perf_counter()
    # ---- set-up: devices, data (read first: a bad dataset must not leave an output dir), output dir, seeds
    acc = make_accelerator(cfg)
    rows, skipped = load_rows(
        cfg.dataset, config=cfg.dataset_config, split=cfg.dataset_split, problem_field=cfg.problem_field,
        answer_field=cfg.answer_field, target_field=cfg.target_field, max_samples=cfg.max_samples, where=cfg.dataset_where,
    )
    eval_rows = load_rows(cfg.eval_dataset)[0][: cfg.eval_samples] if cfg.eval_steps else []
    check_inputs(cfg)
    out = prepare_output_dir(cfg, acc)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)

    # ---- the frozen base and a new (or warm-started) G_φ
    base, tok = load_base(cfg, acc.device)
    net = build_reasoner(cfg, base).to(acc.device)
    net.train()
    if cfg.gradient_checkpointing:
        net.backbone.gradient_checkpointing_enable()
    lm = LatentLM(base, tok, net)
    eos = tok.eos_token_id if tok.eos_token_id is not None else lm.eos_ids[0]

    # ---- data: prompts and answer token ids, over-long rows dropped (and counted)
    answers = [tok.encode(r["target"], add_special_tokens=False) + [eos] for r in rows]
    prompt_lens = [len(tok.encode(t, add_special_tokens=False)) for t in lm.prefix_texts([r["problem"] for r in rows], "latent")]
    keep = [i for i in range(len(rows)) if prompt_lens[i] <= cfg.max_prompt_length and len(answers[i]) <= cfg.max_answer_length]
    skipped["too_long"] = len(rows) - len(keep)
    rows, answers = [rows[i] for i in keep], [answers[i] for i in keep]
    if not rows:
        raise LRTError(f"every row is longer than max_prompt_length / max_answer_length ({skipped}): raise them")

    world, rank = acc.num_processes, acc.process_index
    global_batch = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * world
    max_steps = cfg.max_steps
    if cfg.num_train_epochs > 0:
        max_steps = math.ceil(cfg.num_train_epochs * len(rows) / global_batch)

    # ---- optimiser, schedule, resume
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg)
    scheduler = make_scheduler(optimizer, cfg, max_steps)
    start = ckpt.resume(out, net, optimizer, scheduler) if cfg.resume else 0
    if cfg.resume:
        record_resumed_config(cfg, out, acc)
    model, optimizer = prepare(acc, cfg, net, optimizer)
    order = EpochOrder(len(rows), cfg.seed)

    log = RunLog(out, max_steps, start, "SFT", acc.is_main_process, cfg.progress)
    if acc.is_main_process and start == 0:
        log.log({"step": 0, "rows": len(rows), "skipped": skipped, "params_phi": sum(p.numel() for p in params),
                 "max_steps": max_steps, **environment_note()})

    # ---- the loop
    for step in range(start, max_steps):
        t0 = time.perf_counter()
        # The mean NLL per answer token of the whole global batch: each rank divides its sum by the
        # global count (all ranks know the whole batch), times `world` because DDP averages over ranks,
        # so any split over processes and micro-batches gives the same update.
        step_rows = order.indices(step, global_batch)  # the whole global batch
        n_tok = sum(len(answers[i]) for i in step_rows)
        idx = step_rows[rank::world]  # this rank's share, as EpochOrder deals it
        micro = [idx[j : j + cfg.per_device_train_batch_size] for j in range(0, len(idx), cfg.per_device_train_batch_size)]
        loss_sum = 0.0
        for m in micro:
            # accelerate's accumulation: no all-reduce (DDP) and no engine step (DeepSpeed) until the last
            # micro-batch; `backward` divides by gradient_accumulation_steps, which the factor undoes.
            with acc.accumulate(model), acc.autocast():
                logp, mask, _ = lm.answer_logprobs([rows[i]["problem"] for i in m], [answers[i] for i in m], reasoner=model)
                loss = -logp.sum() / n_tok  # this micro-batch's share of the step's mean NLL
                acc.backward(loss * world * cfg.gradient_accumulation_steps)
            loss_sum += float(loss.detach())
        if world > 1:
            loss_sum = float(acc.reduce(torch.tensor(loss_sum, device=acc.device), reduction="sum"))
        check_synced(acc)
        gnorm = grad_norm(params)
        if cfg.max_grad_norm > 0:
            acc.clip_grad_norm_(params, cfg.max_grad_norm)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - t0

        done = step + 1
        record = {"step": done, "loss": loss_sum, "grad_norm": gnorm, "lr": lr,
                  "tokens_per_s": n_tok * world / seconds, "seconds": seconds}
        if cfg.eval_steps and (done % cfg.eval_steps == 0 or done == max_steps) and acc.is_main_process:
            record["eval_accuracy"] = evaluate(lm, eval_rows, mode="latent", max_gen_toks=cfg.eval_max_gen_toks,
                                               batch_size=max(1, cfg.per_device_train_batch_size))
        if done % cfg.logging_steps == 0 or done == max_steps or "eval_accuracy" in record:
            log.log(record)
        else:
            log.advance(done)
        if cfg.save_steps and done % cfg.save_steps == 0 and done < max_steps and acc.is_main_process:
            ckpt.save_checkpoint(out, done, acc.unwrap_model(model).state_dict(), optimizer, scheduler,
                                 cfg.to_dict(), keep=cfg.save_total_limit)
        if world > 1:
            acc.wait_for_everyone()
    log.close()

    # ---- the final reasoner, in the checkpoint format `load_reasoner` reads
    if acc.is_main_process:
        final = acc.unwrap_model(model).eval()
        save_reasoner(final, out / "reasoner", base_id=resolve_path(cfg.base), base_revision=cfg.base_revision,
                      recipe={"trainer": "sft", **cfg.to_dict()}, step=max_steps)
        atomic_write_json(out / "train_summary.json", {"trainer": "sft", "steps": max_steps, "processes": world,
                                                       "optimizer_steps": optimizer_steps(optimizer), "rows": len(rows),
                                                       "skipped": skipped, "reasoner": str(out / "reasoner"),
                                                       "seconds": round(time.perf_counter() - t_start, 1)})
        print(f"SFT done: reasoner written to {out / 'reasoner'}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(run_main(main, SFTConfig, "python -m trainers.sft"))
