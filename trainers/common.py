"""What SFT and GRPO share: command line, output dir, models, G_φ, optimiser, data order, logging.

Both trainers read top to bottom and call these helpers; nothing here knows which loss is trained.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrt_bench.core import models
from lrt_bench.errors import LRTError
from lrt_bench.io import atomic_write_json, check_writable_dir
from trainers.config import TrainConfig, parse_overrides, resolve_path

# ----------------------------------------------------------------------------------- command line


def parse_cli(cls: type[TrainConfig], argv: list[str] | None, prog: str) -> TrainConfig:
    """`--config RECIPE.yaml` plus `--key value` overrides of any recipe key."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=f"{cls.__doc__.splitlines()[0]} Any recipe key can be overridden with --key value.",
        epilog="Common overrides: --base, --reasoner, --dataset, --max_steps, --output_dir, --resume, --overwrite",
    )
    p.add_argument("--config", help="recipe YAML (trainers/recipes/...)")
    args, rest = p.parse_known_args(argv)
    return cls.load(args.config, parse_overrides(rest))


def run_main(main, cls: type[TrainConfig], prog: str, argv: list[str] | None = None) -> int:
    """Run a trainer; an LRTError prints one line and exits 2 (no traceback for bad input).

    A fresh run that fails before its first checkpoint leaves no output directory behind (so the
    same command can be rerun as it was); one that fails later keeps its checkpoints for --resume.
    """
    cfg = None
    created = False
    try:
        cfg = parse_cli(cls, argv, prog)
        out = Path(cfg.output_dir).expanduser()
        # this run makes the dir: it is new, empty, or replaced (--overwrite)
        created = not cfg.resume and (not out.exists() or cfg.overwrite or (out.is_dir() and not any(out.iterdir())))
        main(cfg)
    except RunComplete as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 0
    except LRTError as e:
        print(f"{prog}: error: {e}{_cleanup(cfg, created)}", file=sys.stderr)
        return 2
    except BaseException:
        note = _cleanup(cfg, created)
        if note:
            print(f"{prog}:{note}", file=sys.stderr)
        raise
    return 0


def _cleanup(cfg: TrainConfig | None, created: bool) -> str:
    """After a failure: remove an output dir this run created that holds no checkpoint; say what was kept."""
    from trainers import checkpoint as ckpt

    if cfg is None or not created or os.environ.get("RANK", "0") not in ("", "0"):
        return ""
    out = Path(cfg.output_dir).expanduser()
    if not out.is_dir():
        return ""
    if ckpt.latest_checkpoint(out) is not None:
        return f" (its checkpoints are kept in {out}: add --resume to continue the run)"
    shutil.rmtree(out, ignore_errors=True)
    return ""


def check_inputs(cfg: TrainConfig) -> None:
    """What can be checked before any output exists: the base and reasoner paths, the output dir."""
    name = resolve_path(cfg.base)
    # A hub id is "name" or "org/name"; anything else that is not a directory is a mistyped path.
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).expanduser().exists()
    if looks_local and not Path(name).expanduser().is_dir():
        raise LRTError(f"base {name!r} is not a directory: pass an existing model directory or a hub id (org/name)")
    if cfg.reasoner:
        from lrt_bench.core.reasoner import verify_reasoner

        verify_reasoner(resolve_path(cfg.reasoner))
    check_writable_dir(cfg.output_dir, "output_dir")


# ------------------------------------------------------------------------------------- output dir


class RunComplete(Exception):
    """--resume found a finished run: nothing to do (exit 0)."""


def prepare_output_dir(cfg: TrainConfig, acc) -> Path:
    """Refuse to clobber a run unless --overwrite; with --resume the dir must hold that same run.

    Every process checks (they only read, so each stops with the same error, or RunComplete, rather
    than one waiting forever at a barrier for another that quit); then, after a barrier, only the
    main process removes, creates and writes, and everyone waits for it, so a later rank never finds
    rank 0's fresh directory and takes it for an old run.
    """
    out = Path(cfg.output_dir).expanduser()
    exists = out.exists() and any(out.iterdir())
    if cfg.resume:
        if not exists:
            raise LRTError(f"--resume: {out} does not exist or is empty; drop --resume to start a new run")
        check_resume(cfg, out)
    elif exists and not cfg.overwrite:
        raise LRTError(
            f"output_dir {out} already exists: pass --resume to continue that run, --overwrite to "
            "replace it, or another --output_dir"
        )
    acc.wait_for_everyone()
    if acc.is_main_process:
        if cfg.resume:
            _remove_stale_temps(out)
        elif exists:
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", cfg.to_dict())  # only after a resume has been checked
    acc.wait_for_everyone()
    return out


def check_resume(cfg: TrainConfig, out: Path) -> None:
    """--resume continues the run in `out` as configured: every key that alters training must match.

    Raises RunComplete when the run has already written its final output.
    """
    import json

    from trainers import checkpoint as ckpt

    try:
        saved = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        raise LRTError(f"--resume: {out}/config.json is missing or unreadable, so the run cannot be checked; "
                       "start a new run (--overwrite or another --output_dir)") from None
    mine = _canon(cfg.to_dict())
    changed = sorted(k for k in set(saved) | set(mine) if k not in cfg.RESUMABLE_KEYS and saved.get(k) != mine.get(k))
    if changed:
        diff = ", ".join(f"{k} {saved.get(k)!r} -> {mine.get(k)!r}" for k in changed[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise LRTError(
            f"--resume would change what the run in {out} trains ({diff}{more}): resume with the run's own "
            f"settings (only {', '.join(cfg.RESUMABLE_KEYS[2:])} may change), or start a new run"
        )
    if (out / "train_summary.json").is_file():
        raise RunComplete(f"the run in {out} is complete (its final output is written): nothing to resume. To "
                          "train further, start a new run from its result (e.g. --reasoner <run>/reasoner)")
    last = ckpt.latest_checkpoint(out)
    if last is not None:
        step = int(json.loads((last / "state.json").read_text()).get("step", 0))
        if cfg.max_steps < step:
            raise LRTError(f"--resume: max_steps {cfg.max_steps} is below the checkpoint's step {step}: "
                           "max_steps may only be extended")


def _canon(v: Any) -> Any:
    """Config values as they read back from config.json (tuples as lists, dataclasses as dicts)."""
    import dataclasses
    import json

    return json.loads(json.dumps(v, default=lambda o: dataclasses.asdict(o) if dataclasses.is_dataclass(o) else str(o)))


def _remove_stale_temps(out: Path) -> None:
    """Temp dirs of a save killed mid-write (`atomic_dir` names them .NAME.XXXX.tmp / .NAME.old-PID)."""
    for p in out.glob(".*"):
        if p.is_dir() and (p.name.endswith(".tmp") or ".old-" in p.name):
            shutil.rmtree(p, ignore_errors=True)


# ----------------------------------------------------------------------------------------- device


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


def base_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype:
    return models.resolve_dtype(cfg.dtype, device)


def load_base(cfg: TrainConfig, device: torch.device, *, trainable: bool = False):
    """The base and its tokenizer: frozen in eval mode, or `trainable` (policy: explicit) in train mode.

    Trained weights are fp32 master weights whatever `dtype` says (bf16 compute comes from the
    accelerator's autocast): an AdamW step at lr 1e-6 applied to bf16 weights is mostly rounded
    away. Train mode matters beyond dropout: transformers only checkpoints activations in it.
    """
    dtype = torch.float32 if trainable else base_dtype(cfg, device)
    base, tok = models.load_base(resolve_path(cfg.base), device=device, dtype=dtype, revision=cfg.base_revision,
                                 trust_remote_code=cfg.trust_remote_code, use_safetensors=True)
    base.train(trainable)
    base.requires_grad_(trainable)
    return base, tok


def build_reasoner(cfg: TrainConfig, base: nn.Module):
    """G_φ in fp32 (master weights, see `load_base`): from `reasoner` (a checkpoint for this base) or
    new from the recipe's shape."""
    from lrt_bench.core.reasoner import ReasoningNetwork, load_reasoner

    if cfg.reasoner:
        net, meta = load_reasoner(resolve_path(cfg.reasoner), base)
        return net.float()
    kwargs: dict[str, Any] = {"num_latents": cfg.num_latents, "fusion": cfg.fusion, "trust_remote_code": cfg.trust_remote_code}
    if cfg.backbone_config:
        path = Path(resolve_path(cfg.backbone_config))
        net = models.untrained_reasoner(base, path, backbone=str(path), **kwargs)
    else:
        net = ReasoningNetwork.for_base(base, backbone=cfg.backbone, load_backbone_weights=cfg.load_backbone_weights,
                                        **kwargs)
    if cfg.init_backbone_from_base:
        init_backbone_from_base(net, base)
    return net.float()


def init_backbone_from_base(net: nn.Module, base: nn.Module) -> None:
    """Copy the base's first decoder layers (and final norm) into G_φ's backbone; f_in/f_out = I.

    docs/design.md §4.8: the analog of the paper's Qwen3-Embedding backbone (a pretrained model of the base's
    family). G_φ then starts as "run the base further over [X, r_1..r_N]", instead of from noise.
    """
    body = getattr(base, base.base_model_prefix)
    bb = net.backbone
    if not hasattr(bb, "layers") or not hasattr(body, "layers"):
        raise LRTError("init_backbone_from_base needs decoder-layer stacks (`.layers`) in both models")
    if len(bb.layers) > len(body.layers):
        raise LRTError(f"the backbone has {len(bb.layers)} layers but the base only {len(body.layers)}")
    with torch.no_grad():
        for dst, src in zip(bb.layers, body.layers):
            try:
                dst.load_state_dict(src.state_dict())
            except RuntimeError as e:
                raise LRTError(
                    f"init_backbone_from_base: backbone layer shapes differ from the base's ({str(e).splitlines()[0]}); "
                    "use a backbone config with the base's layer shapes (tiny:backbone/config.json)"
                ) from None
        if hasattr(bb, "norm") and hasattr(body, "norm"):
            bb.norm.load_state_dict(body.norm.state_dict())
        for lin in (net.f_in, net.f_out):
            if lin.weight.shape[0] == lin.weight.shape[1]:
                lin.weight.copy_(torch.eye(lin.weight.shape[0]))
                lin.bias.zero_()


# -------------------------------------------------------------------------------------- optimiser


def make_optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        params, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay
    )


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    """Linear warm-up, then cosine / linear decay to min_lr_ratio, or constant."""
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


def resume(out: Path, module: nn.Module, optimizer: torch.optim.Optimizer, scheduler) -> int:
    """Load the newest checkpoint in `out` into module, optimizer, scheduler and the RNGs.

    Returns the step to continue from (0 when there is no checkpoint yet).
    """
    from trainers import checkpoint as ckpt

    last = ckpt.latest_checkpoint(out)
    if last is None:
        return 0
    trainable, state, opt_tensors = ckpt.load_checkpoint(last)
    module.load_state_dict(trainable)
    ckpt.restore(last, optimizer, scheduler, state, opt_tensors)
    return int(state["step"])


# ------------------------------------------------------------------------------------- data order


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


# ---------------------------------------------------------------------------------------- logging


class RunLog:
    """One JSONL line per logged step (main process only) and a rich progress bar."""

    def __init__(self, out: Path, total: int, start: int, title: str, enabled: bool, progress: bool):
        self.path = out / "log.jsonl"
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self._bar = None
        if not enabled:
            return
        if self.path.is_file():
            # Resumed: drop lines past the checkpoint so the log reads as one run (all of them when no
            # checkpoint was reached: the run starts over at step 0), and a line cut short by a kill.
            import json

            kept = []
            for ln in self.path.read_text().splitlines():
                try:
                    if start > 0 and json.loads(ln).get("step", 0) <= start:
                        kept.append(ln)
                except json.JSONDecodeError:
                    pass
            self.path.write_text("".join(k + "\n" for k in kept))
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if progress:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
            )
            self._bar.start()
            self._task = self._bar.add_task(title, total=total, completed=start, info="")

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        import json

        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._bar is not None:
            info = "  ".join(
                f"{k} {v:.4g}" for k, v in record.items() if k in ("loss", "reward", "accuracy", "kl", "eval_accuracy")
                and isinstance(v, (int, float))
            )
            self._bar.update(self._task, completed=record["step"], info=info)

    def advance(self, step: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        if self.enabled:
            self._file.close()


def evaluate(lm, rows: list[dict], *, mode: str, max_gen_toks: int, batch_size: int,
             answer_allowance: int | None = None) -> float:
    """Greedy accuracy on `rows` through `LatentLM.generate` (the same path as the `lrt` backend).

    The base and G_φ run in eval mode (as `lm_eval` runs them) and go back to their modes after.
    """
    from lrt_bench.core.generation import DecodeConfig
    from lrt_bench.eval.grading import grade_math

    cfg = DecodeConfig(mode=mode, max_gen_toks=max_gen_toks, answer_allowance=answer_allowance)
    modules = [m for m in (lm.base, lm.reasoner) if m is not None]
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    correct = 0
    try:
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            gens = lm.generate([r["problem"] for r in chunk], cfg)
            correct += sum(grade_math(g.text, r["answer"]) for g, r in zip(gens, chunk))
    finally:
        for m, was in zip(modules, modes):
            m.train(was)
    return correct / max(1, len(rows))


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


def environment_note() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "pid": os.getpid(),
    }
