"""Latent-conditioned generation over a frozen base: the one place that knows how z enters the base.

Everything that runs the base with or without latents goes through `LatentLM`: the lm-eval backend,
the SFT and GRPO trainers, the redundancy analysis and the benchmarks. It owns

* the prompt layout per mode (text from `layout.py`, tokenised and left-padded here);
* the embedding assembly `[X, z, "\\n</think>\\n\\n", Y]` and its position ids;
* one batched decode loop with KV cache for all three modes, with s1-style budget forcing in think
  mode (docs/design.md §4.3), sampling, stop strings and EOS; its per-row logic stays on the device, the cache
  is preallocated (`kv_cache`), and the step can be compiled;
* the differentiable piece for training: z = G_φ(H_X) and log P_θ(Y | [X, z]) by teacher forcing.

The base's pass over X that yields H_X also fills the KV cache, so X runs through the base once
(the paper's code ran it twice). With `repeats=k` the prompt is prefilled once and its cache is
repeated k times, so lm-eval `repeats` and GRPO groups share one prefill and one z per prompt.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from lrt_bench.core import kv_cache, layout
from lrt_bench.core.reasoner import ReasoningNetwork
from lrt_bench.core.sampling import sample_next
from lrt_bench.errors import LRTError

# Per-row decode phases.
REASON, FORCE, ANSWER, DONE = 0, 1, 2, 3


# With `allowance_in_budget` and no `answer_allowance`, the answer is never squeezed below this.
DEFAULT_MIN_ANSWER = 64

# Why a row stopped, as the decode loop records it on the device (0: still running).
_FINISH = {1: "eos", 2: "stop", 3: "length", 4: "context"}
_EOS, _STOP, _LENGTH, _CONTEXT = 1, 2, 3, 4

# Host syncs of the decode loop on CUDA (is every row done? a stop string? non-finite logits?) happen every
# this many steps; rows that finish in between are frozen on the device. On CPU there is nothing to overlap.
CUDA_SYNC_EVERY = 16

# Finished rows leave the decode step when at most this fraction of the rows in the step is unfinished.
DROP_FINISHED_AT = 0.5


def check_engine(cache_implementation: str, compile: bool, sync_every: int | None) -> None:
    """The options of how the decode loop runs (never what it outputs); see LatentLM."""
    if cache_implementation not in kv_cache.CACHE_IMPLEMENTATIONS:
        raise LRTError(f"cache_implementation must be one of {', '.join(kv_cache.CACHE_IMPLEMENTATIONS)}, "
                       f"got {cache_implementation!r}")
    if compile and cache_implementation != "static":
        raise LRTError("compile=True captures the decode step over a static cache: "
                       "use cache_implementation=static (the default) or compile=False")
    if sync_every is not None and (isinstance(sync_every, bool) or not isinstance(sync_every, int) or sync_every < 1):
        raise LRTError(f"sync_every must be a whole number >= 1 (or unset for the device's default), "
                       f"got {sync_every!r}")


@dataclass
class DecodeConfig:
    """How to generate. Names follow lm-eval (`max_gen_toks`, `until` -> `stop`) and HF sampling.

    The budget B = `max_gen_toks` caps what a method generates, the same for every method:
      think   : reasoning is cut at B tokens if `</think>` has not come (then FORCED_CLOSE is appended);
                after the close, natural or forced, the answer gets up to B tokens, the allowance
                NoThinking and latent mode get (`answer_allowance` overrides it). With
                `allowance_in_budget`, reasoning + forced + answer stay within B: reasoning is cut at
                B - |FORCED_CLOSE| - A and the answer gets what is left, never less than
                A = `answer_allowance` (default DEFAULT_MIN_ANSWER).
      nothink, latent : the answer gets at most B tokens. Latents are not tokens.
    Stop strings apply to the answer only (reasoning may contain them). EOS ends any phase.
    """

    mode: str = "think"
    nothink_style: str = "prefill"
    max_gen_toks: int = 512
    answer_allowance: int | None = None
    allowance_in_budget: bool = False
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # Benchmarks only: decode to the caps whatever the model says (random weights decide nothing).
    ignore_eos: bool = False
    # Record each sample's answer-token log-probs under the model (T = 1), e.g. for the hybrid router.
    score_answers: bool = False
    # Tokens of FORCED_CLOSE for this tokenizer; set by LatentLM (it only matters with allowance_in_budget).
    forced_tokens: int = 0

    def __post_init__(self) -> None:
        layout.check_mode(self.mode, self.nothink_style)
        for name in ("max_gen_toks", "top_k", "forced_tokens") + (("answer_allowance",) if self.answer_allowance is not None else ()):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise LRTError(f"{name} must be a whole number, got {v!r}")
        for name in ("temperature", "top_p", "min_p"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise LRTError(f"{name} must be a finite number, got {v!r}")
        if self.max_gen_toks < 1:
            raise LRTError(f"the token budget max_gen_toks must be >= 1, got {self.max_gen_toks}")
        if self.answer_allowance is not None and self.answer_allowance < 1:
            raise LRTError(f"answer_allowance must be >= 1, got {self.answer_allowance}")
        if self.mode == "think" and self.allowance_in_budget and self.reasoning_cap < 1:
            raise LRTError(
                f"with allowance_in_budget the budget ({self.max_gen_toks}) must exceed the answer's minimum "
                f"({self.min_answer}) plus the forced close ({self.forced_tokens} tokens) to leave room for "
                "reasoning: raise max_gen_toks or lower answer_allowance"
            )
        if self.temperature < 0:
            raise LRTError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise LRTError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise LRTError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 <= self.min_p < 1:
            raise LRTError(f"min_p must be in [0, 1), got {self.min_p}")
        self.stop = tuple(s for s in self.stop if s)

    @property
    def min_answer(self) -> int:
        """allowance_in_budget: the fewest answer tokens a think-mode row is left."""
        return self.answer_allowance if self.answer_allowance is not None else DEFAULT_MIN_ANSWER

    @property
    def reasoning_cap(self) -> int:
        if self.mode != "think":
            return 0
        if self.allowance_in_budget:
            return self.max_gen_toks - self.forced_tokens - self.min_answer
        return self.max_gen_toks

    @property
    def answer_cap(self) -> int:
        """The most answer tokens any row may get (per row it can be less under allowance_in_budget)."""
        if self.mode != "think":
            return self.max_gen_toks
        if self.allowance_in_budget:
            return self.max_gen_toks - self.forced_tokens  # a row whose reasoning closes at once
        return self.answer_allowance if self.answer_allowance is not None else self.max_gen_toks

    @property
    def max_new_tokens(self) -> int:
        """The most tokens one row can generate under this config (the decode loop's step count)."""
        if self.mode != "think":
            return self.answer_cap
        if self.allowance_in_budget:
            return self.max_gen_toks  # reasoning + forced + answer <= B
        return self.reasoning_cap + self.forced_tokens + self.answer_cap

    @property
    def budget_rule(self) -> str:
        """What results record: how think mode's answer was capped."""
        if self.mode != "think":
            return "answer<=B"
        if self.allowance_in_budget:
            return f"reasoning+forced+answer<=B, answer>={self.min_answer}"
        return "answer<=B" if self.answer_allowance is None else f"answer<={self.answer_allowance}"


@dataclass
class Account:
    """What one sample cost. `seconds` is this sample's share of its batch's wall time."""

    reasoning_tokens: int
    forced_tokens: int
    answer_tokens: int
    latents: int
    prompt_tokens: int
    seconds: float
    finish_reason: str  # "eos" | "stop" | "length" | "context"
    allowance_in_budget: bool
    # score_answers: mean and min log-prob of the answer tokens (EOS included) under the model at T = 1
    answer_logprob_mean: float | None = None
    answer_logprob_min: float | None = None
    # hybrid mode: which pass answered ("latent" | "think"), the router's score, and the tokens of the
    # latent answer that a think answer replaced (counted in generated_tokens: the row paid for both)
    route: str | None = None
    router_score: float | None = None
    first_pass_tokens: int = 0

    @property
    def generated_tokens(self) -> int:
        return self.reasoning_tokens + self.forced_tokens + self.answer_tokens + self.first_pass_tokens


@dataclass
class Generation:
    text: str  # the continuation after the prefix (think: reasoning + </think> + answer)
    token_ids: list[int]  # generated (and forced) ids, EOS excluded
    account: Account
    eos_id: int | None = None  # the EOS id that ended the row (finish_reason "eos"), for training
    latents: torch.Tensor | None = None  # latent mode: the z [N, d] it answered from (shared by a prompt's repeats)


@dataclass
class PromptBatch:
    input_ids: torch.Tensor  # [B, L] left-padded
    attention_mask: torch.Tensor  # [B, L]
    lengths: torch.Tensor  # [B] real tokens per row

    def repeat(self, k: int) -> PromptBatch:
        if k == 1:
            return self
        return PromptBatch(*(t.repeat_interleave(k, dim=0) for t in (self.input_ids, self.attention_mask, self.lengths)))


@dataclass
class Timings:
    """Wall-clock split of the last `generate` call (seconds, whole batch)."""

    prefill: float = 0.0  # base pass over X (yields H_X and the KV cache)
    reasoner: float = 0.0  # G_φ
    latent_prefill: float = 0.0  # base pass over [z, suffix]
    decode: float = 0.0  # the autoregressive loop
    steps: int = 0
    extra: dict = field(default_factory=dict)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids for a left-padded mask [B, L]: real tokens count from 0; pads get 0."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def head_logprobs(
    hidden: torch.Tensor, head: nn.Module, ids: torch.Tensor, temperature: float = 1.0, chunk_tokens: int = 1024
) -> torch.Tensor:
    """log softmax(head(hidden) / temperature)[ids] in fp32: hidden [B, T, d], ids [B, T] -> [B, T].

    hidden[:, t] is the state that predicts ids[:, t]; `head` is the LM head. `temperature` is the one
    the tokens were sampled at (RL ratios and KLs are of the sampling distribution, as TRL and verl
    compute them). The vocabulary-sized logits exist one chunk of `chunk_tokens` positions at a time,
    and with gradients each chunk is recomputed in the backward pass instead of kept: for 8
    completions of 6,000 tokens and a 151k vocabulary the batch's logits alone would be 18 GB in bf16,
    their gradient as much again, and an fp32 copy twice that.
    """
    B, T, d = hidden.shape
    flat_h = hidden.reshape(B * T, d)  # [B*T, d]
    flat_ids = ids.reshape(B * T)  # [B*T]

    def piece(h: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        lg = head(h).float()  # [c, V]
        if temperature != 1.0:
            lg = lg / temperature
        return lg.gather(-1, idx[:, None]).squeeze(-1) - torch.logsumexp(lg, -1)  # [c]

    needs_grad = torch.is_grad_enabled() and (hidden.requires_grad or any(p.requires_grad for p in head.parameters()))
    out = []
    for s in range(0, B * T, chunk_tokens):
        h, idx = flat_h[s : s + chunk_tokens], flat_ids[s : s + chunk_tokens]
        out.append(checkpoint(piece, h, idx, use_reentrant=False) if needs_grad else piece(h, idx))
    return torch.cat(out).view(B, T) if out else hidden.new_zeros(B, T, dtype=torch.float32)


def plain_lm_head(base: nn.Module) -> nn.Module:
    """The base's LM head, when logits are just head(last hidden state); refuse heads that do more."""
    cfg = base.config.get_text_config()
    extra = [k for k in ("final_logit_softcapping", "logit_scale") if getattr(cfg, k, None)]
    if extra:
        raise LRTError(f"log-probs are computed from the LM head in chunks, but this base's head also applies "
                       f"{', '.join(extra)}: training it is not supported")
    return base.get_output_embeddings()


class LatentLM:
    """A frozen base (+ optional reasoning network) that generates in think / nothink / latent mode.

    How the decode loop runs (outputs are the same either way; tests/test_decode_cache.py):
      cache_implementation: "static" (default) preallocates one KV cache per call, sized from the budget
          (`kv_cache`); "dynamic" is transformers' growing DynamicCache.
      compile: the decode step runs as torch.compile(base, mode="reduce-overhead"), CUDA graphs on CUDA;
          off by default (each new batch size or cache-length bucket compiles again, ~1 min); falls back
          to the eager step, with a warning, when compiling fails.
      sync_every: host checks every this many steps (default 16 on CUDA, 1 elsewhere).
    """

    def __init__(
        self,
        base: nn.Module,
        tokenizer,
        reasoner: ReasoningNetwork | None = None,
        *,
        chat_template: bool = True,
        cache_implementation: str = "static",
        compile: bool = False,
        sync_every: int | None = None,
    ):
        check_engine(cache_implementation, compile, sync_every)
        if cache_implementation == "static" and not kv_cache.static_supported():
            cache_implementation = "dynamic"  # transformers 4.x: its StaticCache needs cache_position inputs
            if compile:
                raise LRTError("compile=True needs transformers >= 5 (its StaticCache keeps its own write "
                               "position); upgrade transformers or pass compile=False")
        self.cache_implementation = cache_implementation
        self.compile = bool(compile)
        self._sync_every = sync_every
        self._compiled_base = None  # torch.compile(base), built on the first compiled decode step
        self._pool = kv_cache.StaticPool()  # compiled decoding: caches reused across calls
        if compile and not kv_cache.full_attention_only(base.config):
            raise LRTError("compile=True supports bases whose layers are all full attention; this one has "
                           "sliding-window or other special layers: pass compile=False")
        base.eval()
        base.requires_grad_(False)  # θ never changes
        self.base = base
        self.tokenizer = tokenizer
        self.reasoner = reasoner
        self.chat_template = chat_template
        self.prefill_forced = True  # budget forcing in one forward when it can (see _decode); False: per step
        self.drop_finished = True  # the step runs on unfinished rows only (see _decode); False: on every row
        if reasoner is not None:
            got = base.config.get_text_config().hidden_size
            if reasoner.config.base_hidden_size != got:
                raise LRTError(
                    f"reasoner expects a base with hidden size {reasoner.config.base_hidden_size}, but "
                    f"the base has hidden size {got}: use a reasoner trained for this base"
                )
        self.body = getattr(base, base.base_model_prefix)  # the decoder without the LM head
        params = inspect.signature(base.forward).parameters
        # transformers >= 5.x names the cache `cache`; 4.x names it `past_key_values`.
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._has_logits_to_keep = "logits_to_keep" in params
        text_cfg = base.config.get_text_config()
        self.max_context = int(getattr(text_cfg, "max_position_embeddings", 0) or 0) or None
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if self.pad_id is None:
            raise LRTError("the tokenizer has neither a pad nor an eos token: set tokenizer.pad_token")
        eos = getattr(getattr(base, "generation_config", None), "eos_token_id", None)
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if tokenizer.eos_token_id is not None:
            eos.append(tokenizer.eos_token_id)
        self.eos_ids = sorted(set(eos))
        self._encode = lambda s: tokenizer.encode(s, add_special_tokens=False)
        self._suffix_ids = self._encode(layout.LATENT_SUFFIX)
        self._forced_ids = self._encode(layout.FORCED_CLOSE)
        # Special tokens are dropped from generated text, except <think>/</think>: a tokenizer may mark
        # them special, and the grader and the think/answer split need them kept.
        keep = {i for t in (layout.THINK_OPEN, layout.THINK_CLOSE)
                for i in [tokenizer.convert_tokens_to_ids(t)] if isinstance(i, int) and i != tokenizer.unk_token_id}
        self._strip_ids = frozenset(set(tokenizer.all_special_ids) - keep)
        self.last_timings = Timings()

    # ------------------------------------------------------------------------------------ helpers

    @property
    def device(self) -> torch.device:
        return next(self.base.parameters()).device

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _new_cache(self, max_len: int | None = None):
        """The KV cache of one call: static of `max_len` positions when given and enabled, else dynamic.
        Compiled decoding prefills into a dynamic cache and moves it into a pooled one (`_to_pool`)."""
        if self.compile:
            max_len = None
        return kv_cache.new_cache(self.base.config, max_len, self.cache_implementation)

    def _to_pool(self, cache, cache_len: int | None):
        """Compiled decoding: the prefilled (dynamic) cache's positions, in the pooled static cache."""
        if not (self.compile and cache_len is not None):
            return cache
        return self._pool.load(self.base.config, cache, cache_len)

    def _prefill_len(self, cache_len: int | None) -> int | None:
        """The mask length of a prefill: the static cache's, unless the prefill goes to a dynamic cache."""
        return None if self.compile else cache_len

    def _cache_len(self, cfg: DecodeConfig, prompt_positions: int) -> int | None:
        """Positions a static cache needs for `prompt_positions` (X, and z + suffix in latent mode) plus
        every generated token; None for a dynamic cache."""
        if self.cache_implementation != "static":
            return None
        n = prompt_positions + self._decode_config(cfg).max_new_tokens
        if self.compile:
            n = -(-n // kv_cache.COMPILE_CACHE_BUCKET) * kv_cache.COMPILE_CACHE_BUCKET
        return n

    def _decode_config(self, cfg: DecodeConfig) -> DecodeConfig:
        """cfg with this tokenizer's forced-close length (re-validates: the budget must leave room)."""
        F = len(self._forced_ids)
        return cfg if cfg.forced_tokens == F else dataclasses.replace(cfg, forced_tokens=F)

    def _sync_interval(self) -> int:
        if self._sync_every is not None:
            return self._sync_every
        return CUDA_SYNC_EVERY if self.device.type == "cuda" else 1

    def _run(self, module: nn.Module, cache, logits_last: bool = False, **kw):
        kw[self._cache_kw] = cache
        kw["use_cache"] = True
        if logits_last and self._has_logits_to_keep:
            kw["logits_to_keep"] = 1
        return module(**kw)

    def check_mode(self, mode: str) -> None:
        if mode in ("think", "latent"):
            layout.think_close_id(self.tokenizer, mode)
        if mode == "latent" and self.reasoner is None:
            raise LRTError("mode=latent needs a reasoning network: pass reasoner=<checkpoint dir>")

    def prefix_texts(self, prompts: Sequence[layout.Prompt], mode: str, nothink_style: str = "prefill") -> list[str]:
        return [
            layout.prefix_text(layout.render_chat(self.tokenizer, p, chat_template=self.chat_template), mode, nothink_style)
            for p in prompts
        ]

    def encode_prompts(
        self, prompts: Sequence[layout.Prompt], mode: str, nothink_style: str = "prefill"
    ) -> PromptBatch:
        """Render, lay out, tokenise and left-pad a batch of prompts."""
        self.check_mode(mode)
        ids = [self._encode(t) for t in self.prefix_texts(prompts, mode, nothink_style)]
        extra = self._latent_extra(mode)
        if self.max_context is not None:
            for i, row in enumerate(ids):
                if len(row) + extra >= self.max_context:
                    raise LRTError(
                        f"prompt {i} is {len(row)} tokens (+{extra} latent/suffix), longer than the base's "
                        f"context of {self.max_context}: shorten the prompt"
                    )
        return self._left_pad(ids)

    def _text(self, ids: Sequence[int]) -> str:
        """Generated ids -> text: special tokens dropped, <think>/</think> kept (see __init__)."""
        return self.tokenizer.decode([i for i in ids if i not in self._strip_ids], skip_special_tokens=False)

    @property
    def forced_tokens(self) -> int:
        """Tokens of the s1 forced close (FORCED_CLOSE) for this tokenizer."""
        return len(self._forced_ids)

    def longest_prompt(self, prompts: Sequence[layout.Prompt], cfg: DecodeConfig) -> int:
        """Tokens the base holds before the first generated one, for the longest of `prompts`."""
        if not prompts:
            return 0
        return max(len(self._encode(t)) for t in self.prefix_texts(prompts, cfg.mode, cfg.nothink_style)) + \
            self._latent_extra(cfg.mode)

    def _latent_extra(self, mode: str) -> int:
        """Positions that follow X before the first generated token: z and the suffix (latent mode)."""
        return self.reasoner.num_latents + len(self._suffix_ids) if mode == "latent" and self.reasoner else 0

    def _left_pad(self, ids: Sequence[Sequence[int]]) -> PromptBatch:
        """Token-id rows -> a left-padded PromptBatch on the base's device."""
        L = max(len(r) for r in ids)
        input_ids = torch.full((len(ids), L), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), L), dtype=torch.long)
        for i, row in enumerate(ids):
            if row:
                input_ids[i, L - len(row) :] = torch.tensor(list(row))
                mask[i, L - len(row) :] = 1
        dev = self.device
        return PromptBatch(input_ids.to(dev), mask.to(dev), mask.sum(-1).to(dev))

    # ----------------------------------------------------------------------------- latent assembly

    def hidden_states(self, batch: PromptBatch, cache=None, cache_len: int | None = None) -> torch.Tensor:
        """H_X [B, L, d]: final-norm hidden states of X; fills `cache` with X's keys and values.

        `cache_len`: the length of a static `cache` (its attention mask is padded to it)."""
        with torch.no_grad():
            out = self._run(
                self.body, cache, input_ids=batch.input_ids,
                attention_mask=kv_cache.padded_mask(batch.attention_mask, cache_len),
                position_ids=_positions(batch.attention_mask),
            )
        return out.last_hidden_state

    def latents(self, batch: PromptBatch, cache=None) -> torch.Tensor:
        """z = G_φ(H_X) [B, N, d]; differentiable w.r.t. φ when grad is enabled."""
        if self.reasoner is None:
            raise LRTError("no reasoning network: pass reasoner=<checkpoint dir> for latent mode")
        return self.reasoner(self.hidden_states(batch, cache), batch.attention_mask)

    def assemble(
        self, batch: PromptBatch, z: torch.Tensor, answer_ids: torch.Tensor | None = None,
        answer_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs that follow X in the cache: [z, suffix, Y] -> (inputs_embeds, full mask, position ids).

        batch: X [B, L] (already in the cache); z: [B, N, d]; answer_ids/answer_mask: [B, T] right-padded.
        Returns embeds [B, N+S(+T), d], attention mask over X and them [B, L+N+S(+T)], positions [B, N+S(+T)].
        """
        B, N, _ = z.shape
        emb = self.base.get_input_embeddings()
        suffix = torch.tensor(self._suffix_ids, device=z.device).expand(B, -1)  # [B, S]
        parts = [z.to(emb.weight.dtype), emb(suffix)]
        new_mask = [torch.ones(B, N + suffix.shape[1], dtype=torch.long, device=z.device)]
        if answer_ids is not None:
            parts.append(emb(answer_ids))
            new_mask.append(answer_mask.long() if answer_mask is not None else torch.ones_like(answer_ids))
        embeds = torch.cat(parts, dim=1)
        k = embeds.shape[1]
        positions = batch.lengths[:, None] + torch.arange(k, device=z.device)  # continue after X
        mask = torch.cat([batch.attention_mask.long(), *new_mask], dim=1)
        return embeds, mask, positions

    def answer_logprobs(
        self,
        prompts: Sequence[layout.Prompt] | PromptBatch,
        answers: Sequence[Sequence[int]],
        *,
        repeats: int = 1,
        z: torch.Tensor | None = None,
        reasoner: nn.Module | None = None,
        temperature: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher-forced log P_θ(Y | [X, z]) per answer token, with gradients into φ (through z).

        prompts: P prompts; answers: P*repeats token-id lists (rows of a prompt's group are adjacent).
        Pass `z` [P, N, d] to reuse latents (e.g. the old policy's); otherwise z = G_φ(H_X) here, with
        `reasoner` if given (a DDP-wrapped or reference copy of G_φ) else `self.reasoner`.
        `temperature`: of the sampling that produced the answers (`head_logprobs`).
        Returns (logprobs [P*repeats, T], answer mask [P*repeats, T], z [P, N, d]).
        """
        batch = prompts if isinstance(prompts, PromptBatch) else self.encode_prompts(prompts, "latent")
        P = batch.input_ids.shape[0]
        if len(answers) != P * repeats:
            raise LRTError(f"got {len(answers)} answers for {P} prompts x repeats={repeats}")
        if any(len(a) == 0 for a in answers):
            raise LRTError("an answer has no tokens: drop empty answers before computing log-probs")
        cache = self._new_cache()
        if z is None:
            net = reasoner if reasoner is not None else self.reasoner
            if net is None:
                raise LRTError("no reasoning network: pass reasoner=<checkpoint dir> for latent mode")
            z = net(self.hidden_states(batch, cache), batch.attention_mask)  # [P, N, d]
        else:
            self.hidden_states(batch, cache)
        T = max(len(a) for a in answers)
        dev = self.device
        ans = torch.full((len(answers), T), self.pad_id, dtype=torch.long, device=dev)
        amask = torch.zeros((len(answers), T), dtype=torch.long, device=dev)
        for i, a in enumerate(answers):
            ans[i, : len(a)] = torch.tensor(list(a), device=dev)
            amask[i, : len(a)] = 1
        if repeats > 1:
            cache.batch_repeat_interleave(repeats)
        rep = batch.repeat(repeats)
        zr = z.repeat_interleave(repeats, dim=0)  # [P*k, N, d]
        embeds, mask, pos = self.assemble(rep, zr, ans, amask)
        h = self._run(self.body, cache, inputs_embeds=embeds, attention_mask=mask, position_ids=pos).last_hidden_state
        first = embeds.shape[1] - T - 1  # the last suffix position predicts Y_0
        logp = head_logprobs(h[:, first : first + T], plain_lm_head(self.base), ans, temperature)  # [P*k, T]
        return logp * amask, amask, z

    # ------------------------------------------------------------------------------------- generate

    @torch.no_grad()
    def generate(
        self, prompts: Sequence[layout.Prompt], config: DecodeConfig | None = None, *, repeats: int = 1,
        z: torch.Tensor | None = None,
    ) -> list[Generation]:
        """Generate for a batch of prompts. Returns len(prompts) * repeats generations, grouped by prompt.

        `z` [P, N, d] may be given in latent mode (e.g. GRPO, which keeps the rollout's latents).
        """
        cfg = config or DecodeConfig()
        if repeats < 1:
            raise LRTError(f"repeats must be >= 1, got {repeats}")
        if not prompts:
            return []
        t0 = time.perf_counter()
        tm = Timings()
        batch = self.encode_prompts(prompts, cfg.mode, cfg.nothink_style)
        L = batch.input_ids.shape[1]
        extra = (z.shape[1] + len(self._suffix_ids)) if (cfg.mode == "latent" and z is not None) else \
            self._latent_extra(cfg.mode)
        cache_len = self._cache_len(cfg, L + extra)
        cache = self._new_cache(cache_len)
        n_latents = 0
        if cfg.mode == "latent":
            h = self.hidden_states(batch, cache, self._prefill_len(cache_len))  # [P, L, d]
            self._sync()
            t1 = time.perf_counter()
            tm.prefill = t1 - t0
            if z is None:
                z = self.reasoner(h, batch.attention_mask)  # [P, N, d]
            self._sync()
            t2 = time.perf_counter()
            tm.reasoner = t2 - t1
            n_latents = z.shape[1]
            if repeats > 1:
                kv_cache.repeat_rows(cache, repeats)
                z = z.repeat_interleave(repeats, dim=0)
            cache = self._to_pool(cache, cache_len)
            batch = batch.repeat(repeats)
            embeds, mask, pos = self.assemble(batch, z)  # mask [P*k, L+N+S]
            out = self._run(self.base, cache, logits_last=True, inputs_embeds=embeds,
                            attention_mask=kv_cache.padded_mask(mask, cache_len), position_ids=pos)
            self._sync()
            tm.latent_prefill = time.perf_counter() - t2
            lengths = batch.lengths + embeds.shape[1]
            first = out.logits[:, -1]  # [P*k, V]
        else:
            out = self._run(
                self.base, cache, logits_last=True, input_ids=batch.input_ids,
                attention_mask=kv_cache.padded_mask(batch.attention_mask, self._prefill_len(cache_len)),
                position_ids=_positions(batch.attention_mask),
            )
            first = out.logits[:, -1]  # [P, V]
            if repeats > 1:
                kv_cache.repeat_rows(cache, repeats)
                first = first.repeat_interleave(repeats, dim=0)
            cache = self._to_pool(cache, cache_len)
            batch = batch.repeat(repeats)
            mask = batch.attention_mask
            lengths = batch.lengths.clone()
            self._sync()
            tm.prefill = time.perf_counter() - t0
        t3 = time.perf_counter()
        gens = self._decode(first, cache, mask.long(), lengths, cfg, batch, n_latents, tm, cache_len)
        if cfg.mode == "latent":  # GRPO keeps the rollout's z without a second pass over X
            for i, g in enumerate(gens):
                g.latents = z[i]  # z is [P*k, N, d] here, row i of prompt i // k
        return self._finish(gens, tm, t0, t3)

    @torch.no_grad()
    def generate_from_text(
        self, prefixes: Sequence[str | Sequence[int]], config: DecodeConfig | None = None
    ) -> list[Generation]:
        """Answer-only decoding that continues full prefixes, with no layout or chat template added.

        Each prefix is a complete string (tokenised as is, no special tokens added) or a list of token
        ids (used as they are), e.g. `<chat prompt><think>\\n{edited reasoning}\\n</think>\\n\\n` in the
        redundancy analysis. Decoding runs the shared loop in the answer phase, as nothink mode does:
        the answer gets at most `config.max_gen_toks` tokens; `config.mode` is not used. So
        `generate_from_text(lm.prefix_texts(p, "nothink"), cfg)` equals `generate(p, cfg)` in nothink mode.
        """
        cfg = config or DecodeConfig()
        if cfg.mode != "nothink":
            cfg = dataclasses.replace(cfg, mode="nothink")
        if not prefixes:
            return []
        t0 = time.perf_counter()
        ids = [self._encode(p) if isinstance(p, str) else [int(t) for t in p] for p in prefixes]
        for i, row in enumerate(ids):
            if not row:
                raise LRTError(f"prefix {i} is empty: give at least one token to continue from")
            if self.max_context is not None and len(row) >= self.max_context:
                raise LRTError(
                    f"prefix {i} is {len(row)} tokens, longer than the base's context of {self.max_context}: "
                    "shorten it"
                )
        batch = self._left_pad(ids)
        tm = Timings()
        cache_len = self._cache_len(cfg, batch.input_ids.shape[1])
        cache = self._new_cache(cache_len)
        out = self._run(
            self.base, cache, logits_last=True, input_ids=batch.input_ids,
            attention_mask=kv_cache.padded_mask(batch.attention_mask, self._prefill_len(cache_len)),
            position_ids=_positions(batch.attention_mask),
        )
        cache = self._to_pool(cache, cache_len)
        self._sync()
        t1 = time.perf_counter()
        tm.prefill = t1 - t0
        gens = self._decode(out.logits[:, -1], cache, batch.attention_mask.long(), batch.lengths.clone(), cfg,
                            batch, 0, tm, cache_len)
        return self._finish(gens, tm, t0, t1)

    def _finish(self, gens: list[Generation], tm: Timings, t0: float, t_decode: float) -> list[Generation]:
        """Close the timings of a generate call and share its wall time out over the samples."""
        self._sync()
        tm.decode = time.perf_counter() - t_decode
        total = time.perf_counter() - t0
        for g in gens:
            g.account.seconds = total / len(gens)
        self.last_timings = tm
        return gens

    def _decode(
        self, logits: torch.Tensor, cache, mask: torch.Tensor, lengths: torch.Tensor, cfg: DecodeConfig,
        batch: PromptBatch, n_latents: int, tm: Timings, cache_len: int | None = None,
    ) -> list[Generation]:
        """The batched decode loop. One token per row per step; forced tokens replace samples.

        logits: [B, V] for the first generated position; mask: [B, L0] over what the cache holds;
        lengths: [B] tokens so far; cache_len: the slots of a static cache (None: dynamic).

        Every per-row decision (phase, caps, why a row finished) is a tensor op on the device. The host
        looks every `sync_every` steps (is every row done? a stop string? non-finite logits?); a row that
        finished in between is frozen on the device (it emits pads that are not kept), and a stop string
        found late is traced back to the step it appeared at, so outputs and accounts do not depend on
        the interval.

        Finished rows leave the base's step (`drop_finished`): when the host sees that at most half the
        rows in the cache are unfinished, the cache keeps only those (`rows` [A], their indices in the
        batch). One long answer then no longer makes the whole batch decode to its length (lm-eval's
        nothink at budget 512, 256 rows: mean 15 tokens, longest 158). The per-row state, the sampling
        draw and `tokens` stay [B]: the sampler draws the same random numbers for every row whether or
        not finished rows are in the step, so outputs are the same as with every row in it.
        """
        dev = logits.device
        B = logits.shape[0]
        think = cfg.mode == "think"
        close_id = layout.think_close_id(self.tokenizer, "think") if think else -1
        forced = torch.tensor(self._forced_ids, device=dev)  # [F]
        F = forced.numel()
        cfg = self._decode_config(cfg)
        eos = torch.tensor([] if cfg.ignore_eos else self.eos_ids, dtype=torch.long, device=dev)
        in_budget = think and cfg.allowance_in_budget
        max_steps = cfg.max_new_tokens
        sync_every = self._sync_interval()
        # Per-row answer cap: under allowance_in_budget it is what the row's reasoning left of B.
        answer_cap = torch.full((B,), cfg.answer_cap, dtype=torch.long, device=dev)  # [B]
        gen = None
        if cfg.temperature > 0:
            gen = torch.Generator(device=dev)
            # Without a seed, draw one from torch's global RNG (which callers such as lm-eval seed).
            gen.manual_seed(cfg.seed if cfg.seed is not None else int(torch.randint(0, 2**62, (1,))))

        phase = torch.full((B,), REASON if think else ANSWER, dtype=torch.long, device=dev)
        n_reason = torch.zeros(B, dtype=torch.long, device=dev)
        n_forced = torch.zeros(B, dtype=torch.long, device=dev)
        n_answer = torch.zeros(B, dtype=torch.long, device=dev)
        forced_pos = torch.zeros(B, dtype=torch.long, device=dev)
        # index in `tokens` of answer token 0 (think: "never" until the reasoning closes)
        answer_start = torch.full((B,), max_steps if think else 0, dtype=torch.long, device=dev)
        finish = torch.zeros(B, dtype=torch.long, device=dev)  # _FINISH code, 0 while running
        end_step = torch.full((B,), -1, dtype=torch.long, device=dev)  # the step a row finished at
        eos_tok = torch.full((B,), -1, dtype=torch.long, device=dev)  # the EOS id that ended a row
        bad_step = torch.full((), -1, dtype=torch.long, device=dev)  # first step with non-finite logits
        tokens = torch.full((B, max_steps), self.pad_id, dtype=torch.long, device=dev)  # generated ids
        keep = torch.zeros((B, max_steps), dtype=torch.bool, device=dev)  # which ids are output
        if cfg.score_answers:  # per step, so that a stop found late can drop what followed it
            step_lp = torch.zeros((B, max_steps), dtype=torch.float32, device=dev)
            scored = torch.zeros((B, max_steps), dtype=torch.bool, device=dev)  # answer tokens and their EOS
        ctx_limit = self.max_context
        # One attention mask for the whole decode. A compiled step over transformers' StaticCache takes it
        # whole every step (fixed shapes; its causal mask hides the slots not yet written); otherwise the
        # step takes the prefix the cache holds.
        L0 = mask.shape[1]
        mask = kv_cache.padded_mask(mask, cache_len if cache_len is not None else L0 + max_steps)  # [B, L0 + ...]
        base_step = self._step_fn(cache, cache_len is not None, tm)
        whole_mask = kv_cache.attends_all_slots(cache)
        # Rows the cache holds (None: all B) and their mask. A compiled step keeps its captured batch.
        rows, amask, dropped = None, mask, 0
        can_drop = self.drop_finished and not self.compile

        def sel(t: torch.Tensor) -> torch.Tensor:  # [B, ...] -> [A, ...]
            return t if rows is None else t.index_select(0, rows)

        def widen(out: torch.Tensor) -> torch.Tensor:  # logits [A, V] -> [B, V]; dropped rows get zeros
            return out if rows is None else out.new_zeros(B, out.shape[-1]).index_copy_(0, rows, out)

        # Budget forcing in one forward: every row still reasoning is capped at the same step (each emits
        # one reasoning token per step from step 0), so when no row is left in any other phase, the whole
        # forced close is teacher-forced in one pass instead of F decode steps (--budget 16 on the tiny
        # world: 122 steps -> 17). Not with a compiled step (its captured shapes are one token wide).
        force_at = cfg.reasoning_cap - 1 if (think and F and self.prefill_forced and not whole_mask) else -1

        step, checked = 0, -1  # `checked`: the last step the host looked at
        while step < max_steps:
            # Non-finite logits (damaged weights, fp16 overflow) would make sampling die in multinomial and
            # greedy decode garbage. (-inf alone is legitimate: a model may mask tokens; NaN, +inf or an
            # all -inf row is not.)
            bad_logits = (torch.isnan(logits).any(-1) | ~torch.isfinite(logits.max(-1).values)) & (phase != DONE)
            bad_step = torch.where((bad_step < 0) & bad_logits.any(), step, bad_step)
            logits = torch.where(bad_logits[:, None], 0.0, logits)  # [B, V]: keep multinomial alive until then
            tok = sample_next(logits, cfg.temperature, cfg.top_p, cfg.top_k, gen, cfg.min_p)  # [B]
            forcing = phase == FORCE
            tok = torch.where(forcing, forced[forced_pos.clamp(max=F - 1)], tok)
            done = phase == DONE
            tok = torch.where(done, torch.full_like(tok, self.pad_id), tok)
            is_eos = torch.isin(tok, eos) & ~forcing & ~done
            if cfg.score_answers:
                lg = logits.float()  # [B, V]
                step_lp[:, step] = (lg.gather(-1, tok[:, None]).squeeze(-1) - torch.logsumexp(lg, -1)).clamp(min=-1e4)
                scored[:, step] = (phase == ANSWER) & ~done
            tokens[:, step] = tok
            keep[:, step] = ~done & ~is_eos

            reason = (phase == REASON) & ~is_eos
            answer = (phase == ANSWER) & ~is_eos
            n_reason += reason.long()
            n_forced += forcing.long()
            n_answer += answer.long()
            # State updates use torch.where, never `x[bool_mask] = v`: on CUDA that is a nonzero() and a
            # host sync each.
            # eos ends the row in any phase
            new_phase = torch.where(is_eos, DONE, phase)
            # reasoning: a natural </think> opens the answer; hitting the cap starts forcing
            closed = reason & (tok == close_id)
            new_phase = torch.where(closed, ANSWER, new_phase)
            answer_start = torch.where(closed, step + 1, answer_start)
            if in_budget:
                answer_cap = torch.where(closed, cfg.max_gen_toks - n_reason, answer_cap)
            capped = reason & ~closed & (n_reason >= cfg.reasoning_cap)
            new_phase = torch.where(capped, FORCE, new_phase)
            # forcing: after the last forced token the answer starts
            forced_pos = torch.where(capped, 0, forced_pos) + forcing.long()
            forced_done = forcing & (forced_pos >= F)
            new_phase = torch.where(forced_done, ANSWER, new_phase)
            answer_start = torch.where(forced_done, step + 1, answer_start)
            if in_budget:
                answer_cap = torch.where(forced_done, cfg.max_gen_toks - n_reason - n_forced, answer_cap)
            # answer: the allowance / budget caps it
            new_phase = torch.where(answer & (n_answer >= answer_cap), DONE, new_phase)
            lengths = lengths + 1
            at_ctx = (lengths >= ctx_limit) if ctx_limit is not None else torch.zeros_like(is_eos)
            new_phase = torch.where(at_ctx, DONE, new_phase)
            # why rows finished this step: eos, else the context, else a cap
            ended = (new_phase == DONE) & (phase != DONE)
            why = torch.where(is_eos, _EOS, torch.where(at_ctx, _CONTEXT, _LENGTH))
            finish = torch.where(ended, why, finish)
            end_step = torch.where(ended, step, end_step)
            eos_tok = torch.where(ended & is_eos, tok, eos_tok)
            phase = new_phase
            if step - checked >= sync_every or step == max_steps - 1:
                if cfg.stop:
                    stopped = self._check_stops(tokens, answer_start, checked + 1, step, finish, end_step, cfg.stop)
                    for b, t in stopped.items():  # the row ends at step t; what it generated after is dropped
                        keep[b, t + 1 :] = False
                        if cfg.score_answers:
                            scored[b, t + 1 :] = False
                        n_answer[b] = keep[b, int(answer_start[b]) :].sum()  # the EOS a stop may end on is not kept
                        finish[b], end_step[b], eos_tok[b], phase[b] = _STOP, t, -1, DONE
                checked = step
                first_bad, n_live = torch.stack([bad_step, (phase != DONE).sum()]).tolist()  # host sync
                all_done = n_live == 0
                if first_bad >= 0:
                    raise LRTError(
                        f"the base produced non-finite logits (NaN/inf) at decode step {first_bad}: its weights "
                        "are damaged or the dtype overflows; check the model files, or try dtype=float32 / bfloat16"
                    )
                if all_done:
                    break
                if can_drop and n_live <= DROP_FINISHED_AT * (B if rows is None else rows.numel()):
                    keep_rows = (sel(phase) != DONE).nonzero().squeeze(1)  # [A'] positions in the cache
                    kv_cache.select_rows(cache, keep_rows)
                    rows = keep_rows if rows is None else rows.index_select(0, keep_rows)
                    amask = amask.index_select(0, keep_rows)
                    dropped += 1
            if step == force_at and step + F < max_steps - 1 and self._all_forcing(phase, lengths, F, ctx_limit):
                live = phase == FORCE  # [B]; the others are done and take pads, as frozen rows do
                chunk = torch.where(live[:, None], forced.expand(B, F), self.pad_id)  # [B, F]
                tokens[:, step + 1 : step + 1 + F] = chunk
                keep[:, step + 1 : step + 1 + F] = live[:, None]
                n_forced += F * live.long()
                phase = torch.where(live, ANSWER, phase)
                answer_start = torch.where(live, step + F + 1, answer_start)
                if in_budget:
                    answer_cap = torch.where(live, cfg.max_gen_toks - n_reason - n_forced, answer_cap)
                pos = (lengths - 1)[:, None] + torch.arange(F + 1, device=dev)  # [B, 1 + F]
                logits = widen(self._run(self.base, cache, input_ids=sel(torch.cat([tok[:, None], chunk], 1)),
                                         attention_mask=amask[:, : L0 + step + 1 + F],
                                         position_ids=sel(pos)).logits[:, -1])
                lengths = lengths + F
                step += F + 1
                continue
            logits = widen(base_step(sel(tok)[:, None], amask if whole_mask else amask[:, : L0 + step + 1],
                                     sel(lengths - 1)[:, None]))  # [B, V]
            step += 1
        ended_all = bool((end_step >= 0).all())
        tm.steps = int(end_step.max()) + 1 if ended_all else min(step, max_steps)
        tm.extra["sync_every"] = sync_every
        tm.extra["cache"] = self.cache_implementation if cache_len is not None else "dynamic"
        tm.extra["rows_dropped"] = dropped  # times finished rows left the step

        tokens, keep = tokens.cpu(), keep.cpu()
        answer_start = answer_start.tolist()
        finish = [_FINISH.get(c, "length") for c in finish.tolist()]  # still running at the last step: length
        eos_tok = eos_tok.tolist()
        if cfg.score_answers:
            n_scored = scored.sum(-1).clamp(min=1)
            lp_mean = ((step_lp * scored).sum(-1) / n_scored).tolist()
            lp_min = torch.where(scored, step_lp, 0.0).min(-1).values.tolist()
        gens = []
        prompt_len = batch.lengths.tolist()
        for b in range(B):
            ids = tokens[b][keep[b]].tolist()
            text = self._text(ids)
            if cfg.stop and finish[b] == "stop":
                text = self._cut_at_stop(tokens[b], keep[b], answer_start[b] if think else 0, cfg.stop)
            gens.append(
                Generation(
                    text=text,
                    token_ids=ids,
                    account=Account(
                        reasoning_tokens=int(n_reason[b]),
                        forced_tokens=int(n_forced[b]),
                        answer_tokens=int(n_answer[b]),
                        latents=n_latents,
                        prompt_tokens=int(prompt_len[b]),
                        seconds=0.0,
                        finish_reason=finish[b],
                        allowance_in_budget=cfg.allowance_in_budget,
                        answer_logprob_mean=lp_mean[b] if cfg.score_answers else None,
                        answer_logprob_min=lp_min[b] if cfg.score_answers else None,
                    ),
                    eos_id=eos_tok[b] if finish[b] == "eos" else None,
                )
            )
        return gens

    @staticmethod
    def _all_forcing(phase: torch.Tensor, lengths: torch.Tensor, F: int, ctx_limit: int | None) -> bool:
        """Whether every row has just been capped or is done, with room for the forced close (host sync)."""
        ok = ((phase == FORCE) | (phase == DONE)).all()
        if ctx_limit is not None:
            ok = ok & (lengths.max() + F < ctx_limit)
        return bool(ok)

    def _step_fn(self, cache, static: bool, tm: Timings):
        """One decode step of the base: (ids [B, 1], mask, positions [B, 1]) -> next-token logits [B, V].

        With `compile` (and a static cache) it is `torch.compile(base, mode="reduce-overhead")`: on CUDA
        one captured graph per (batch, cache length) replays the whole step. If compiling fails on the
        first step, the eager step takes over, and the timings say so."""
        def eager(ids, mask, pos):
            return self._run(self.base, cache, input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]

        if not (self.compile and static):
            return eager
        if self._compiled_base is None:
            self._compiled_base = torch.compile(self.base, mode="reduce-overhead", dynamic=False)
        state = {"fn": None}

        def compiled(ids, mask, pos):
            torch.compiler.cudagraph_mark_step_begin()  # the last step's outputs are consumed
            return self._run(self._compiled_base, cache, input_ids=ids, attention_mask=mask,
                             position_ids=pos).logits[:, -1]

        def first_then_fixed(ids, mask, pos):
            if state["fn"] is not None:
                return state["fn"](ids, mask, pos)
            written = kv_cache.written(cache)
            try:
                out = compiled(ids, mask, pos)
                state["fn"] = compiled
                tm.extra["decode_step"] = "compiled"
                return out
            except Exception as e:  # noqa: BLE001 - any compiler failure falls back to the eager step
                if kv_cache.written(cache) != written:
                    raise LRTError(f"the compiled decode step failed after writing to the KV cache ({e}); "
                                   "pass compile=False") from e
                import warnings

                warnings.warn(f"compile=True: the decode step could not be compiled ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}); decoding eagerly", stacklevel=2)
                self.compile = False
                tm.extra["decode_step"] = f"eager (compile failed: {type(e).__name__})"
                state["fn"] = eager
                return eager(ids, mask, pos)

        return first_then_fixed

    def _check_stops(self, tokens, answer_start, lo: int, hi: int, finish, end_step, stops) -> dict[int, int]:
        """Rows whose answer text came to contain a stop string at a step in [lo, hi]: {row: that step}.

        The loop checks every few steps; this finds the step where the stop string first appeared, i.e.
        where a check after every step would have ended the row (decoding only a short tail per row)."""
        window = max(len(s) for s in stops) + 8  # in tokens: a token is at least one character
        starts, fin, ends = answer_start.tolist(), finish.tolist(), end_step.tolist()
        rows = tokens[:, max(0, lo - window) : hi + 1].tolist()  # one copy to the host
        off = max(0, lo - window)
        hits = {}
        for b, row in enumerate(rows):
            if fin[b] == _STOP:
                continue
            last = ends[b] if fin[b] else hi  # a finished row is checked up to the step it ended at
            first = max(lo, starts[b])
            if first > last:
                continue
            def text(a: int, t: int, row=row, start=starts[b]) -> str:  # answer text of steps [a-window, t]
                return self._text(row[max(start, a + 1 - window) - off : t + 1 - off])

            if not any(s in text(first, last) for s in stops):  # all the new steps at once
                continue
            for t in range(first, last + 1):  # then the step where the stop string appeared
                if any(s in text(t, t) for s in stops):
                    hits[b] = t
                    break
        return hits

    def _cut_at_stop(self, row: torch.Tensor, keep: torch.Tensor, answer_start: int, stops) -> str:
        head = self._text(row[:answer_start][keep[:answer_start]].tolist())
        ans = self._text(row[answer_start:][keep[answer_start:]].tolist())
        cut = min((ans.find(s) for s in stops if s in ans), default=len(ans))
        return head + ans[:cut]
