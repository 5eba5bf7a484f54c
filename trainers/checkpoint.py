"""Resumable training checkpoints, written atomically, read without unpickling.

    OUTPUT_DIR/checkpoint-000050/
        trainable.safetensors   the parameters that train (G_φ, or the base for policy: explicit)
        optimizer.safetensors   the optimizer's per-parameter tensors (AdamW moments, step counts)
        rng.safetensors         torch CPU (and CUDA) generator states
        state.json              step, optimizer param groups, scheduler state, Python RNG, config

torch.save/torch.load would pickle; here tensors go to safetensors and the rest to JSON, so a
checkpoint can be inspected and loaded safely. A checkpoint directory appears only once complete
(`atomic_dir`), so `latest_checkpoint` never picks up a half-written one after a SIGKILL.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from lrt_bench.core.reasoner import load_safetensors
from lrt_bench.errors import LRTError
from lrt_bench.io import atomic_dir

_CKPT = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return output_dir / f"checkpoint-{step:06d}"


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    if not output_dir.is_dir():
        return []
    found = []
    for p in output_dir.iterdir():
        m = _CKPT.match(p.name)
        if m and p.is_dir() and (p / "state.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    for idx, d in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(d)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    output_dir: Path,
    step: int,
    trainable: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    target = checkpoint_dir(output_dir, step)
    opt_tensors, opt_meta = _flatten_optimizer(optimizer)
    rng = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"torch_cuda_{i}"] = s
    py_state = random.getstate()
    state = {
        "step": step,
        "optimizer": opt_meta,
        "scheduler": scheduler.state_dict(),
        "python_random": [py_state[0], list(py_state[1]), py_state[2]],
        "config": config,
        "extra": extra or {},
    }
    with atomic_dir(target) as tmp:
        save_file(_unshared(trainable), str(tmp / "trainable.safetensors"))
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        save_file(rng, str(tmp / "rng.safetensors"))
        (tmp / "state.json").write_text(json.dumps(state, indent=1, default=_json_default) + "\n")
    # Keep the newest `keep` checkpoints.
    for _, old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU tensors for safetensors, which refuses tensors that share memory: a tied pair (a base's
    `lm_head.weight` and `embed_tokens.weight`, policy: explicit) is written as two copies."""
    out, seen = {}, set()
    for k, v in tensors.items():
        v = v.detach().contiguous().cpu()
        ptr = v.untyped_storage().data_ptr()
        if ptr in seen:
            v = v.clone()
        seen.add(ptr)
        out[k] = v
    return out


def _json_default(o: Any) -> Any:
    if torch.is_tensor(o):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"cannot serialise {type(o).__name__} in a checkpoint")


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, torch.Tensor]]:
    """-> (trainable tensors, state.json, optimizer tensors). RNG is restored by `restore_rng`."""
    hint = "delete it to resume from the one before"
    try:
        trainable = load_safetensors(path / "trainable.safetensors", "checkpoint file", hint)
        opt_tensors = load_safetensors(path / "optimizer.safetensors", "checkpoint file", hint)
        load_safetensors(path / "rng.safetensors", "checkpoint file", hint)  # read again by `restore`
        state = json.loads((path / "state.json").read_text())
    except LRTError:
        raise  # load_safetensors names the file and says what to do
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise LRTError(f"checkpoint {path} is unreadable ({first}): {hint}") from None
    return trainable, state, opt_tensors


def restore(path: Path, optimizer: torch.optim.Optimizer, scheduler: Any, state: dict, opt_tensors: dict) -> None:
    optimizer.load_state_dict(_unflatten_optimizer(opt_tensors, state["optimizer"]))
    scheduler.load_state_dict(state["scheduler"])
    rng = load_safetensors(path / "rng.safetensors", "checkpoint file")
    torch.set_rng_state(rng["torch_cpu"])
    if torch.cuda.is_available():
        cuda = [rng[k] for k in sorted(rng) if k.startswith("torch_cuda_")]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    v, s, g = state["python_random"]
    random.setstate((v, tuple(s), g))


def resume(out: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler) -> int:
    """Load the newest checkpoint in `out` into module, optimizer, scheduler and the RNGs.

    Returns the step to continue from (0 when there is no checkpoint yet).
    """
    last = latest_checkpoint(out)
    if last is None:
        return 0
    trainable, state, opt_tensors = load_checkpoint(last)
    module.load_state_dict(trainable)
    restore(last, optimizer, scheduler, state, opt_tensors)
    return int(state["step"])
