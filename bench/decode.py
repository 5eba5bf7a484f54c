"""Decode speed, side by side: our loop (three engines) against HF `generate` (eager and compiled).

    python bench/decode.py --size qwen3-1.7b --device cuda --batch-sizes 1,32 --think-tokens 1024 --out F.json
    python bench/decode.py --world DIR --device cpu --dtype float32 --threads 1 --cold ...   (CPU, tiny base)

Every contender decodes exactly the same number of tokens per row from the same left-padded prompts:
think mode forced to `--think-tokens` reasoning tokens (random weights never choose `</think>`), the s1
forced close, then `--answer-tokens` answer tokens (ignore_eos); HF `generate` gets that many as
min_new_tokens = max_new_tokens. Contenders:

  ours-dynamic   LatentLM over transformers' DynamicCache (the loop before the static cache)
  ours-static    LatentLM over a preallocated cache, eager (the default)
  ours-compiled  LatentLM, static cache + torch.compile(mode="reduce-overhead"): CUDA graphs on CUDA
  hf-eager       model.generate, its default (dynamic) cache
  hf-compiled    model.generate(cache_implementation="static"), which compiles its forward on CUDA

Measurement: per batch size, one untimed call of every contender (compiled ones at the timed shape:
compilation and graph capture happen there), then `--rounds` rounds that alternate the contenders; each figure is the
median over rounds (the best is recorded too). The JSON is written after every batch size
("complete": false until the last). ms/step is the whole call's wall time over its decode
steps (prefill included, the same for all); ours' decode-only ms/step is recorded beside it. Flatness:
ours-static and ours-compiled are also timed at a quarter of the length, so per-step cost at 1/4 and
at full length can be compared. The memory-bandwidth bound (weight bytes / the card's bandwidth, KV
reads excluded) is printed beside the figures when the card is known.

`--cold` (CPU): each contender's first call in a fresh process, against its warm calls in the same
process, alternating contenders across `--rounds` processes: a growing cache faults in new memory every
step, so the first call is slower than a warm one; a preallocated cache should not be.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lrt_bench import provenance  # noqa: E402
from lrt_bench.core import realsize  # noqa: E402
from lrt_bench.core.generation import DecodeConfig, LatentLM  # noqa: E402
from lrt_bench.core.models import load_base, resolve_dtype  # noqa: E402
from lrt_bench.io import atomic_write_json, read_jsonl  # noqa: E402

CONTENDERS = ("ours-dynamic", "ours-static", "ours-compiled", "hf-eager", "hf-compiled")
# Peak memory bandwidth, bytes/s, of cards we may be lent (vendor figures: H100 SXM 3.35 TB/s, H200 4.8 TB/s).
BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Bench:
    def __init__(self, args):
        self.args = args
        dtype = resolve_dtype(args.dtype, args.device, what="--dtype")
        if args.world:  # the tiny world's trained base, made to reason to its budget
            self.base, self.tok = load_base(Path(args.world) / "base", device=args.device, dtype=dtype)
            realsize.never_close(self.base, self.tok)
        else:
            self.base, self.tok, _ = realsize.build(args.size, device=args.device, dtype=dtype, layers=args.layers,
                                                    vocab_size=args.vocab_size, num_latents=1)
        self.lms = {
            "ours-dynamic": LatentLM(self.base, self.tok, cache_implementation="dynamic"),
            "ours-static": LatentLM(self.base, self.tok),
            "ours-compiled": LatentLM(self.base, self.tok, compile=True),
        }
        self.forced = self.lms["ours-static"].forced_tokens

    def prompts(self, batch: int) -> list[str]:
        if self.args.world:
            rows = read_jsonl(Path(self.args.world) / "data" / "eval.jsonl")
            return [rows[i % len(rows)]["problem"] for i in range(batch)]
        return [realsize.synthetic_prompt(self.args.prompt_words, seed=i) for i in range(batch)]

    def steps(self, think: int) -> int:
        return think + self.forced + self.args.answer_tokens

    def call(self, who: str, prompts: list[str], think: int) -> dict:
        """One timed call: wall seconds, decode steps, and (ours) decode-only seconds."""
        dev = self.args.device
        n = self.steps(think)
        _sync(dev)
        t0 = time.perf_counter()
        if who.startswith("ours"):
            lm = self.lms[who]
            cfg = DecodeConfig(mode="think", max_gen_toks=think, answer_allowance=self.args.answer_tokens,
                               ignore_eos=True)
            gens = lm.generate(prompts, cfg)
            _sync(dev)
            wall = time.perf_counter() - t0
            got = {g.account.generated_tokens for g in gens}
            assert got == {n}, f"{who} generated {got} tokens per row, expected {n}"
            tm = lm.last_timings
            return {"wall_s": wall, "steps": n, "decode_s": tm.decode, "engine": dict(tm.extra)}
        lm = self.lms["ours-static"]
        batch = lm.encode_prompts(prompts, "think")
        kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=self.tok.pad_token_id)
        if who == "hf-compiled":
            kw["cache_implementation"] = "static"
            if not dev.startswith("cuda"):  # generate compiles on accelerators only, unless told otherwise
                from transformers import CompileConfig

                cc = CompileConfig()
                cc._compile_all_devices = True
                kw["compile_config"] = cc
        with torch.no_grad():
            out = self.base.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **kw)
        _sync(dev)
        wall = time.perf_counter() - t0
        assert out.shape[1] - batch.input_ids.shape[1] == n, f"{who} generated {out.shape[1]} - prompt tokens"
        return {"wall_s": wall, "steps": n}


def _summary(runs: list[dict], batch: int) -> dict:
    per_step = [r["wall_s"] / r["steps"] * 1e3 for r in runs]
    s = {"ms_per_step_median": statistics.median(per_step), "ms_per_step_best": min(per_step),
         "tokens_per_s_median": batch * 1e3 / statistics.median(per_step), "rounds": len(runs),
         "steps": runs[0]["steps"]}
    if "decode_s" in runs[0]:
        s["decode_ms_per_step_median"] = statistics.median(r["decode_s"] / r["steps"] * 1e3 for r in runs)
        s["engine"] = runs[-1]["engine"]
    return s


def bandwidth_bound(base, device: str) -> dict | None:
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    bw = next((v for k, v in BANDWIDTH.items() if k in name), None)
    if bw is None:
        return None
    weight_bytes = sum(p.numel() * p.element_size() for p in base.parameters())
    return {"card": name, "bandwidth_bytes_per_s": bw, "weight_bytes": weight_bytes,
            "ms_per_step": weight_bytes / bw * 1e3, "tokens_per_s_batch1": bw / weight_bytes}


def warm(args) -> dict:
    b = Bench(args)
    who = [c for c in args.contenders.split(",") if c]
    think = args.think_tokens
    result = {"config": vars(args), "environment": provenance.provenance(),
              "bound": bandwidth_bound(b.base, args.device), "cells": {}, "complete": False}
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    for batch in sizes:
        prompts = b.prompts(batch)
        for c in who:  # warm-up; compiled contenders at the timed shapes (compilation and capture happen there)
            t0 = time.perf_counter()
            b.call(c, prompts, think if "compiled" in c else min(think, 32))
            print(f"batch {batch} {c}: warm-up {time.perf_counter() - t0:.1f} s", flush=True)
        runs = {c: [] for c in who}
        for r in range(args.rounds):
            for c in (who if r % 2 == 0 else who[::-1]):  # alternate the order too
                runs[c].append(b.call(c, prompts, think))
        cells = {c: _summary(v, batch) for c, v in runs.items()}
        for c in [c for c in who if c in ("ours-static", "ours-compiled")]:  # flatness: a quarter of the length
            short = max(1, think // 4)
            b.call(c, prompts, short)
            rs = [b.call(c, prompts, short) for _ in range(args.rounds)]
            cells[c]["ms_per_step_quarter_length_median"] = _summary(rs, batch)["ms_per_step_median"]
        result["cells"][str(batch)] = cells
        result["complete"] = batch == sizes[-1]
        for c, s in cells.items():
            print(f"batch {batch} {c:14s} {s['ms_per_step_median']:8.2f} ms/step  {s['tokens_per_s_median']:9.1f} tok/s",
                  flush=True)
        result["projection"] = projection(result["cells"], b.forced)
        if args.out:
            atomic_write_json(args.out, result)
    return result


# A realistic run to project: MATH-500, 4 samples per problem, think at budget 4,096 (every row assumed
# to reason to the budget: a batch lasts as long as its longest row), a 64-token answer after the close.
PROJECT = {"problems": 500, "repeats": 4, "budget": 4096, "answer_tokens": 64}


def projection(cells: dict, forced: int) -> dict:
    """Wall time of PROJECT at the largest batch measured, per contender, from its measured ms/step
    (at the benchmark's length: the per-step figure at 1/4 length says how far that holds)."""
    batch = max(int(b) for b in cells)
    rows = PROJECT["problems"] * PROJECT["repeats"]
    steps = PROJECT["budget"] + forced + PROJECT["answer_tokens"]
    batches = -(-rows // batch)
    return {**PROJECT, "batch_size": batch, "batches": batches, "steps_per_batch": steps,
            "hours": {c: batches * steps * s["ms_per_step_median"] / 1e3 / 3600 for c, s in cells[str(batch)].items()}}


def cold_one(args) -> dict:
    """In a fresh process: the first call of one contender, then its warm calls."""
    b = Bench(args)
    prompts = b.prompts(int(args.batch_sizes.split(",")[0]))
    first = b.call(args.one, prompts, args.think_tokens)
    rest = [b.call(args.one, prompts, args.think_tokens) for _ in range(3)]
    return {"first_ms_per_step": first["wall_s"] / first["steps"] * 1e3,
            "warm_ms_per_step_best": min(r["wall_s"] / r["steps"] * 1e3 for r in rest)}


def cold(args) -> dict:
    who = [c for c in args.contenders.split(",") if c]
    runs = {c: [] for c in who}
    for r in range(args.rounds):
        for c in (who if r % 2 == 0 else who[::-1]):
            cmd = [sys.executable, __file__, "--one", c] + [a for a in sys.argv[1:] if a != "--cold"]
            if "--out" in cmd:  # the child reports on stdout only
                i = cmd.index("--out")
                del cmd[i : i + 2]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs[c].append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {r} {c}: {runs[c][-1]}", flush=True)
    cells = {c: {"first_ms_per_step_median": statistics.median(x["first_ms_per_step"] for x in v),
                 "warm_ms_per_step_median": statistics.median(x["warm_ms_per_step_best"] for x in v),
                 "rounds": len(v)} for c, v in runs.items()}
    for s in cells.values():
        s["first_over_warm"] = s["first_ms_per_step_median"] / s["warm_ms_per_step_median"]
    result = {"config": vars(args), "environment": provenance.provenance(),
              "cold": cells}
    if args.out:
        atomic_write_json(args.out, result)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="qwen3-1.7b", choices=sorted(realsize.BASES))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--world", default=None, help="time the tiny world's base in DIR instead of --size")
    p.add_argument("--layers", type=int, default=None, help="override the depth (CPU smoke runs)")
    p.add_argument("--vocab-size", type=int, default=None, help="override the vocabulary (CPU smoke runs)")
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--think-tokens", type=int, default=1024)
    p.add_argument("--answer-tokens", type=int, default=16)
    p.add_argument("--prompt-words", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    p.add_argument("--cold", action="store_true", help="first call in a fresh process vs warm calls (CPU)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help="JSON file to write (atomically, after every batch size)")
    args = p.parse_args(argv)
    bad = [c for c in args.contenders.split(",") if c and c not in CONTENDERS]
    if bad:
        p.error(f"unknown contender(s) {', '.join(bad)}: choose from {', '.join(CONTENDERS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(cold_one(args)))
        return 0
    res = cold(args) if args.cold else warm(args)
    if args.out:
        print(f"wrote {args.out}")
    elif not args.cold:
        print(json.dumps(res["cells"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
