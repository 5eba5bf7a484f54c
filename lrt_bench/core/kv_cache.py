"""The KV cache of one generate call: which kind, how long, and the mask and row repeats that go with it.

Three kinds, chosen by `new_cache`:

* "static", eager decoding (the default): `PrefixStaticCache`, preallocated once for the whole call
  (prompt + every token the budget allows), written in place, and read only up to what was written. No
  memory is allocated per step, so the first call in a process costs what a warm one does (a growing
  cache faults in fresh memory every step), and attention reads no empty slots.
* "static" with a compiled decode step: transformers' `StaticCache`, whose attention always spans every
  slot (the causal mask hides unwritten ones), so shapes never change and a CUDA graph can replay the step.
  The prompt is prefilled into a dynamic cache and copied into a `StaticPool` cache that is reused by
  every call of the same shape: graphs are recorded against fixed addresses, and a new cache per call
  would make them record again every batch.
* "dynamic": transformers' `DynamicCache`, which grows by concatenation every step (the old behaviour).
"""

from __future__ import annotations

import functools
import inspect

import torch

CACHE_IMPLEMENTATIONS = ("static", "dynamic")
# A compiled decode step is specialised to its cache length: lengths are rounded up to a multiple of this,
# so that calls with different prompt lengths reuse a few graphs instead of recompiling every call.
COMPILE_CACHE_BUCKET = 256


def static_supported() -> bool:
    """transformers >= 5: its static layers keep their own write position (4.x needs cache_position)."""
    try:
        from transformers.cache_utils import StaticLayer
    except ImportError:
        return False
    return "cumulative_length" in inspect.getsource(StaticLayer.__init__)


@functools.cache
def _prefix_layer_class():  # built once (transformers is imported lazily)
    from transformers.cache_utils import StaticLayer

    class PrefixStaticLayer(StaticLayer):
        """A StaticLayer (one preallocated [B, heads, max_len, head_dim] buffer per K and V, written in
        place) whose attention reads only the `written` prefix. `written` is a host int, so knowing the
        length costs no device sync."""

        def __init__(self, max_cache_len: int, **kwargs):
            super().__init__(max_cache_len, **kwargs)
            self.written = 0

        def lazy_initialization(self, key_states, value_states) -> None:
            # As StaticLayer's, but uninitialised memory: slots past `written` are never read, and pages
            # never written are never faulted in (a short answer under a long budget costs no more).
            self.device = key_states.device
            self.batch_size, self.num_heads = key_states.shape[:2]
            self.k_head_dim, self.v_head_dim = key_states.shape[-1], value_states.shape[-1]
            shape = (self.batch_size, self.num_heads, self.max_cache_len)
            self.keys = torch.empty((*shape, self.k_head_dim), dtype=key_states.dtype, device=self.device)
            self.values = torch.empty((*shape, self.v_head_dim), dtype=value_states.dtype, device=self.device)
            self.cumulative_length = self.cumulative_length.to(self.device)
            self.is_initialized = True

        def update(self, key_states, value_states, *args, **kwargs):
            n = self.written + key_states.shape[-2]
            if n > self.max_cache_len:
                raise RuntimeError(f"static KV cache overflow: {n} > {self.max_cache_len} positions")
            super().update(key_states, value_states, *args, **kwargs)
            self.written = n
            return self.keys[:, :, : self.written], self.values[:, :, : self.written]

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.written + query_length, 0

        def get_seq_length(self) -> int:
            return self.written

    return PrefixStaticLayer


def full_attention_only(config) -> bool:
    """Every decoder layer is plain full attention (no sliding window, chunked or shared layers)."""
    from transformers.cache_utils import get_layer_types_and_kwargs

    types, _ = get_layer_types_and_kwargs(config.get_text_config(decoder=True))
    return all(t == "full_attention" for t in types)


def new_cache(config, max_len: int | None, implementation: str = "static"):
    """A cache for one forward pass or generate call. `max_len`: positions a static cache must hold
    (None: dynamic). Bases with sliding-window or other special layers get transformers' StaticCache,
    which knows their layouts."""
    from transformers import DynamicCache, StaticCache
    from transformers.cache_utils import Cache

    if max_len is None or implementation != "static":
        try:
            return DynamicCache(config=config)
        except TypeError:  # older transformers
            return DynamicCache()
    if not full_attention_only(config):
        return StaticCache(config=config, max_cache_len=max_len)
    layer = _prefix_layer_class()
    n = config.get_text_config(decoder=True).num_hidden_layers
    return Cache(layers=[layer(max_len) for _ in range(n)])


class StaticPool:
    """Compiled decoding: transformers StaticCaches kept across calls, one per (rows, length, dtype,
    device), the `keep` most recently used (each holds rows x length positions of every layer)."""

    def __init__(self, keep: int = 2):
        self.keep = keep
        self._caches: dict[tuple, object] = {}

    def load(self, config, src, max_len: int):
        """A pooled StaticCache of `max_len` slots holding the positions of `src` (a filled DynamicCache)."""
        from transformers import StaticCache

        first = src.layers[0]
        rows, n = first.keys.shape[0], first.keys.shape[-2]
        key = (rows, max_len, first.keys.dtype, first.keys.device)
        cache = self._caches.pop(key, None) or StaticCache(config=config, max_cache_len=max_len)
        self._caches[key] = cache  # most recent last
        while len(self._caches) > self.keep:
            self._caches.pop(next(iter(self._caches)))
        for dst, s in zip(cache.layers, src.layers):
            if not dst.is_initialized:
                dst.lazy_initialization(s.keys, s.values)  # allocates, marks the addresses static
            dst.keys.zero_()
            dst.values.zero_()
            dst.keys[:, :, :n].copy_(s.keys)  # [rows, heads, n, head_dim]
            dst.values[:, :, :n].copy_(s.values)
            dst.cumulative_length.fill_(n)
        return cache


def is_static(cache) -> bool:
    from transformers.cache_utils import StaticLayer

    return bool(cache.layers) and all(isinstance(layer, StaticLayer) for layer in cache.layers)


def attends_all_slots(cache) -> bool:
    """transformers' StaticCache: attention spans every slot, so each step needs the whole-length mask."""
    return is_static(cache) and not any(hasattr(layer, "written") for layer in cache.layers)


def padded_mask(mask: torch.Tensor, cache_len: int | None) -> torch.Tensor:
    """mask [B, L] -> [B, cache_len]. transformers wants a static cache's 2D mask as long as the cache; the
    slots after L are ones (the causal mask hides those not yet written). None: unchanged."""
    if cache_len is None or cache_len == mask.shape[1]:
        return mask
    return torch.cat([mask, mask.new_ones(mask.shape[0], cache_len - mask.shape[1])], dim=1)


def repeat_rows(cache, k: int) -> None:
    """Repeat every cached row k times in place (lm-eval `repeats`, GRPO groups share one prefill)."""
    if k == 1:
        return
    if not is_static(cache):
        cache.batch_repeat_interleave(k)
        return
    for layer in cache.layers:  # transformers' static layers have no batch_repeat_interleave
        if not layer.is_initialized:
            continue
        layer.keys = layer.keys.repeat_interleave(k, dim=0)  # [B*k, heads, max_len, head_dim]
        layer.values = layer.values.repeat_interleave(k, dim=0)
        layer.batch_size = layer.keys.shape[0]


def select_rows(cache, idx: torch.Tensor) -> None:
    """Keep only rows `idx` [A'] of every layer, in place (the decode loop drops finished rows). A static
    layer gets one new buffer of its full length, so that later steps still write in place."""
    if not is_static(cache):
        cache.batch_select_indices(idx)
        return
    for layer in cache.layers:
        if not layer.is_initialized:
            continue
        if hasattr(layer, "written"):  # PrefixStaticLayer: copy what was written, leave the rest unfaulted
            n = layer.written
            for name in ("keys", "values"):
                old = getattr(layer, name)
                new = old.new_empty((idx.numel(), *old.shape[1:]))  # [A', heads, max_len, head_dim]
                new[:, :, :n] = old[:, :, :n].index_select(0, idx)
                setattr(layer, name, new)
        else:
            layer.keys = layer.keys.index_select(0, idx)  # [A', heads, max_len, head_dim]
            layer.values = layer.values.index_select(0, idx)
        layer.batch_size = layer.keys.shape[0]


def written(cache) -> list[int]:
    """Positions written per layer of a static cache (to tell whether a failed step touched it)."""
    return [int(layer.cumulative_length) for layer in cache.layers]
