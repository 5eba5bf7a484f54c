"""Sampling settings and the next-token draw, resolved and applied exactly as transformers does.

Two things make `--model lrt` and `--model hf` sample from the same distribution:

* `resolve_sampling`: settings a request leaves unset (temperature, top_p, top_k, min_p, do_sample)
  come from the base's `generation_config`, then transformers' global defaults (top_k 50!), through
  transformers' own resolution (`GenerationMixin._prepare_generation_config`). lm-eval's rule for
  greedy is kept: no `temperature` and no `do_sample` means greedy (lm-eval's `hf` sets
  temperature 0.0 then), and `do_sample=false` or `temperature=0` is greedy.
* `sample_next`: the logits go through transformers' own warpers in generate's order (temperature,
  top-k, top-p, min-p), so the probabilities are the ones `generate` samples from.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from lrt_bench.errors import LRTError, as_bool, as_number

SAMPLING_KEYS = ("do_sample", "temperature", "top_p", "top_k", "min_p")


@dataclass(frozen=True)
class SamplingSettings:
    """What a decode actually used; results record it. temperature 0 = greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    # The settings the request left unset, which came from the base's generation_config (or
    # transformers' global defaults).
    from_generation_config: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"do_sample": self.temperature > 0, "temperature": self.temperature, "top_p": self.top_p,
                "top_k": self.top_k, "min_p": self.min_p, "from_generation_config": list(self.from_generation_config)}


def given_sampling(request: dict[str, Any]) -> dict[str, Any]:
    """The sampling kwargs a request sets (any of SAMPLING_KEYS), typed; bad values raise. Needs no model."""
    given: dict[str, Any] = {}
    if request.get("do_sample") is not None:
        given["do_sample"] = as_bool("generation kwarg do_sample", request["do_sample"])
    for key, kind in (("temperature", float), ("top_p", float), ("top_k", int), ("min_p", float)):
        if request.get(key) is not None:
            given[key] = as_number(f"generation kwarg {key}", request[key], kind)
    return given


def resolve_sampling(base: Any, request: dict[str, Any]) -> SamplingSettings:
    """The request's sampling kwargs (any of SAMPLING_KEYS), completed as transformers completes them."""
    given = given_sampling(request)
    if given.get("do_sample") is False or given.get("temperature") == 0:
        return SamplingSettings()
    if "do_sample" not in given and "temperature" not in given:
        return SamplingSettings()  # lm-eval's hf: no temperature, no do_sample -> greedy
    gc = _resolved_generation_config(base, given)
    if not gc["do_sample"]:
        return SamplingSettings()  # e.g. temperature given, do_sample unset and the base's config says greedy
    temperature = float(gc["temperature"] if gc["temperature"] is not None else 1.0)
    out = SamplingSettings(
        temperature=temperature,
        top_p=float(gc["top_p"] if gc["top_p"] is not None else 1.0),
        top_k=int(gc["top_k"] or 0),
        min_p=float(gc["min_p"] or 0.0),
        from_generation_config=tuple(k for k in SAMPLING_KEYS[1:] if k not in given),
    )
    if out.temperature <= 0:
        raise LRTError(f"sampling needs temperature > 0, got {out.temperature}: pass temperature=0.6 (say) "
                       "or do_sample=false for greedy")
    return out


def _resolved_generation_config(base: Any, given: dict[str, Any]) -> dict[str, Any]:
    gen_cfg = getattr(base, "generation_config", None)
    if gen_cfg is None:
        missing = [k for k in ("temperature", "top_p", "top_k") if k not in given]
        if missing:
            raise LRTError(
                f"the base has no generation_config to take {', '.join(missing)} from: pass them in "
                "--gen_kwargs (e.g. temperature=0.6,top_p=0.95,top_k=20) or add a generation_config.json"
            )
        return {"do_sample": True, "min_p": None, **given}
    prepare = getattr(base, "_prepare_generation_config", None)
    if prepare is not None:
        try:
            resolved, _ = prepare(None, **given)
            return {k: getattr(resolved, k, None) for k in SAMPLING_KEYS}
        except (TypeError, ValueError):
            pass  # a transformers whose private resolution differs: read the config as below
    defaults = {"do_sample": False, "temperature": 1.0, "top_p": 1.0, "top_k": 50, "min_p": None}
    out = {k: getattr(gen_cfg, k, None) for k in SAMPLING_KEYS}
    return {k: given.get(k, out[k] if out[k] is not None else defaults[k]) for k in SAMPLING_KEYS}


@lru_cache(maxsize=32)
def _warpers(temperature: float, top_p: float, top_k: int, min_p: float) -> tuple:
    from transformers.generation.logits_process import (
        MinPLogitsWarper,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    ws = []
    if temperature != 1.0:
        ws.append(TemperatureLogitsWarper(temperature))
    if top_k:
        ws.append(TopKLogitsWarper(top_k=top_k))
    if top_p < 1.0:
        ws.append(TopPLogitsWarper(top_p=top_p))
    if min_p:
        ws.append(MinPLogitsWarper(min_p=min_p))
    return tuple(ws)


def warped_logits(logits: torch.Tensor, temperature: float, top_p: float = 1.0, top_k: int = 0,
                  min_p: float = 0.0) -> torch.Tensor:
    """logits [B, V] -> the fp32 scores transformers' generate samples from (filtered tokens -inf)."""
    scores = logits.float()
    for w in _warpers(float(temperature), float(top_p), int(top_k), float(min_p)):
        scores = w(None, scores)
    return scores


def sample_next(
    logits: torch.Tensor, temperature: float, top_p: float, top_k: int, generator: torch.Generator | None,
    min_p: float = 0.0,
) -> torch.Tensor:
    """logits [B, V] -> next ids [B]. temperature 0 is greedy."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = warped_logits(logits, temperature, top_p, top_k, min_p).softmax(-1)  # [B, V]
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
