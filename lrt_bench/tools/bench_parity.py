"""`lrt-bench bench --vs-hf`: `--model lrt` (mode=think) against lm-eval's `--model hf` on the parity task,
same documents, batch size and gen_kwargs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

PARITY_TASK = "lrt_tiny_parity"  # tasks/lrt_tiny/lrt_tiny_parity.yaml: lrt_tiny opened by "<think>\n"


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
    from lrt_bench.eval.evaluate import task_manager

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
    tm = task_manager()  # our task folder, where the parity task lives

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
