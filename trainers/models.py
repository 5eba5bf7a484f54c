"""The networks of a run: the base (frozen, or the policy itself) and G_φ (from a checkpoint or new,
optionally started from the base's first layers), loaded through `lrt_bench.core.models`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrt_bench.core import models as core_models
from lrt_bench.errors import LRTError
from trainers.config import TrainConfig, resolve_path


def base_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype:
    return core_models.resolve_dtype(cfg.dtype, device)


def load_base(cfg: TrainConfig, device: torch.device, *, trainable: bool = False):
    """The base and its tokenizer: frozen in eval mode, or `trainable` (policy: explicit) in train mode.

    Trained weights are fp32 master weights whatever `dtype` says (bf16 compute comes from the
    accelerator's autocast): an AdamW step at lr 1e-6 applied to bf16 weights is mostly rounded
    away. Train mode matters beyond dropout: transformers only checkpoints activations in it.
    """
    dtype = torch.float32 if trainable else base_dtype(cfg, device)
    base, tok = core_models.load_base(resolve_path(cfg.base), device=device, dtype=dtype,
                                      revision=cfg.base_revision, trust_remote_code=cfg.trust_remote_code,
                                      use_safetensors=True)
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
        net = core_models.untrained_reasoner(base, path, backbone=str(path), **kwargs)
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
