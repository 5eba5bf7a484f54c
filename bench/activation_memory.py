"""Activation memory per token per decoder layer at real widths, on CPU: the figures behind the memory
estimates in trainers/recipes/{qwen3-1.7b,r1-distill-qwen-1.5b}/*.yaml.

    python bench/activation_memory.py

For each setting, builds a 2-layer model with the published widths (lrt_bench/core/realsize.py; a small
vocabulary, which does not enter the layers), runs one forward pass over 256 and over 512 tokens
with gradients, and counts the bytes autograd keeps for the backward pass (unique storages, the
parameters excluded). The per-token per-layer figure is the difference between the two lengths,
divided by 256 tokens and 2 layers. CPU attention kernels may keep other tensors than CUDA's, so the
figures are an estimate for a GPU, not a GPU measurement.
"""

from __future__ import annotations

import torch


def saved_bytes(model, T: int, dtype: torch.dtype, autocast: bool) -> int:
    x = torch.randn(1, T, model.config.hidden_size, dtype=dtype, requires_grad=True)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        model(inputs_embeds=x, position_ids=torch.arange(T)[None])
    return sum(seen.values())


def main() -> int:
    from transformers import AutoConfig, AutoModel

    from lrt_bench.core import realsize

    settings = [  # (base, weights dtype, autocast, trained, gradient checkpointing)
        ("qwen3-1.7b", torch.bfloat16, False, False, False),  # LRT: the frozen base, backprop into z
        ("r1-distill-qwen-1.5b", torch.bfloat16, False, False, False),
        ("r1-distill-qwen-1.5b", torch.float32, True, True, False),  # explicit policy: fp32 master weights
        ("r1-distill-qwen-1.5b", torch.float32, True, True, True),
    ]
    for name, dtype, autocast, trained, gc in settings:
        res = {}
        for T in (256, 512):
            cfg = {k: v for k, v in realsize.BASES[name].items() if k != "model_type"}
            cfg.update(vocab_size=1000, num_hidden_layers=2)
            model = AutoModel.from_config(AutoConfig.for_model(realsize.BASES[name]["model_type"], **cfg), dtype=dtype,
                                          attn_implementation="sdpa")
            model.requires_grad_(trained)
            if gc:
                model.gradient_checkpointing_enable()
                model.train()
            res[T] = saved_bytes(model, T, dtype, autocast)
        per = (res[512] - res[256]) / 256 / 2 / 1024
        print(f"{name}: weights {str(dtype).removeprefix('torch.')}, autocast {autocast}, trained {trained}, "
              f"checkpointing {gc}: {per:.1f} KiB per token per layer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
