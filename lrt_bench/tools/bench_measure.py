"""`lrt-bench bench`'s measurement: one timed cell (mode x batch size) with its token counts, time split
and peak memory, and the ratios between cells checked against the speed targets.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass

MODES = ("think", "nothink", "latent")
# The speed targets (latent vs think / nothink, batch scaling), as (ratio key pattern, op, value). `{bs}` / `{hi}` / `{lo}` /
# `{mode}` are filled in from the run.
TINY_TARGETS = (
    ("think_over_latent_time@bs{bs}", ">=", 5.0, "latent >= 5x faster than full thinking at equal batch"),
    ("latent_over_nothink_time@bs{bs}", "<=", 1.3, "latent <= 1.3x nothink"),
    ("{mode}_throughput_bs32_over_bs1", ">=", 8.0, "batch 32 >= 8x the throughput of batch 1"),
)
# Paper anchor (Table 7, A100, Qwen3-1.7B, 64 MATH-500 problems): thinking 71.09 s, non-thinking
# 14.62 s, LRT 11.79 s.
REAL_TARGETS = (
    ("think_over_latent_time@bs{bs}", ">=", 20.0, "latent >= 20x faster than thinking"),
    ("latent_over_nothink_time@bs{bs}", "<=", 1.10, "latent <= 1.10x non-thinking"),
)

# ------------------------------------------------------------------------------------------ cells


@dataclass
class Cell:
    suite: str
    mode: str
    label: str  # e.g. "latent (untrained G_φ)"
    batch_size: int
    problems: int
    batches: int
    seconds: float  # wall time for all problems
    seconds_per_problem: float  # amortised: seconds / problems
    seconds_per_batch: float  # what one request waits for its batch
    reasoning_tokens: float  # means per problem
    forced_tokens: float
    answer_tokens: float
    generated_tokens: float  # reasoning + forced + answer
    latents: int
    decode_steps: int  # sampled positions, summed over batches
    ms_per_forward: float  # decode seconds / decode forwards (steps - 1 per batch: the last sample needs none)
    tokens_per_s: float  # generated tokens / s
    tokens_per_s_with_latents: float  # (generated tokens + latents) / s
    memory: dict  # {"kind", "peak_mb", "increase_mb"}
    split_s: dict  # prefill / reasoner / latent_prefill / decode / other, seconds summed over batches
    finish: dict  # finish reason -> count
    accuracy: float | None = None
    # forced lengths: did every row generate exactly the counts asked for? (None: not forced)
    exact: bool | None = None
    expected: dict | None = None
    runs_s: list | None = None  # with --repeats: wall time of every run; the cell is the fastest run


class _RssSampler:
    """Peak resident set size of this process while the context is open, sampled every `interval` s."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.kind = "rss_sampled"
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._stop = threading.Event()
        self.start_bytes = self.peak_bytes = self._rss()

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page
        except OSError:  # not Linux: the process's lifetime peak (not resettable), labelled so
            import resource

            self.kind = "ru_maxrss_lifetime"
            scale = 1 if sys.platform == "darwin" else 1024
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_bytes = max(self.peak_bytes, self._rss())

    def __enter__(self) -> _RssSampler:
        self.start_bytes = self.peak_bytes = self._rss()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._rss())


class MemoryProbe:
    """Peak memory of one cell: CUDA peak allocated (reset at entry) or sampled RSS on CPU."""

    def __init__(self, device):
        import torch

        self.cuda = torch.device(device).type == "cuda"
        self.result: dict = {}

    def __enter__(self) -> MemoryProbe:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
        else:
            self._rss = _RssSampler().__enter__()
        return self

    def __exit__(self, *exc) -> None:
        import torch

        mb = 2**20
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            self.result = {"kind": "cuda_max_allocated", "peak_mb": peak / mb, "increase_mb": (peak - self._start) / mb}
        else:
            self._rss.__exit__(*exc)
            r = self._rss
            self.result = {"kind": r.kind, "peak_mb": r.peak_bytes / mb,
                           "increase_mb": (r.peak_bytes - r.start_bytes) / mb}


def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_cell(lm, prompts: list[str], cfg, batch_size: int, *, suite: str, label: str, answers=None, grade=None,
              expected: dict | None = None, warmup: bool = True) -> Cell:
    """Generate for all `prompts` in batches of `batch_size` with `cfg`; time, count and measure memory."""
    from lrt_bench.core.generation import DecodeConfig

    device = lm.device
    if warmup:  # kernels, allocator, caches at this batch shape; short caps
        lm.generate(prompts[:batch_size], DecodeConfig(mode=cfg.mode, nothink_style=cfg.nothink_style,
                                                       max_gen_toks=4, answer_allowance=4, ignore_eos=True))
    gens = []
    split = {"prefill": 0.0, "reasoner": 0.0, "latent_prefill": 0.0, "decode": 0.0}
    steps = batches = 0
    with MemoryProbe(device) as mem:
        _sync(device)
        t0 = time.perf_counter()
        for i in range(0, len(prompts), batch_size):
            gens += lm.generate(prompts[i : i + batch_size], cfg)
            tm = lm.last_timings
            for k in split:
                split[k] += getattr(tm, k)
            steps += tm.steps
            batches += 1
        _sync(device)
        seconds = time.perf_counter() - t0
    split["other"] = max(0.0, seconds - sum(split.values()))
    n = len(gens)
    acc = [g.account for g in gens]
    gen_tok = sum(a.generated_tokens for a in acc)
    lat = acc[0].latents
    finish: dict[str, int] = {}
    for a in acc:
        finish[a.finish_reason] = finish.get(a.finish_reason, 0) + 1
    accuracy = None
    if grade is not None and answers is not None:
        accuracy = sum(bool(grade(g.text, a)) for g, a in zip(gens, answers)) / n
    exact = None
    if expected is not None:
        exact = all(all(getattr(a, k) == v for k, v in expected.items()) for a in acc)
    return Cell(
        suite=suite, mode=cfg.mode, label=label, batch_size=batch_size, problems=n, batches=batches,
        seconds=seconds, seconds_per_problem=seconds / n, seconds_per_batch=seconds / batches,
        reasoning_tokens=sum(a.reasoning_tokens for a in acc) / n,
        forced_tokens=sum(a.forced_tokens for a in acc) / n,
        answer_tokens=sum(a.answer_tokens for a in acc) / n,
        generated_tokens=gen_tok / n, latents=lat, decode_steps=steps,
        ms_per_forward=1000 * split["decode"] / max(1, steps - batches),
        tokens_per_s=gen_tok / seconds, tokens_per_s_with_latents=(gen_tok + lat * n) / seconds,
        memory=mem.result, split_s=split, finish=finish, accuracy=accuracy, exact=exact, expected=expected,
    )


# ---------------------------------------------------------------------------------------- ratios


def ratios(cells: list[Cell]) -> dict[str, dict[str, float]]:
    """Per suite: latent speed-up over think, latent / nothink time, throughput large batch / small."""
    out: dict[str, dict[str, float]] = {}
    for suite in dict.fromkeys(c.suite for c in cells):
        by = {(c.mode, c.batch_size): c for c in cells if c.suite == suite}
        r: dict[str, float] = {}
        sizes = sorted({bs for _, bs in by})
        for bs in sizes:
            think, nothink, latent = (by.get((m, bs)) for m in MODES)
            if think and latent:
                r[f"think_over_latent_time@bs{bs}"] = think.seconds / latent.seconds
            if nothink and latent:
                r[f"latent_over_nothink_time@bs{bs}"] = latent.seconds / nothink.seconds
            if think and nothink:
                r[f"think_over_nothink_time@bs{bs}"] = think.seconds / nothink.seconds
        if len(sizes) >= 2:
            lo, hi = sizes[0], sizes[-1]
            for m in MODES:
                a, b = by.get((m, lo)), by.get((m, hi))
                if a and b:
                    # problems per second at the large batch over problems per second at the small one
                    r[f"{m}_throughput_bs{hi}_over_bs{lo}"] = (b.problems / b.seconds) / (a.problems / a.seconds)
        out[suite] = r
    return out


def check_targets(rat: dict[str, dict[str, float]], targets) -> list[dict]:
    """Evaluate every target on every suite/batch size/mode where its ratio was measured."""
    rows = []
    for suite, r in rat.items():
        for pattern, op, value, text in targets:
            for key, measured in r.items():
                if not _matches(pattern, key):
                    continue
                met = measured >= value if op == ">=" else measured <= value
                rows.append({"suite": suite, "ratio": key, "op": op, "target": value, "measured": measured,
                             "met": met, "what": _fill(text, key)})
    return rows


def _matches(pattern: str, key: str) -> bool:
    import re

    rx = re.escape(pattern)
    for name, sub in (("bs", r"\d+"), ("hi", r"\d+"), ("lo", r"\d+"), ("mode", "|".join(MODES))):
        rx = rx.replace(re.escape("{" + name + "}"), f"(?P<{name}>{sub})")
    return re.fullmatch(rx, key) is not None


def _fill(text: str, key: str) -> str:
    import re

    m = re.search(r"bs(\d+)_over_bs(\d+)", key)
    if m:
        mode = key.split("_throughput")[0]
        return f"{mode}: " + text.format(hi=m.group(1), lo=m.group(2))
    m = re.search(r"@bs(\d+)", key)
    return f"{text} (batch {m.group(1)})" if m else text
