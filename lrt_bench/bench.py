"""Latency and throughput of think (full trajectory) vs nothink vs latent, measured side by side.

Every mode runs on the same problems, the same base, the same batch sizes, in one process, one after
the other, after a warm-up batch; what is reported are ratios inside that one run. Tokens per second
are given without latents (generated tokens only) and with latents counted as tokens.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lrt_bench.generation import DecodeConfig, LatentLM


@dataclass
class Cell:
    mode: str
    batch_size: int
    problems: int
    seconds: float  # wall time for all problems
    seconds_per_problem: float  # amortised: seconds / problems
    seconds_per_batch: float  # what one request waits for its batch
    generated_tokens: float  # mean per problem (reasoning + forced + answer)
    reasoning_tokens: float
    answer_tokens: float
    latents: int
    tokens_per_s: float  # generated tokens / s
    tokens_per_s_with_latents: float  # (generated + latents) / s
    accuracy: float | None


def time_mode(
    lm: LatentLM, prompts: list[str], mode: str, batch_size: int, budget: int, answer_allowance: int,
    grade=None, answers: list[str] | None = None,
) -> Cell:
    cfg = DecodeConfig(mode=mode, max_gen_toks=budget, answer_allowance=answer_allowance)
    lm.generate(prompts[:batch_size], cfg)  # warm-up (allocator, kernels, tokenizer caches)
    gens = []
    batches = 0
    t0 = time.perf_counter()
    for i in range(0, len(prompts), batch_size):
        gens += lm.generate(prompts[i : i + batch_size], cfg)
        batches += 1
    seconds = time.perf_counter() - t0
    n = len(gens)
    gen_tok = sum(g.account.generated_tokens for g in gens)
    lat = gens[0].account.latents
    acc = None
    if grade is not None and answers is not None:
        acc = sum(grade(g.text, a) for g, a in zip(gens, answers)) / n
    return Cell(
        mode=mode, batch_size=batch_size, problems=n, seconds=seconds, seconds_per_problem=seconds / n,
        seconds_per_batch=seconds / batches, generated_tokens=gen_tok / n,
        reasoning_tokens=sum(g.account.reasoning_tokens for g in gens) / n,
        answer_tokens=sum(g.account.answer_tokens for g in gens) / n, latents=lat,
        tokens_per_s=gen_tok / seconds, tokens_per_s_with_latents=(gen_tok + lat * n) / seconds, accuracy=acc,
    )


def ratios(cells: list[Cell]) -> dict[str, float]:
    by = {(c.mode, c.batch_size): c for c in cells}
    out: dict[str, float] = {}
    sizes = sorted({c.batch_size for c in cells})
    for bs in sizes:
        think, nothink, latent = (by.get((m, bs)) for m in ("think", "nothink", "latent"))
        if think and latent:
            out[f"think_over_latent_time@bs{bs}"] = think.seconds / latent.seconds
        if nothink and latent:
            out[f"latent_over_nothink_time@bs{bs}"] = latent.seconds / nothink.seconds
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        for m in ("think", "nothink", "latent"):
            a, b = by.get((m, lo)), by.get((m, hi))
            if a and b:
                # problems per second at the large batch over problems per second at batch 1
                out[f"{m}_throughput_bs{hi}_over_bs{lo}"] = a.seconds / b.seconds
    return out


def environment() -> dict:
    return {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def report(cells: list[Cell], rat: dict[str, float], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("mode", "batch", "s/problem", "s/batch", "gen tok", "latents", "tok/s", "tok/s +lat", "acc"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for c in cells:
        table.add_row(
            c.mode, str(c.batch_size), f"{c.seconds_per_problem * 1000:.1f} ms", f"{c.seconds_per_batch * 1000:.1f} ms",
            f"{c.generated_tokens:.1f}", str(c.latents), f"{c.tokens_per_s:.0f}", f"{c.tokens_per_s_with_latents:.0f}",
            "-" if c.accuracy is None else f"{100 * c.accuracy:.1f}%",
        )
    con = Console()
    con.print(table)
    for k, v in rat.items():
        con.print(f"  {k:40s} {v:6.2f}x")


def write(path: str | Path, payload: dict) -> None:
    from lrt_bench.io import atomic_write_json

    atomic_write_json(path, json.loads(json.dumps(payload, default=lambda o: asdict(o))))
