"""Build the tiny world: task data, tokenizer, and a small Qwen3 base trained on CPU to reason.

`build_tiny_world(out)` writes

    OUT/base/             HF model dir (Qwen3ForCausalLM + tokenizer + generation_config)
    OUT/data/train.jsonl  the rows the base was trained on
    OUT/data/eval.jsonl   held-out rows
    OUT/backbone/config.json  a Qwen3Config for G_φ's backbone with the base's layer shapes
    OUT/world.json        seed, recipe, measured accuracies, trace lengths, timings

The build goes into a temporary directory next to OUT and is renamed into place at the end,
so a killed build never leaves half a world. A finished world with the same seed, quick flag
and code version is returned from OUT/world.json without rebuilding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from lrt_bench.core import layout
from lrt_bench.core.layout import THINK_CLOSE, THINK_OPEN
from lrt_bench.errors import LRTError
from lrt_bench.eval.grading import grade_math
from lrt_bench.io import check_writable_dir
from lrt_bench.provenance import cpu
from lrt_bench.tiny.task import (
    DEFAULT_RANGES,
    SLOW,
    Ranges,
    TraceStyle,
    answer_text,
    make_problems,
    write_jsonl,
)
from lrt_bench.tiny.task import (
    EOS as EOS_TEXT,
)
from lrt_bench.tiny.tokenizer import build_tokenizer

# Bump when the build's code changes what it produces; the recipe's own hash is added to it,
# so a changed hyperparameter also invalidates cached worlds.
TINY_VERSION = "4"

# The NoThinking prefill (docs/design.md §4.1).
# The prompt layout is owned by lrt_bench.core.layout: the tiny world trains and measures on the same text.
NOTHINK_PREFILL = layout.NOTHINK_PREFILL
THINK_PREFIX = layout.OPEN

# Two threads (or one on a one-core machine). Measured on 2 cores (torch 2.13, 150 steps of the full
# recipe, 400 sampled D rows): the weights and samples are bit-identical at 1 and 2 threads, and 2
# threads train 1.2-1.5x and sample 1.3x faster when the build has the machine to itself. Builds that
# share the cores with other jobs (two worlds at once) should pass threads=1: OpenMP threads spin at
# barriers, and an oversubscribed build ran up to 7x slower. tests/test_tiny.py checks the
# thread-invariance on the quick world.
TRAIN_THREADS = min(2, os.cpu_count() or 1)

FILLER_WORDS = tuple(
    "okay so well right now then I we it this that the a is am have has had done know think "
    "thought thinking finished finish answer answers problem easy simple quick sure clear fine "
    "good let me just write say see check can will be was already enough more no need time "
    "here next step result and to of in on for with".split()
)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Every knob of one tiny-world build (task, model shape, optimisation, evaluation)."""

    ranges: Ranges
    train_steps_mix: tuple[tuple[int, float], ...]
    eval_steps_mix: tuple[tuple[int, float], ...]
    hidden_size: int
    num_layers: int
    num_heads: int
    head_dim: int
    intermediate_size: int
    backbone_layers: int
    train_steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    min_lr_ratio: float
    weight_decay: float
    # Rows of at most nothink_max_steps steps are written without reasoning with probability
    # nothink_fraction: the model learns to answer easy problems directly, as Qwen3 does in
    # non-thinking mode, and has no direct route to the multi-step ones.
    nothink_fraction: float
    nothink_max_steps: int
    # Think-block contents of those rows: Qwen3's empty block with probability
    # nothink_empty_share, else a random sentence of 3-10 filler words. The sentences teach
    # that whatever text sits in a closed think block, the answer follows; without them a
    # NoThinking prefill is text the model has never seen and it fails on format, not on
    # reasoning. The words are common English, not the NoThinking sentence.
    nothink_empty_share: float
    filler_words: tuple[str, ...]
    # How traces are written (optional restatements, checks, re-computations per step, drawn per row).
    style: TraceStyle
    # Thinking rows whose trace is given damaged (tokens or lines deleted at a rate drawn in
    # [0, fragment_max_p]) with only the answer after it supervised: the base learns to answer from
    # a fragmentary trace, as large models do from noisy text (the redundancy analysis measures it).
    fragment_fraction: float
    fragment_max_p: float
    fragment_line_share: float  # of fragment rows, those with whole lines deleted (the rest: tokens)
    # The first fragment_warm_steps steps draw fragment rows at fragment_warm_fraction only: many
    # fragment rows from the start can keep the base on its plateau (the arithmetic never clicks),
    # so it learns to compute first and to read damaged traces after.
    fragment_warm_steps: int
    fragment_warm_fraction: float
    # SFT data as the paper's D: the base's own sampled think-mode answers on this many distinct train
    # problems, drawn with sft_steps_mix (the full world: the tiny SFT recipe's curriculum of 1- and
    # 2-step problems, where one forward pass of G_φ can still learn the computation).
    n_sft: int
    sft_steps_mix: tuple[tuple[int, float], ...]
    sft_temperature: float
    n_eval: int
    think_max_new_tokens: int
    answer_max_new_tokens: int
    eval_batch_size: int

    @property
    def n_train(self) -> int:
        """One training row per sequence of every batch."""
        return self.train_steps * self.batch_size

    @property
    def warm_rows(self) -> int:
        """The train rows of the fragment warm phase (the first fragment_warm_steps batches)."""
        return self.fragment_warm_steps * self.batch_size


# Tuned on 2 shared CPU cores, one thread. A 0.47M-parameter base reaches ~99% with its trace
# after ~3,000 steps of 16 rows. Measured on the way: batches of 16 learned more per row than
# 32 or 64; lr 1e-2 stalled; 3 layers (at d=64) did not learn; a 0.89M model at batch 64 was
# at 1.5% after 800 steps. Every run sits on a plateau (loss ~1.1) for 600-1,200 steps before
# the arithmetic clicks.
# World v4: 4,800 steps with 60% of the thinking rows given as fragments (v3: 3,200 and 20%), so the
# base reads a damaged trace (measured on seed-0 builds, greedy, first 300 eval problems, lrt-bench
# redundancy: token deletion p = 0.3 / 0.5 cost 14 / 37 points in v3 (100 problems), 5.6 / 21.3 at
# 4,800 steps and 50%, 1.7 / 15.0 at 60%; 70% with max p 0.7 never left the plateau (think 16%);
# 5,600 steps at 50% with fewer line fragments and a "wait, let me verify" line were both worse).
# The 60% recipe was at the edge: on another machine (AMD EPYC, same torch) its seed-0 build never
# left the plateau (think 25.4%, final loss 0.133), so fragments now start after a warm phase of
# 2,000 steps at v3's 20% and are 80% after it (46% of all rows; seed 0 / 1 there: think 92.1% / 94.3%).
FULL = Recipe(
    ranges=DEFAULT_RANGES,
    train_steps_mix=((1, 0.25), (2, 0.25), (3, 0.25), (4, 0.25)),
    eval_steps_mix=((1, 0.25), (2, 0.25), (3, 0.25), (4, 0.25)),
    hidden_size=96, num_layers=4, num_heads=3, head_dim=32, intermediate_size=256,
    backbone_layers=4, train_steps=4800, batch_size=16, lr=2e-3, warmup_steps=150,
    min_lr_ratio=0.05, weight_decay=0.01,
    nothink_fraction=0.6, nothink_max_steps=1, nothink_empty_share=0.3, filler_words=FILLER_WORDS,
    style=SLOW, fragment_fraction=0.8, fragment_max_p=0.6, fragment_line_share=0.3,
    fragment_warm_steps=2000, fragment_warm_fraction=0.2, n_sft=11000, sft_steps_mix=((1, 0.05), (2, 0.95)),
    sft_temperature=0.6,
    n_eval=1000, think_max_new_tokens=400, answer_max_new_tokens=40, eval_batch_size=100,
)
# The quick world: the same task with numbers up to 29 and a 0.23M-parameter base trained
# 1,200 steps (build 106 s at 2 threads; `lrt-bench demo --quick` from nothing 2.8 min). Its base is
# still on its plateau (think 17%, NoThinking 7%): a smoke world for tests. Measured: 2,000 steps
# reach think 61% (1,600: 20%) in a 167 s build, which would put the quick demo from nothing at
# ~4 min, the target's edge, and CI ~2 min longer; not taken.
QUICK = dataclasses.replace(
    FULL, ranges=Ranges(max_value=29, first_value=(10, 29)), hidden_size=64, num_heads=2,
    intermediate_size=192, train_steps=1200, lr=4e-3, warmup_steps=50, n_eval=100,
    n_sft=400, sft_steps_mix=FULL.train_steps_mix,  # D over every step count it trains on
    fragment_fraction=0.2, fragment_warm_steps=0,  # at 1,200 steps more fragment rows would keep the base on its plateau
    style=TraceStyle(check=0.3, redo=0.2, so=0.3, conclude=0.5, answer=1.0, recap=0.3),  # shorter traces: a faster build
)


# A full build whose base is below this greedy think accuracy is refused (see build_tiny_world).
MIN_THINK_ACCURACY = 0.5


def recipe_for(quick: bool) -> Recipe:
    """The recipe a full or quick build uses."""
    return QUICK if quick else FULL


def code_version(recipe: Recipe) -> str:
    """TINY_VERSION plus a short hash of the recipe: any change means a rebuild."""
    blob = json.dumps(dataclasses.asdict(recipe), sort_keys=True).encode()
    return f"{TINY_VERSION}-{hashlib.sha256(blob).hexdigest()[:8]}"


# ---------------------------------------------------------------------------------------------
# Model and data


def make_config(recipe: Recipe, tok: PreTrainedTokenizerFast, num_layers: int) -> Qwen3Config:
    """A Qwen3Config of the recipe's shape; the backbone config differs only in depth."""
    return Qwen3Config(
        vocab_size=len(tok),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_heads,
        head_dim=recipe.head_dim,
        # RoPE has no learned positions: a long context costs nothing and lets the benchmark
        # prompts (LSAT passages are ~2k byte tokens) run through the tiny base.
        max_position_embeddings=8192,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
    )


def chat_prompt(tok: PreTrainedTokenizerFast, problem: str, enable_thinking: bool = True) -> str:
    """The chat-formatted user turn plus the generation prompt (no `<think>` in thinking mode)."""
    messages = [{"role": "user", "content": problem}]
    return tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, enable_thinking=enable_thinking
    )


def make_filler(rng: random.Random, recipe: Recipe) -> str:
    """Think-block text of one non-thinking training row: "" or a random filler sentence."""
    if rng.random() < recipe.nothink_empty_share:
        return ""
    words = [rng.choice(recipe.filler_words) for _ in range(rng.randint(3, 10))]
    return " ".join(words).capitalize() + rng.choice([".", ".", "!", ","])


def nothink_prefix(filler: str) -> str:
    """The given part of a non-thinking row: a think block holding `filler` (may be empty)."""
    return f"{THINK_OPEN}\n{filler + chr(10) if filler else chr(10)}{THINK_CLOSE}\n\n"


@dataclasses.dataclass(frozen=True)
class RowKind:
    """How one training row is written: thinking (its trace), non-thinking (a filler block), or
    fragment (its trace damaged and given, only the answer supervised)."""

    filler: str | None = None  # not None: a non-thinking row whose think block holds this text
    fragment_p: float = 0.0  # > 0: a fragment row, tokens (or lines) deleted at this rate
    fragment_lines: bool = False
    recap: bool = False  # the answer starts with a one-sentence recap


def draw_kinds(rows: list[dict], recipe: Recipe, rng: random.Random) -> list[RowKind]:
    """One RowKind per train row; rows are in training-phase order (see make_batches' phase_rows)."""
    kinds = []
    for i, r in enumerate(rows):
        recap = rng.random() < recipe.style.recap
        fragment_fraction = recipe.fragment_warm_fraction if i < recipe.warm_rows else recipe.fragment_fraction
        if r["steps"] <= recipe.nothink_max_steps and rng.random() < recipe.nothink_fraction:
            kinds.append(RowKind(filler=make_filler(rng, recipe), recap=recap))
        elif rng.random() < fragment_fraction:
            kinds.append(RowKind(fragment_p=rng.uniform(0.05, recipe.fragment_max_p),
                                 fragment_lines=rng.random() < recipe.fragment_line_share, recap=recap))
        else:
            kinds.append(RowKind(recap=recap))
    return kinds


def _encoder(tok: PreTrainedTokenizerFast, texts) -> dict[str, list[int]]:
    """text -> token ids (no special tokens) for each distinct text, in one batched tokenizer call.

    The same ids as `tok.encode(text, add_special_tokens=False)` one text at a time (tests/test_tiny.py
    checks it); 30,000 rows of the full recipe: 5.3 s for encode_training_rows, 14.0 s one text at a time.
    """
    distinct = list(dict.fromkeys(texts))
    ids = tok(distinct, add_special_tokens=False)["input_ids"] if distinct else []
    return dict(zip(distinct, ids))


def _deleted(items: list, p: float, rng: random.Random) -> list:
    """The items, each deleted independently with probability p (one rng draw per item, in order)."""
    return [x for x in items if rng.random() >= p]


def encode_training_rows(
    tok: PreTrainedTokenizerFast, rows: list[dict], kinds: list[RowKind], rng: random.Random
) -> list[tuple[list[int], int]]:
    """Each row as (token ids, index of the first supervised token).

    Thinking rows: `<think>\\n` is given, the trace, `</think>` and the answer are supervised, so
    the model is never taught to close its thinking early, only to continue what it is given.
    Non-thinking rows: the whole think block is given (Qwen3's empty one or a filler sentence).
    Fragment rows: `<think>\\n` + the damaged trace + `\\n</think>\\n\\n` is given (the close the
    redundancy analysis appends), the answer is supervised. The trace is damaged by deleting its
    tokens, or its whole lines (then re-encoded), independently at rate kind.fragment_p.

    Every piece is encoded on its own, as before the batching: the texts first (one batched call),
    then the fragments' rng draws in row order, then the re-encoded line fragments (a second call).
    """
    prompts = {q: chat_prompt(tok, q) for q in dict.fromkeys(r["problem"] for r in rows)}
    answers = [answer_text(r, k.recap) + EOS_TEXT for r, k in zip(rows, kinds)]
    traces = [None if k.filler is not None else r["reasoning"] if k.fragment_p > 0
              else f"{r['reasoning']}{THINK_CLOSE}\n\n" for r, k in zip(rows, kinds)]
    ids = _encoder(tok, [*prompts.values(), *answers, THINK_PREFIX, layout.LATENT_SUFFIX,
                         *(nothink_prefix(k.filler) for k in kinds if k.filler is not None),
                         *(t for t, k in zip(traces, kinds) if t is not None and not k.fragment_lines)])
    # Fragments, in row order (the rng draws of the unbatched build, one by one).
    damaged: list[list[int] | str | None] = []
    for row, kind, trace in zip(rows, kinds, traces):
        if kind.fragment_p <= 0:
            damaged.append(None)
        elif kind.fragment_lines:
            damaged.append("".join(_deleted(row["reasoning"].splitlines(keepends=True), kind.fragment_p, rng)))
        else:
            damaged.append(_deleted(ids[trace], kind.fragment_p, rng))
    ids |= _encoder(tok, [d for d in damaged if isinstance(d, str)])
    out = []
    for row, kind, trace, answer, frag in zip(rows, kinds, traces, answers, damaged):
        prompt = ids[prompts[row["problem"]]]
        if kind.filler is not None:
            given = prompt + ids[nothink_prefix(kind.filler)]
            out.append((given + ids[answer], len(given)))
        elif frag is not None:
            frag_ids = ids[frag] if isinstance(frag, str) else frag
            given = prompt + ids[THINK_PREFIX] + frag_ids + ids[layout.LATENT_SUFFIX]
            out.append((given + ids[answer], len(given)))
        else:
            given = prompt + ids[THINK_PREFIX]
            out.append((given + ids[trace] + ids[answer], len(given)))
    return out


def make_batches(
    encoded: list[tuple[list[int], int]], batch_size: int, pad_id: int, rng: random.Random,
    phase_rows: int = 0,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Length-bucketed, right-padded batches of (input_ids, labels), each [B, T].

    Rows are sorted by length inside windows of 32 batches, so a batch wastes little on
    padding, and the batches are then shuffled. Right padding needs no attention mask: under
    a causal mask real tokens never see the pads after them, and pads carry label -100.
    phase_rows > 0: the first phase_rows rows are trained first (shuffled among themselves),
    then the rest, so a recipe's warm phase (fragment_warm_steps) comes first.
    """
    # An empty phase draws nothing from rng, so phase_rows = 0 batches exactly as one shuffled pass.
    phases = [range(0, phase_rows), range(phase_rows, len(encoded))]
    window = batch_size * 32
    batches = []
    for phase in phases:
        order = list(phase)
        rng.shuffle(order)
        phase_batches = []
        for w in range(0, len(order), window):
            chunk = sorted(order[w : w + window], key=lambda i: len(encoded[i][0]))
            for b in range(0, len(chunk), batch_size):
                idx = chunk[b : b + batch_size]
                width = max(len(encoded[i][0]) for i in idx)
                ids = torch.full((len(idx), width), pad_id, dtype=torch.long)  # [B, T]
                labels = torch.full((len(idx), width), -100, dtype=torch.long)  # [B, T]
                for r, i in enumerate(idx):
                    seq, start = encoded[i]
                    ids[r, : len(seq)] = torch.tensor(seq)
                    labels[r, start : len(seq)] = torch.tensor(seq[start:])
                phase_batches.append((ids, labels))
        rng.shuffle(phase_batches)
        batches += phase_batches
    return batches


def lr_at(step: int, recipe: Recipe) -> float:
    """Linear warmup then cosine decay to min_lr_ratio * lr."""
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, recipe.train_steps - recipe.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return recipe.lr * (recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * cosine)


def train(
    model: Qwen3ForCausalLM, batches: list[tuple[torch.Tensor, torch.Tensor]], recipe: Recipe,
    progress: bool,
) -> list[float]:
    """AdamW over the batches, loss on assistant tokens only; returns the loss per step."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr, betas=(0.9, 0.98), eps=1e-8,
    )
    model.train()
    losses: list[float] = []
    with _progress(progress) as bar:
        task = bar.add_task("tiny world: training base", total=len(batches), loss=float("nan"))
        for step, (ids, labels) in enumerate(batches):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, recipe)
            loss = model(input_ids=ids, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            # Show a smoothed loss: single tiny batches are noisy.
            bar.update(task, advance=1, loss=statistics.fmean(losses[-20:]))
    model.eval()
    return losses


@contextmanager
def _progress(enabled: bool):
    """A rich progress bar with a loss column; a no-op bar when disabled."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), TimeRemainingColumn(),
        disable=not enabled,
    )
    with bar:
        yield bar


# ---------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def generate(
    model: Qwen3ForCausalLM, tok: PreTrainedTokenizerFast, prompts: list[str], max_new_tokens: int,
    batch_size: int, temperature: float = 0.0,
) -> list[list[int]]:
    """Continuations of the prompts (left padded, batched; greedy, or sampled at `temperature` with
    top_p 0.95 from torch's seeded RNG); the new token ids per prompt."""
    sampling = {"do_sample": True, "temperature": temperature, "top_p": 0.95, "top_k": 0} if temperature else {
        "do_sample": False}
    outs: list[list[int]] = []
    for b in range(0, len(prompts), batch_size):
        enc = tok(prompts[b : b + batch_size], return_tensors="pt", padding=True,
                  padding_side="left", add_special_tokens=False)
        gen = model.generate(
            **enc, max_new_tokens=max_new_tokens, **sampling,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )  # [B, T_prompt + T_new]
        for row in gen[:, enc["input_ids"].shape[1] :].tolist():
            # Cut at the first eos; what follows is padding from other rows still running.
            outs.append(row[: row.index(tok.eos_token_id) + 1] if tok.eos_token_id in row else row)
    return outs


def reasoning_length(ids: list[int], close_id: int) -> int:
    """Reasoning tokens of a think-mode continuation: everything before `</think>` (all of it if none came)."""
    return ids.index(close_id) if close_id in ids else len(ids)


def evaluate(
    model: Qwen3ForCausalLM, tok: PreTrainedTokenizerFast, rows: list[dict], recipe: Recipe
) -> dict:
    """Greedy accuracy in the three prompt layouts of docs/design.md §4.1, plus trace lengths."""
    think_prompts = [chat_prompt(tok, r["problem"]) + THINK_PREFIX for r in rows]
    layouts = {
        "think": (think_prompts, recipe.think_max_new_tokens),
        "nothink_prefill": ([chat_prompt(tok, r["problem"]) + NOTHINK_PREFILL for r in rows],
                            recipe.answer_max_new_tokens),
        "nothink_empty": ([chat_prompt(tok, r["problem"], enable_thinking=False) for r in rows],
                          recipe.answer_max_new_tokens),
    }
    close_id = tok.convert_tokens_to_ids(THINK_CLOSE)
    accuracy, by_steps, trace_tokens = {}, {}, []
    for mode, (prompts, max_new) in layouts.items():
        new_ids = generate(model, tok, prompts, max_new, recipe.eval_batch_size)
        correct = [grade_math(tok.decode(ids, skip_special_tokens=True), r["answer"])
                   for ids, r in zip(new_ids, rows)]
        accuracy[mode] = sum(correct) / len(rows)
        by_steps[mode] = {
            str(s): round(statistics.fmean(c for c, r in zip(correct, rows) if r["steps"] == s), 4)
            for s in sorted({r["steps"] for r in rows})
        }
        if mode == "think":
            trace_tokens = [reasoning_length(ids, close_id) for ids in new_ids]
    return {
        "accuracy": {k: round(v, 4) for k, v in accuracy.items()},
        "accuracy_by_steps": by_steps,
        "mean_trace_tokens": round(statistics.fmean(trace_tokens), 2),
        "median_trace_tokens": statistics.median(trace_tokens),
    }


# ---------------------------------------------------------------------------------------------
# The build


@contextmanager
def _isolated_torch(seed: int, threads: int):
    """A set thread count and a private, seeded RNG; the caller's settings come back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(before)


def read_world(out: Path) -> dict | None:
    """The content of OUT/world.json, or None when there is no readable one."""
    try:
        return json.loads((out / "world.json").read_text())
    except (OSError, ValueError):
        return None


def _remove_stale_builds(out: Path) -> None:
    """Delete temp dirs of killed builds of this world (their process no longer exists)."""
    for tmp in out.parent.glob(f".{out.name}.building-*"):
        try:
            os.kill(int(tmp.name.rsplit("-", 1)[1]), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            pass  # alive, someone else's


def build_tiny_world(
    out: str | Path, quick: bool = False, seed: int = 0, progress: bool = True, force: bool = False,
    threads: int = TRAIN_THREADS,
) -> dict:
    """Build (or return the cached) tiny world in `out`; returns the content of world.json.

    quick=True builds the smaller world (numbers up to 29, a smaller base, ~2 minutes on
    2 cores) for tests and demos; the full build takes 10-15 min at 2 threads alone on 2 AMD EPYC cores
    (18.3 min at one thread beside another build). Same seed, quick flag, code and torch CPU kernels (AVX2
    unless LRT_CPU_ISA says otherwise: lrt_bench/cpu_isa.py): same weights, on an AVX2 and on an AVX-512
    AMD EPYC alike. A cached world built with other CPU kernels is rebuilt. force=True rebuilds even when a
    matching world exists.
    threads: torch's CPU threads for the build (TRAIN_THREADS says why 2; the weights do not depend on it).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise LRTError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise LRTError(f"threads must be a positive integer, got {threads!r}")
    out = check_writable_dir(out, "the tiny world's directory").resolve()
    recipe = recipe_for(quick)
    version = code_version(recipe)
    cached = read_world(out)
    if cached is not None and not force and (cached.get("seed"), cached.get("quick"),
                                             cached.get("code_version")) == (seed, quick, version):
        built_with = (cached.get("cpu") or {}).get("torch_capability")  # None: built before it was recorded
        now = torch.backends.cpu.get_cpu_capability()
        if built_with in (None, now):
            return cached
        print(f"rebuilding the tiny world in {out}: it was built with torch's {built_with} CPU kernels and this "
              f"process uses {now} ones, which train other weights (LRT_CPU_ISA, lrt_bench/cpu_isa.py)",
              file=sys.stderr)
    if out.exists() and (not out.is_dir() or (cached is None and any(out.iterdir()))):
        raise LRTError(f"{out} exists and is not a tiny world: pick an empty or new path (--out)")

    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(out)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with _isolated_torch(seed, threads):
            world = _build(tmp, recipe, quick, seed, progress)
        if not quick and world["accuracy"]["think"] < MIN_THINK_ACCURACY:
            # Nothing is cached: a world whose base cannot do its task would make every finding noise.
            # The quick world is a smoke world for tests (17% with its trace on an AMD EPYC core): not checked.
            raise LRTError(
                f"the tiny world's base did not learn its task (seed {seed}: {world['accuracy']['think']:.1%} "
                f"with its trace on the eval split, below {MIN_THINK_ACCURACY:.0%}; final loss "
                f"{world['final_loss']}): its training stayed on the plateau. Build with another seed "
                "(--seed), and report the seed, torch version and CPU as an issue")
        world["code_version"] = version
        text = json.dumps(world, indent=2) + "\n"
        (tmp / "world.json").write_text(text)
        world = json.loads(text)  # the same types (lists, not tuples) as a cached world
        # Swap in: move an old world aside first (rename cannot replace a non-empty dir).
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return world


def _build(tmp: Path, recipe: Recipe, quick: bool, seed: int, progress: bool) -> dict:
    """Write data, base, backbone config into tmp; return world.json's content (sans version).

    Every random draw follows from `seed`: the task generators get derived seeds, torch's RNG
    is seeded by `_isolated_torch`.
    """
    t0 = time.perf_counter()
    tok = build_tokenizer()

    # Data: eval first (distinct problems), then train rows drawn with repetition.
    # Multi-step eval problems never occur in train. One-step problems are not held out: there
    # are only ~1,500 of them (default ranges), each a single arithmetic fact that the base is meant to know by
    # heart, as a real LLM knows 7*8 (and every one of them also occurs as a line of some
    # multi-step trace). Answering those directly is what makes NoThinking score above zero;
    # chaining facts it has never seen chained is what needs the trace.
    eval_rows = make_problems(recipe.n_eval, seed=seed * 1000 + 1,
                              steps_mix=dict(recipe.eval_steps_mix), ranges=recipe.ranges,
                              id_prefix="eval", style=recipe.style)
    # Each train row draws its own trace: a problem that recurs is written differently each time.
    train_rows = make_problems(recipe.n_train, seed=seed * 1000 + 2,
                               steps_mix=dict(recipe.train_steps_mix),
                               exclude={r["problem"] for r in eval_rows if r["steps"] > 1},
                               distinct=False, ranges=recipe.ranges, id_prefix="train", style=recipe.style)
    (tmp / "data").mkdir()
    write_jsonl(eval_rows, tmp / "data" / "eval.jsonl")
    write_jsonl(train_rows, tmp / "data" / "train.jsonl")

    rng = random.Random(seed * 1000 + 3)
    kinds = draw_kinds(train_rows, recipe, rng)
    encoded = encode_training_rows(tok, train_rows, kinds, rng)
    batches = make_batches(encoded, recipe.batch_size, tok.pad_token_id, rng,
                           phase_rows=recipe.warm_rows)

    config = make_config(recipe, tok, recipe.num_layers)
    model = Qwen3ForCausalLM._from_config(config, attn_implementation="sdpa")
    n_params = sum(p.numel() for p in model.parameters())

    t_train = time.perf_counter()
    losses = train(model, batches, recipe, progress)
    train_seconds = time.perf_counter() - t_train

    t_eval = time.perf_counter()
    metrics = evaluate(model, tok, eval_rows, recipe)
    eval_seconds = time.perf_counter() - t_eval

    # SFT data D: the base's own think-mode answers (its mistakes included) on distinct train problems.
    t_sft = time.perf_counter()
    sft_rows = make_problems(recipe.n_sft, seed=seed * 1000 + 4, steps_mix=dict(recipe.sft_steps_mix),
                             exclude={r["problem"] for r in eval_rows}, ranges=recipe.ranges, id_prefix="sft",
                             style=recipe.style)
    sampled = generate(model, tok, [chat_prompt(tok, r["problem"]) + THINK_PREFIX for r in sft_rows],
                       recipe.think_max_new_tokens, recipe.eval_batch_size, temperature=recipe.sft_temperature)
    for r, ids in zip(sft_rows, sampled):
        r["base_response"] = tok.decode(ids, skip_special_tokens=True)
        r["base_correct"] = grade_math(r["base_response"], r["answer"])
    # A response that never closed its thinking has no answer to imitate (Y is the text after </think>).
    sft_closed = [r for r in sft_rows if THINK_CLOSE in r["base_response"]]
    write_jsonl(sft_closed, tmp / "data" / "sft.jsonl")
    sft_seconds = time.perf_counter() - t_sft

    base = tmp / "base"
    model.generation_config = GenerationConfig(
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, do_sample=False
    )
    model.save_pretrained(base)
    tok.save_pretrained(base)
    make_config(recipe, tok, recipe.backbone_layers).save_pretrained(tmp / "backbone")

    tokens = [len(ids) for ids, _ in encoded]
    return {
        "seed": seed,
        "quick": quick,
        "code_version": None,  # filled in by build_tiny_world
        "n_params": n_params,
        "train_seconds": round(train_seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
        "sft_data_seconds": round(sft_seconds, 1),
        "sft_base_accuracy": round(sum(r["base_correct"] for r in sft_rows) / max(1, len(sft_rows)), 4),
        "n_sft": len(sft_closed),
        "build_seconds": round(time.perf_counter() - t0, 1),
        **metrics,
        "final_loss": round(statistics.fmean(losses[-20:]), 4),
        "n_train": len(train_rows),
        "n_eval": len(eval_rows),
        "train_tokens": sum(tokens),
        "nothink_train_fraction": round(sum(k.filler is not None for k in kinds) / len(kinds), 4),
        "fragment_train_fraction": round(sum(k.fragment_p > 0 for k in kinds) / len(kinds), 4),
        "torch_threads": torch.get_num_threads(),
        "recipe": dataclasses.asdict(recipe),
        "paths": {"base": "base", "backbone": "backbone",
                  "train": "data/train.jsonl", "eval": "data/eval.jsonl", "sft": "data/sft.jsonl"},
        "versions": {"torch": torch.__version__, "transformers": _transformers_version()},
        "cpu": cpu(),  # the weights depend on it too (README: "Same bytes")
    }


def _transformers_version() -> str:
    import transformers

    return transformers.__version__
