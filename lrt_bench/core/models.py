"""Loading a base: its dtype, its weights and tokenizer, and an untrained G_φ beside it.

Every command that loads a base (`compare`, `bench`, `redundancy`, `router-sweep`, the trainers, the LLM
extractor) does it here, so a dtype name means the same everywhere and a failed load reads the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lrt_bench.errors import LRTError

# The dtype names a user may write (recipes, --dtype, an extractor's dtype); "auto" is `resolve_dtype`'s.
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}


def resolve_dtype(name: str | torch.dtype | None, device: str | torch.device, what: str = "dtype") -> torch.dtype:
    """"auto" (or None): bfloat16 on CUDA, float32 elsewhere; otherwise a name in `DTYPES` (or a
    torch.dtype, returned as it is). `what` names the setting in the error, e.g. "--dtype"."""
    if isinstance(name, torch.dtype):
        return name
    if name in (None, "auto"):
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    if name not in DTYPES:
        raise LRTError(f"unknown {what} {name!r}: use auto, float32, bfloat16 or float16")
    return DTYPES[name]


def load_base(
    src: str | Path,
    *,
    device: str | torch.device,
    dtype: torch.dtype | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    use_safetensors: bool | None = None,
    what: str = "the base",
) -> tuple[Any, Any]:
    """(model, tokenizer) of the causal LM at `src` (hub id or directory), on `device`, in eval mode
    with no parameter requiring grad (the base is frozen; a trainer that trains it says so itself).

    dtype None loads the weights in the dtype the checkpoint stores (transformers' default);
    use_safetensors=True refuses pickled weights. Missing files, a bad config or damaged weights raise
    one LRTError naming `what` and `src`.
    """
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(src, revision=revision, trust_remote_code=trust_remote_code)
        base = AutoModelForCausalLM.from_pretrained(
            src, revision=revision, dtype=dtype, trust_remote_code=trust_remote_code, use_safetensors=use_safetensors
        )
    except (OSError, ValueError, SafetensorError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise LRTError(f"cannot load {what} {str(src)!r}: {first}. Pass a hub id or a model directory") from None
    base.to(device)
    base.eval()
    base.requires_grad_(False)
    return base, tok


def _read_backbone_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise LRTError(f"backbone_config {str(path)!r} not found: pass a config.json (or tiny:backbone/config.json)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise LRTError(f"backbone_config {str(path)!r} is not valid JSON ({e.msg}): pass a config.json") from None


def untrained_reasoner(base: torch.nn.Module, backbone_config: str | Path | Mapping[str, Any], **kwargs: Any):
    """A randomly initialised G_φ sized for `base`, its backbone built from `backbone_config` (a dict, or
    a config.json such as a tiny world's backbone/config.json; nothing is downloaded): the shapes and
    cost of a trained one, answers not meaningful. Draws from torch's global RNG, so seed first for a
    reproducible one. `kwargs` go to `ReasoningNetwork.for_base` (num_latents, fusion, backbone, ...)."""
    from lrt_bench.core.reasoner import ReasoningNetwork

    if not isinstance(backbone_config, Mapping):
        backbone_config = _read_backbone_config(backbone_config)
    return ReasoningNetwork.for_base(base, backbone_config=dict(backbone_config), **kwargs)
