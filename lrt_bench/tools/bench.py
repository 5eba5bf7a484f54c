"""`lrt-bench bench`: think (full trajectory) vs nothink vs latent, measured side by side in one run.

    lrt-bench bench [--world DIR] [--reasoner DIR] [--problems 64] [--batch-sizes 1,32] [--vs-hf]
    lrt-bench bench --real-size qwen3-1.7b [--think-tokens 3500] [--answer-tokens 64] [--latents 256] \\
        [--batch-sizes 1,16] [--layers N]

(`python -m lrt_bench.tools.bench ...` takes the same arguments.)

Every mode runs on the same prompts, the same base, the same batch sizes, in one process, one after
the other, each (mode, batch size) after a short warm-up batch of its own shape. What is reported
are ratios inside that one run (timings on a shared machine are noisy; their ratios much less so).
Per cell:

* latency: seconds per problem (amortised over the batch) and per batch (what one request waits);
* throughput: generated tokens / s, and with the N latents counted as tokens;
* peak memory: on CUDA `torch.cuda.max_memory_allocated`, reset before each cell (absolute, and its
  increase over the memory allocated when the cell starts: KV cache, activations, logits). On CPU the
  process's resident set size (RSS) sampled every 5 ms during the cell, absolute and its increase
  over the RSS at the cell's start. RSS counts what the allocator holds, not what tensors use; memory
  freed by an earlier cell and reused is not counted again, so the increase is a lower bound;
* the time split of `LatentLM.last_timings`, summed over batches: prefill of X (the pass that yields
  H_X and the KV cache; includes tokenisation), G_φ, latent prefill ([z, suffix]) and answer decode
  (the step loop; in think mode reasoning, forced close and answer); `other` is what is left
  (harness overhead);
* token counts: reasoning, forced and answer tokens per problem; decode steps (sampled positions) and
  ms per decode forward (decode time / (steps - 1 per batch): the decode loop's cost per token).

Suites (which decode settings the three modes get):

* tiny world, `natural`: think reasons until its own `</think>` (budget `--budget`, s1 forcing if it
  is reached) and answers within `--answer-allowance`; nothink and latent answer within `--budget`;
  EOS ends every answer. An untrained G_φ does not answer like a trained one and may run long: the
  answer token counts are reported beside the times.
* tiny world, `equal-answer`: the same, but every answer is exactly `--answer-tokens` tokens
  (`DecodeConfig(ignore_eos=True)` caps; default: think's mean answer length in `natural`, rounded
  up), so latent, nothink and think differ only by what comes before the answer.
* `--real-size`: `forced`. Random weights decide nothing: think reasons exactly `--think-tokens`
  tokens (the base's `</think>` logit is zeroed in lrt_bench.core.realsize), then the forced close, then
  exactly `--answer-tokens`; nothink and latent answer exactly `--answer-tokens` (ignore_eos).

`--vs-hf` (tiny world) also runs lm-eval on the parity task (`lrt_tiny` with the assistant turn opened
by `<think>\\n`, lm-eval's gen_prefix; `--apply_chat_template`) with `--model lrt --model_args
mode=think` and with lm-eval's stock `--model hf`, same documents, batch size and gen_kwargs, greedy and
sampled, and reports the wall-time ratio of their `generate_until` and of the whole evaluation, and
whether the per-document results are equal (greedy).

Writes `<out-dir>/<name>.json` and `<name>.md` (atomically, after every cell, so a run cut short
keeps what it measured; `"complete": false` until the end).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lrt_bench.core.layout import OPEN
from lrt_bench.errors import LRTError
from lrt_bench.io import check_writable_dir

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
PARITY_TASK = "lrt_tiny_parity"
PARITY_GEN_PREFIX = OPEN  # "<think>\n", what the lrt backend appends in think mode


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


# ----------------------------------------------------------------------------------------- setup


def _environment(device) -> dict:
    import torch

    dev = str(device)
    name = torch.cuda.get_device_name() if dev.startswith("cuda") else (platform.processor() or platform.machine() or "cpu")
    env = {
        "torch": torch.__version__,
        "device": dev,
        "device_name": name,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    try:
        import transformers

        env["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover
        pass
    return env


def environment() -> dict:
    """Kept for older scripts: the environment of a CPU or CUDA run."""
    import torch

    return _environment("cuda" if torch.cuda.is_available() else "cpu")


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(b < 1 for b in sizes):
        raise LRTError(f"--batch-sizes must be positive integers separated by commas, got {text!r}")
    return sizes


def _setup_tiny(args) -> dict:
    import torch

    from lrt_bench.core.generation import LatentLM
    from lrt_bench.core.models import load_base, resolve_dtype, untrained_reasoner
    from lrt_bench.core.reasoner import load_reasoner
    from lrt_bench.eval.data import tiny_dir
    from lrt_bench.eval.grading import grade_math
    from lrt_bench.io import read_jsonl

    world = Path(args.world).expanduser().resolve() if args.world else tiny_dir()
    if not (world / "world.json").is_file():
        raise LRTError(f"no tiny world at {world}: run `lrt-bench tiny build --out {world}` first, or pass --world")
    device = args.device or "cpu"
    dtype = resolve_dtype(args.dtype, device, what="--dtype")
    torch.manual_seed(args.seed)
    base, tok = load_base(world / "base", device=device, dtype=dtype)
    if args.reasoner:
        net, meta = load_reasoner(args.reasoner, base, device=device)
        net.to(dtype=dtype)
        trainer = (meta.recipe or {}).get("trainer")  # "sft" | "grpo" | "untrained" | None (not recorded)
        bits = [b for b in (trainer, None if meta.step is None else f"step {meta.step}") if b]
        label = f"latent (G_φ {Path(args.reasoner).name}" + (f": {' '.join(bits)}" if bits else "") + ")"
        reasoner = {"path": str(args.reasoner), "trained": None if trainer is None else trainer != "untrained",
                    "trainer": trainer, "step": meta.step, "num_latents": net.num_latents,
                    "fusion": meta.network.fusion}
    else:
        latents = args.latents or 16
        net = untrained_reasoner(base, world / "backbone" / "config.json", num_latents=latents)
        net = net.to(device=device, dtype=dtype).eval()
        label = "latent (untrained G_φ)"
        reasoner = {"path": None, "trained": False, "num_latents": latents, "fusion": net.config.fusion,
                    "note": "randomly initialised G_φ sized from the world's backbone config: same shapes "
                            "and cost as a trained one, answers not meaningful"}
    rows = read_jsonl(world / "data" / "eval.jsonl")[: 64 if args.problems is None else args.problems]
    if not rows:
        raise LRTError(f"--problems must be >= 1 (the world has {len(read_jsonl(world / 'data' / 'eval.jsonl'))})")
    return {
        "lm": LatentLM(base, tok, net), "prompts": [r["problem"] for r in rows],
        "answers": [r["answer"] for r in rows], "grade": grade_math, "label": label,
        "setup": {"kind": "tiny", "world": str(world), "reasoner": reasoner, "problems": len(rows),
                  "dtype": str(dtype).replace("torch.", ""),
                  "base_params": sum(p.numel() for p in base.parameters())},
    }


def _setup_real(args) -> dict:
    import torch

    from lrt_bench.core.generation import LatentLM
    from lrt_bench.core.models import resolve_dtype
    from lrt_bench.core.realsize import BASES, build, synthetic_prompt

    if args.real_size not in BASES:
        raise LRTError(f"unknown --real-size {args.real_size!r}: use one of {', '.join(BASES)}")
    if args.reasoner:
        raise LRTError("--reasoner needs a trained base: --real-size builds random weights, use the tiny world "
                       "or a real checkpoint through lm_eval --model lrt")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = resolve_dtype(args.dtype, device, what="--dtype")
    latents = args.latents or 256
    torch.manual_seed(args.seed)
    base, tok, net = build(args.real_size, num_latents=latents, device=device, dtype=dtype, layers=args.layers)
    n = args.problems or max(_parse_sizes(args.batch_sizes))
    prompts = [synthetic_prompt(args.prompt_words, i) for i in range(n)]
    cfg = base.config
    return {
        "lm": LatentLM(base, tok, net), "prompts": prompts, "answers": None, "grade": None,
        "label": "latent (random G_φ, Qwen3-Embedding-0.6B size)",
        "setup": {"kind": "real_size", "model": args.real_size, "layers": cfg.num_hidden_layers,
                  "layers_overridden": args.layers is not None, "problems": n, "prompt_words": args.prompt_words,
                  "dtype": str(dtype).replace("torch.", ""),
                  "base_params": sum(p.numel() for p in base.parameters()),
                  "reasoner": {"trained": False, "num_latents": latents,
                               "backbone_layers": net.backbone.config.num_hidden_layers,
                               "params": sum(p.numel() for p in net.parameters())}},
    }


def _suites(args, lm) -> list[tuple[str, dict, dict | None]]:
    """[(suite, {mode: DecodeConfig}, {mode: expected counts} or None)]; the tiny equal-answer suite
    is added after `natural` has run (its default length comes from it)."""
    from lrt_bench.core.generation import DecodeConfig

    if args.real_size:
        T, A = args.think_tokens, args.answer_tokens or 64
        F = len(lm._forced_ids)
        cfgs = {
            "think": DecodeConfig(mode="think", max_gen_toks=T, answer_allowance=A, ignore_eos=True),
            "nothink": DecodeConfig(mode="nothink", max_gen_toks=A, ignore_eos=True),
            "latent": DecodeConfig(mode="latent", max_gen_toks=A, ignore_eos=True),
        }
        expected = {
            "think": {"reasoning_tokens": T, "forced_tokens": F, "answer_tokens": A},
            "nothink": {"reasoning_tokens": 0, "forced_tokens": 0, "answer_tokens": A},
            "latent": {"reasoning_tokens": 0, "forced_tokens": 0, "answer_tokens": A},
        }
        return [("forced", cfgs, expected)]
    cfgs = {
        "think": DecodeConfig(mode="think", max_gen_toks=args.budget, answer_allowance=args.answer_allowance),
        "nothink": DecodeConfig(mode="nothink", max_gen_toks=args.budget),
        "latent": DecodeConfig(mode="latent", max_gen_toks=args.budget),
    }
    return [("natural", cfgs, None)]


def _equal_answer_suite(args, cells: list[Cell]):
    from lrt_bench.core.generation import DecodeConfig

    A = args.answer_tokens
    if not A:
        think = [c.answer_tokens for c in cells if c.suite == "natural" and c.mode == "think"]
        A = max(1, math.ceil(max(think))) if think else 16
    cfgs = {
        "think": DecodeConfig(mode="think", max_gen_toks=args.budget, answer_allowance=A, ignore_eos=True),
        "nothink": DecodeConfig(mode="nothink", max_gen_toks=A, ignore_eos=True),
        "latent": DecodeConfig(mode="latent", max_gen_toks=A, ignore_eos=True),
    }
    expected = {m: {"answer_tokens": A} for m in MODES}
    return ("equal-answer", cfgs, expected), A


# ---------------------------------------------------------------------------------------- vs hf


def _parity_task_manager(tmp: Path):
    """A TaskManager that also knows `lrt_tiny_parity` (= bench/tasks/lrt_tiny_parity.yaml)."""
    from lm_eval.tasks import TaskManager

    from lrt_bench.eval._lm_eval_hook import tasks_dir

    base_yaml = Path(tasks_dir()) / "lrt_tiny" / "lrt_tiny.yaml"
    (tmp / f"{PARITY_TASK}.yaml").write_text(
        f"include: {json.dumps(str(base_yaml))}\ntask: {PARITY_TASK}\ngen_prefix: {json.dumps(PARITY_GEN_PREFIX)}\n"
    )
    return TaskManager(include_path=str(tmp))


def vs_hf(world: Path, *, limit: int, batch_size: int, max_gen_toks: int, device: str = "cpu",
          settings: tuple[str, ...] = ("greedy", "sampled"), repeats: int = 1, log=print) -> dict:
    """`--model lrt` (mode=think) against lm-eval's `--model hf` on the parity task, same flags.

    Both: `--tasks lrt_tiny_parity --apply_chat_template --batch_size B --limit N --gen_kwargs ...`,
    `--model_args pretrained=<world>/base` (+ `mode=think` for lrt). Times each backend's
    `generate_until` (the generation itself) and the whole `simple_evaluate` (loading included).
    """
    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM

    from lrt_bench.eval.backend import LRTLM

    os.environ["LRT_TINY_DIR"] = str(world)
    base = str(world / "base")
    gen_kwargs = {
        "greedy": {"do_sample": False, "temperature": 0, "max_gen_toks": max_gen_toks},
        "sampled": {"do_sample": True, "temperature": 0.6, "top_p": 0.95, "max_gen_toks": max_gen_toks},
    }
    out: dict[str, Any] = {
        "task": PARITY_TASK, "limit": limit, "batch_size": batch_size, "max_gen_toks": max_gen_toks, "repeats": repeats,
        "flags": f"--tasks {PARITY_TASK} --apply_chat_template --batch_size {batch_size} --limit {limit}",
        "model_args": {"hf": f"pretrained={base}", "lrt": f"pretrained={base},mode=think"}, "settings": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tm = _parity_task_manager(Path(tmp))
        def one(backend: str, name: str) -> tuple[dict, float, float]:
            torch.manual_seed(1234)
            t0 = time.perf_counter()
            lm = (HFLM if backend == "hf" else LRTLM)(
                pretrained=base, device=device, batch_size=batch_size, **({"mode": "think"} if backend == "lrt" else {})
            )
            gen_s = [0.0]
            inner = lm.generate_until

            def timed(requests, *a, **kw):
                t = time.perf_counter()
                try:
                    return inner(requests, *a, **kw)
                finally:
                    gen_s[0] += time.perf_counter() - t

            lm.generate_until = timed
            r = lm_eval.simple_evaluate(
                model=lm, tasks=[PARITY_TASK], task_manager=tm, limit=limit, gen_kwargs=gen_kwargs[name],
                apply_chat_template=True, log_samples=True, bootstrap_iters=0, random_seed=0, numpy_random_seed=0,
                torch_random_seed=0, fewshot_random_seed=0,
            )
            return r, gen_s[0], time.perf_counter() - t0

        for name in settings:
            row: dict[str, Any] = {"gen_kwargs": gen_kwargs[name]}
            res: dict[str, dict] = {}
            runs: dict[str, list] = {"hf": [], "lrt": []}
            for rep in range(repeats):  # the backends take turns; each reports its fastest run
                for backend in ("hf", "lrt") if rep % 2 == 0 else ("lrt", "hf"):
                    r, gen_s, total = one(backend, name)
                    res.setdefault(backend, r)
                    runs[backend].append({"generate_s": gen_s, "total_s": total})
            for backend in ("hf", "lrt"):
                m = res[backend]["results"][PARITY_TASK]
                row[backend] = {"generate_s": min(x["generate_s"] for x in runs[backend]),
                                "total_s": min(x["total_s"] for x in runs[backend]), "runs": runs[backend],
                                "pass@1": m["pass@1,none"]}
                if backend == "lrt":
                    row[backend]["reasoning_tokens"] = m.get("reasoning_tokens,none")
            row["lrt_over_hf_generate"] = row["lrt"]["generate_s"] / row["hf"]["generate_s"]
            row["lrt_over_hf_total"] = row["lrt"]["total_s"] / row["hf"]["total_s"]
            if name == "greedy":
                a = {s["doc_id"]: (s["pass@1"], s["resps"]) for s in res["lrt"]["samples"][PARITY_TASK]}
                b = {s["doc_id"]: (s["pass@1"], s["resps"]) for s in res["hf"]["samples"][PARITY_TASK]}
                row["per_document_pass@1_equal"] = {k: v[0] for k, v in a.items()} == {k: v[0] for k, v in b.items()}
                row["per_document_responses_equal"] = {k: v[1] for k, v in a.items()} == {k: v[1] for k, v in b.items()}
            out["settings"][name] = row
            log(f"vs hf [{name}] generate: hf {row['hf']['generate_s']:.2f} s, lrt {row['lrt']['generate_s']:.2f} s, "
                f"lrt/hf {row['lrt_over_hf_generate']:.3f}x; whole evaluation lrt/hf {row['lrt_over_hf_total']:.3f}x; "
                f"pass@1 hf {row['hf']['pass@1']:.3f} lrt {row['lrt']['pass@1']:.3f}"
                + (f"; per-document equal: {row['per_document_pass@1_equal']}" if name == "greedy" else ""))
    return out


# ---------------------------------------------------------------------------------------- report


class _PlainConsole:
    """Stand-in for rich's Console where rich is not installed (e.g. a bare GPU machine)."""

    is_terminal = False

    def print(self, text: str = "", **_kw) -> None:
        import re

        print(re.sub(r"\[/?(bold|green|red)?\]", "", str(text)).replace("\\[", "["), flush=True)


def _console():
    try:
        from rich.console import Console
    except ImportError:
        return _PlainConsole()
    con = Console()
    return con if con.is_terminal else Console(width=200)  # logs and tee: no squeezing into 80 columns


def _fmt_mem(m: dict) -> str:
    if not m:
        return "-"
    return f"{m['peak_mb']:.0f} (+{m['increase_mb']:.0f})"


_MAIN_COLS = ["suite", "mode", "batch", "s/problem", "s/batch", "reason tok", "answer tok", "latents", "tok/s",
              "tok/s +lat", "peak MiB (+cell)", "acc"]
_SPLIT_COLS = ["suite", "mode", "batch", "total", "prefill X", "G_φ", "latent prefill", "decode", "other", "steps",
               "ms/forward"]


def _main_row(c: Cell) -> list[str]:
    return [c.suite, c.label, str(c.batch_size), f"{c.seconds_per_problem:.4f}", f"{c.seconds_per_batch:.3f}",
            f"{c.reasoning_tokens + c.forced_tokens:.1f}", f"{c.answer_tokens:.1f}", str(c.latents),
            f"{c.tokens_per_s:.0f}", f"{c.tokens_per_s_with_latents:.0f}", _fmt_mem(c.memory),
            "-" if c.accuracy is None else f"{100 * c.accuracy:.1f}%"]


def _split_row(c: Cell) -> list[str]:
    s = c.split_s
    return [c.suite, c.label, str(c.batch_size), f"{c.seconds:.3f}", f"{s['prefill']:.3f}", f"{s['reasoner']:.3f}",
            f"{s['latent_prefill']:.3f}", f"{s['decode']:.3f}", f"{s['other']:.3f}", str(c.decode_steps),
            f"{c.ms_per_forward:.2f}"]


def print_report(payload: dict, console=None) -> None:
    con = console or _console()
    cells = [Cell(**c) for c in payload["cells"]]
    for title, cols, make in ((payload["title"], _MAIN_COLS, _main_row),
                              ("time split (seconds, summed over batches)", _SPLIT_COLS, _split_row)):
        if isinstance(con, _PlainConsole):
            con.print("\n".join([title, *_md_table(cols, [make(c) for c in cells])]))
            continue
        from rich.table import Table

        table = Table(title=title)
        for col in cols:
            table.add_column(col, justify="left" if col in ("suite", "mode") else "right")
        for c in cells:
            table.add_row(*make(c))
        con.print(table)
    con.print("reason tok = reasoning + forced close, per problem; peak memory "
              + _mem_note(cells), highlight=False)
    for suite, r in payload["ratios"].items():
        con.print(f"[bold]ratios[/] ({suite})")
        for k, v in r.items():
            con.print(f"  {k:40s} {v:8.2f}x")
    for t in payload.get("targets", []):
        mark = "[green]met[/]" if t["met"] else "[red]missed[/]"
        con.print(f"  target \\[{t['suite']}] {t['what']}: {t['ratio']} = {t['measured']:.2f} "
                  f"({t['op']} {t['target']:g}) {mark}", highlight=False)
    if payload.get("equal_answer_tokens"):
        con.print(f"  equal-answer suite: every answer exactly {payload['equal_answer_tokens']} tokens")
    if any(c.exact is False for c in cells):
        con.print("[red]forced token counts were not exact in some cells (see `exact` in the JSON)[/]")


def _mem_note(cells: list[Cell]) -> str:
    kind = cells[0].memory.get("kind", "") if cells else ""
    if kind.startswith("cuda"):
        return "= CUDA max allocated, reset per cell (in brackets: increase over the cell's start)"
    if kind == "rss_sampled":
        return ("= process RSS sampled every 5 ms (in brackets: increase over the cell's start, a lower bound: "
                "memory the allocator already holds is reused)")
    return "= process lifetime peak RSS (ru_maxrss; not resettable per cell)"


def _md_table(cols: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(payload: dict) -> str:
    cells = [Cell(**c) for c in payload["cells"]]
    env = payload["env"]
    lines = [f"# {payload['title']}", "",
             f"{env['device_name']} ({env['device']}), torch {env['torch']}, {env['threads']} threads, {env['time']}."
             + ("" if payload.get("complete", True) else " **Incomplete run.**"), ""]
    setup = payload["setup"]
    if setup["kind"] == "tiny":
        r = setup["reasoner"]
        lines.append(f"Tiny world `{setup['world']}`, {setup['problems']} problems, G_φ: "
                     + (f"`{r['path']}` ({r.get('trainer') or 'trainer not recorded'}, step {r.get('step')}, "
                        f"{r['num_latents']} latents)" if r["path"] else f"untrained ({r['num_latents']} latents)")
                     + ".")
    else:
        lines.append(f"Real size `{setup['model']}` ({setup['layers']} layers"
                     + (", depth overridden" if setup["layers_overridden"] else "")
                     + f", {setup['dtype']}), random weights, G_φ of Qwen3-Embedding-0.6B size "
                     f"({setup['reasoner']['num_latents']} latents), {setup['problems']} synthetic prompts.")
    reps = payload.get("args", {}).get("repeats", 1)
    if reps > 1:
        lines += ["", f"Each cell is the fastest of {reps} runs, the modes taking turns (every run in `runs_s`)."]
    lines += ["", *_md_table(_MAIN_COLS, [_main_row(c) for c in cells]), "",
              "Times in seconds; reason tok = reasoning + forced close, per problem; peak memory "
              + _mem_note(cells) + ".", "", "### Time split (seconds, summed over batches)", "",
              *_md_table(_SPLIT_COLS, [_split_row(c) for c in cells]), ""]
    if payload.get("equal_answer_tokens"):
        lines += [f"Suite `equal-answer`: every answer exactly {payload['equal_answer_tokens']} tokens "
                  "(ignore_eos); think reasons to its own `</think>` first.", ""]
    for suite, r in payload["ratios"].items():
        lines += [f"## Ratios ({suite})", "", "| ratio | value |", "|---|---|"]
        lines += [f"| {k} | {v:.2f}x |" for k, v in r.items()]
        lines.append("")
    if payload.get("targets"):
        lines += ["## Targets", "", "| suite | target | ratio | measured | |", "|---|---|---|---|---|"]
        lines += [f"| {t['suite']} | {t['what']} | {t['ratio']} {t['op']} {t['target']:g} | {t['measured']:.2f} | "
                  f"{'met' if t['met'] else 'missed'} |" for t in payload["targets"]]
        lines.append("")
    if payload.get("vs_hf"):
        v = payload["vs_hf"]
        lines += ["## `--model lrt` (mode=think) vs `--model hf`", "",
                  f"Flags for both: `{v['flags']}`; model_args hf `{v['model_args']['hf']}`, lrt "
                  f"`{v['model_args']['lrt']}`.", "",
                  "| setting | hf generate s | lrt generate s | lrt/hf generate | lrt/hf whole run | pass@1 hf | pass@1 lrt | per-doc equal |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, row in v["settings"].items():
            lines.append(f"| {name} | {row['hf']['generate_s']:.2f} | {row['lrt']['generate_s']:.2f} | "
                         f"{row['lrt_over_hf_generate']:.3f}x | {row['lrt_over_hf_total']:.3f}x | "
                         f"{row['hf']['pass@1']:.3f} | {row['lrt']['pass@1']:.3f} | "
                         f"{row.get('per_document_pass@1_equal', '-')} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def write(path: str | Path, payload: dict) -> None:
    """Write `payload` (dataclasses allowed) as JSON, atomically."""
    from lrt_bench.io import atomic_write_json

    atomic_write_json(path, json.loads(json.dumps(payload, default=lambda o: asdict(o))))


def _write_outputs(out_dir: Path, name: str, payload: dict) -> tuple[Path, Path]:
    from lrt_bench.io import atomic_write_text

    js, md = out_dir / f"{name}.json", out_dir / f"{name}.md"
    write(js, payload)
    atomic_write_text(md, markdown(json.loads(json.dumps(payload, default=lambda o: asdict(o)))))
    return js, md


# ------------------------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> int:
    import torch

    con = _console()
    if args.vs_hf and args.real_size:
        raise LRTError("--vs-hf runs lm-eval on the tiny world's parity task: leave out --real-size")
    if args.layers is not None and not args.real_size:
        raise LRTError("--layers shrinks a --real-size model: use it with --real-size")
    sizes = _parse_sizes(args.batch_sizes or ("1,16" if args.real_size else "1,32"))
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise LRTError(f"--modes takes {', '.join(MODES)} (comma separated), got {args.modes!r}")
    if args.repeats < 1:
        raise LRTError(f"--repeats must be >= 1, got {args.repeats}")
    if args.device is not None:
        try:
            dev = torch.device(args.device)
        except (RuntimeError, ValueError):
            raise LRTError(f"--device {args.device!r} is not a torch device: use cpu, cuda or cuda:N") from None
        if dev.type not in ("cpu", "cuda"):
            raise LRTError(f"--device {args.device!r}: lrt-bench bench runs on cpu or cuda")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise LRTError(f"--device {args.device!r}: no CUDA device is available here; use --device cpu")
    check_writable_dir(args.out_dir, "--out-dir")
    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = _setup_real(args) if args.real_size else _setup_tiny(args)
    lm, prompts = ctx["lm"], ctx["prompts"]
    setup = ctx["setup"]
    name = args.name or (f"real_{args.real_size}" + (f"_L{args.layers}" if args.layers else "")
                         if args.real_size else "tiny")
    out_dir = Path(args.out_dir)
    title = (f"{args.real_size}, random weights, think {args.think_tokens} + answer {args.answer_tokens or 64} tokens, "
             f"{setup['reasoner']['num_latents']} latents" if args.real_size
             else f"tiny world, {len(prompts)} problems, budget {args.budget}")
    payload: dict[str, Any] = {
        "title": title, "complete": False, "env": _environment(lm.device), "setup": setup,
        "args": {k: v for k, v in vars(args).items() if k != "func"}, "cells": [], "ratios": {}, "targets": [],
    }
    targets = REAL_TARGETS if args.real_size else TINY_TARGETS

    def save(pending: list[Cell] = ()) -> None:
        done = cells + list(pending)
        payload["ratios"] = ratios(done)
        payload["targets"] = check_targets(payload["ratios"], targets)
        payload["cells"] = done
        _write_outputs(out_dir, name, payload)

    cells: list[Cell] = []
    suites = _suites(args, lm)
    i = 0
    while i < len(suites):
        suite, cfgs, expected = suites[i]
        for bs in sizes:
            batch_prompts = prompts if not args.real_size or args.problems else prompts[:bs]
            answers = ctx["answers"][: len(batch_prompts)] if ctx["answers"] else None
            best: dict[str, Cell] = {}
            for rep in range(args.repeats):
                # nothink and latent first: a think cell cut short by a time limit leaves the rest measured.
                # With --repeats the modes take turns, so load on a shared machine hits them alike.
                for mode in [m for m in ("nothink", "latent", "think") if m in modes]:
                    label = ctx["label"] if mode == "latent" else mode
                    # accuracy only where answers end naturally (forced lengths append text after the answer)
                    grade = ctx["grade"] if expected is None else None
                    cell = time_cell(lm, batch_prompts, cfgs[mode], bs, suite=suite, label=label, answers=answers,
                                     grade=grade, expected=(expected or {}).get(mode),
                                     warmup=rep == 0 and not args.no_warmup)
                    runs = (best[mode].runs_s if mode in best else []) + [cell.seconds]
                    if mode not in best or cell.seconds < best[mode].seconds:
                        best[mode] = cell
                    best[mode].runs_s = runs
                    if best[mode].exact is not False and cell.exact is False:
                        best[mode].exact = False
                    con.print(f"[{suite}] bs={bs:<3d} {label:32s} {cell.seconds:9.3f} s  "
                              f"{cell.seconds_per_problem * 1000:9.2f} ms/problem  reason {cell.reasoning_tokens:7.1f}  "
                              f"answer {cell.answer_tokens:6.1f} tok  {cell.ms_per_forward:7.2f} ms/forward  "
                              f"mem {_fmt_mem(cell.memory)} MiB", highlight=False, markup=False)
                    save([best[m] for m in MODES if m in best])
            cells.extend(best[m] for m in MODES if m in best)
            save()
        if suite == "natural" and not args.no_equal_answer and ("think" in modes or args.answer_tokens):
            extra, A = _equal_answer_suite(args, cells)
            payload["equal_answer_tokens"] = A
            suites.append(extra)
        i += 1
    if args.vs_hf:
        world = Path(setup["world"])
        payload["vs_hf"] = vs_hf(world, limit=args.hf_limit, batch_size=args.hf_batch_size,
                                 max_gen_toks=args.hf_max_gen_toks, device=str(lm.device), repeats=args.repeats,
                                 log=lambda s: con.print(s, highlight=False, markup=False))
    payload["complete"] = True
    save()
    print_report(json.loads(json.dumps(payload, default=lambda o: asdict(o))), con)
    js, md = _write_outputs(out_dir, name, payload)
    con.print(f"wrote {js} and {md}")
    if any(c.exact is False for c in cells):
        return 1
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--world", help="tiny world directory (default: $LRT_TINY_DIR or ~/.cache/lrt-bench/tiny)")
    p.add_argument("--reasoner", help="reasoner checkpoint dir (default: an untrained G_φ, labelled so)")
    p.add_argument("--problems", type=int, default=None,
                   help="problems per cell (tiny: first N eval problems, default 64; real size: default one "
                        "batch of each batch size)")
    p.add_argument("--batch-sizes", default=None, help="comma separated (default 1,32; real size 1,16)")
    p.add_argument("--modes", default="think,nothink,latent")
    p.add_argument("--budget", type=int, default=256, help="tiny: max_gen_toks of every mode (think's reasoning cap)")
    p.add_argument("--answer-allowance", type=int, default=32, help="tiny: think mode's answer allowance")
    p.add_argument("--answer-tokens", type=int, default=None,
                   help="forced answer length (real size: default 64; tiny equal-answer suite: default think's "
                        "mean answer length)")
    p.add_argument("--no-equal-answer", action="store_true", help="tiny: skip the equal-answer suite")
    p.add_argument("--latents", type=int, default=None, help="latents of the untrained G_φ (tiny 16, real size 256)")
    p.add_argument("--real-size", choices=("qwen3-1.7b", "r1-distill-qwen-1.5b"),
                   help="random-weight base of this size + a Qwen3-Embedding-0.6B-size G_φ (bf16 on GPU)")
    p.add_argument("--think-tokens", type=int, default=3500, help="real size: reasoning tokens of think mode")
    p.add_argument("--prompt-words", type=int, default=150, help="real size: synthetic prompt length (tokens)")
    p.add_argument("--layers", type=int, default=None, help="real size: override the depth (CPU smoke tests)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: tiny cpu; real size cuda if available)")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on cuda, fp32 on cpu) | float32 | bfloat16 | float16")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs per cell, modes taking turns; each cell reports its fastest run (all runs in runs_s)")
    p.add_argument("--vs-hf", action="store_true",
                   help="also time --model lrt (mode=think) against lm-eval's --model hf on the parity task")
    p.add_argument("--hf-limit", type=int, default=64, help="--vs-hf: documents")
    p.add_argument("--hf-batch-size", type=int, default=32, help="--vs-hf: batch size of both backends")
    p.add_argument("--hf-max-gen-toks", type=int, default=200, help="--vs-hf: max_gen_toks of both backends")
    p.add_argument("--out-dir", default="results/bench", help="where <name>.json and <name>.md go")
    p.add_argument("--name", default=None, help="file name stem (default: tiny, or real_<model>[_L<layers>])")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `lrt-bench bench` on an argparse subparsers object."""
    p = subparsers.add_parser("bench", help="latency, throughput, memory of think vs nothink vs latent (one run)",
                              description=__doc__.split("\n\n")[0], allow_abbrev=False)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lrt_bench.tools.bench", description=__doc__.split("\n\n")[0],
                                allow_abbrev=False)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except LRTError as e:
        print(f"lrt-bench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
