"""The Accelerator a trainer runs under (single GPU, DDP or DeepSpeed ZeRO-2): making it, preparing model
and optimiser for it, and checking that each step ends at its accumulation boundary."""

from __future__ import annotations

import os

import torch
from torch import nn

from lrt_bench.errors import LRTError
from trainers.config import TrainConfig


def make_accelerator(cfg: TrainConfig):
    """One Accelerator for single-GPU, DDP and DeepSpeed ZeRO-2 (chosen by `accelerate launch`).

    Gradient accumulation is accelerate's own (`accumulate()`): under DDP it skips the all-reduce on
    all but the last micro-batch, and under ZeRO-2, where `no_sync` is a no-op and every `backward`
    would step the engine, it tells the engine which micro-batch ends the step.
    """
    from accelerate import Accelerator

    if cfg.torch_threads and not torch.cuda.is_available():
        torch.set_num_threads(cfg.torch_threads)
    use_bf16 = cfg.bf16 if cfg.bf16 is not None else torch.cuda.is_available()
    if use_bf16 and not torch.cuda.is_available() and cfg.bf16:
        raise LRTError("bf16: true needs a GPU here; drop it on CPU (autocast is on by default on GPU)")
    acc = Accelerator(mixed_precision="bf16" if use_bf16 else "no",
                      gradient_accumulation_steps=cfg.gradient_accumulation_steps)
    launched = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if launched != acc.num_processes:
        # e.g. `accelerate launch --multi_gpu` without a GPU: every process would train alone, all into
        # one output directory
        raise LRTError(
            f"{launched} processes were launched but accelerate set up {acc.num_processes}: on CPU launch with "
            "`ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N ...` (gloo)"
        )
    if acc.distributed_type.name == "DEEPSPEED" and (cfg.save_steps or cfg.resume):
        # ZeRO shards the optimizer state; our checkpoints hold it whole, in safetensors (no pickle).
        raise LRTError(
            "resumable checkpoints are not supported under DeepSpeed ZeRO (sharded optimizer state): set "
            "--save_steps 0 and drop --resume, or use trainers/accelerate/multi_gpu.yaml (DDP)"
        )
    return acc


def prepare(acc, cfg: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer):
    """`acc.prepare(model, optimizer)`, after giving DeepSpeed what it cannot infer without a dataloader.

    The recipe is the one source of the micro-batch, the accumulation and the clipping: a DeepSpeed
    config that sets them to other values is refused rather than silently preferred (accelerate would
    take DeepSpeed's accumulation steps over ours with only a warning).
    """
    if acc.distributed_type.name == "DEEPSPEED":
        ds = acc.state.deepspeed_plugin.deepspeed_config
        want = {"train_micro_batch_size_per_gpu": cfg.per_device_train_batch_size,
                "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
                "gradient_clipping": cfg.max_grad_norm}
        for key, value in want.items():
            have = ds.get(key, "auto")
            if have == "auto":
                ds[key] = value
            elif float(have) != float(value):
                raise LRTError(f"the DeepSpeed config sets {key}: {have}, the recipe {value}: remove the key from "
                               "the DeepSpeed config (the recipe fills it) or make them equal")
    return acc.prepare(model, optimizer)


def check_synced(acc) -> None:
    """After a step's micro-batches: accelerate must be at the accumulation boundary (one update per step)."""
    if not acc.sync_gradients:
        raise RuntimeError(
            f"gradient accumulation out of step: the last micro-batch did not reach the boundary of "
            f"{acc.gradient_accumulation_steps} steps (a DeepSpeed config overrode gradient_accumulation_steps?)"
        )
