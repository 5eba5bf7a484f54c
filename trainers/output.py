"""A run's output directory: the inputs checked before it exists, making it (a run is never clobbered
without --overwrite), and --resume's checks that it holds this same run."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from lrt_bench.errors import LRTError
from lrt_bench.io import atomic_write_json, check_writable_dir
from trainers.config import TrainConfig, resolve_path


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
        if not cfg.resume:  # a resumed run's config.json is rewritten once its checkpoint has loaded
            atomic_write_json(out / "config.json", cfg.to_dict())
    acc.wait_for_everyone()
    return out


def record_resumed_config(cfg: TrainConfig, out: Path, acc) -> None:
    """--resume, after the checkpoint has loaded: config.json takes the resumed run's settings (e.g. a
    longer max_steps). Not before, so a resume that fails (an unreadable checkpoint) leaves the run's
    files as they were."""
    if acc.is_main_process:
        atomic_write_json(out / "config.json", cfg.to_dict())
    acc.wait_for_everyone()


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
