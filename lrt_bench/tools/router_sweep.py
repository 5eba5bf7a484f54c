"""`lrt-bench router-sweep`: hybrid reasoning's accuracy-vs-tokens curve over the router threshold τ.

    lrt-bench router-sweep --base tiny --reasoner runs/demo/train/grpo/reasoner --out runs/router
    lrt-bench router-sweep --base Qwen/Qwen3-1.7B --reasoner R --task math500 --budget 4096 --device cuda

The routing is a pure function of the latent answers' scores (`lrt_bench.eval.router`), so one latent pass
(answers scored) and one think pass over the same problems give the hybrid's outcome at every τ: a
sample kept at τ costs its latent tokens and scores its latent answer; a re-asked one costs both
passes and scores the think answer. τ runs over the scores' quantiles (plus ±inf: all latent / all
think). For each τ the JSON holds accuracy, mean generated tokens, the share re-asked, and the
paired difference to think mode with a bootstrap 95% interval over problems; `--points` adds other
methods' (tokens, accuracy) from a leaderboard CSV to the plot. Writes OUT/router_sweep.json,
OUT/ROUTER.md and OUT/router_sweep.png. Math tasks only (tiny, math500, gsm8k, amc23, amc83), greedy.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from lrt_bench.errors import LRTError

MATH_TASKS = ("tiny", "math500", "gsm8k", "amc23", "amc83")


def add_parser(sub) -> None:
    p = sub.add_parser("router-sweep", help="hybrid mode's accuracy vs tokens over the router threshold")
    p.add_argument("--base", default="tiny", help="base model dir or hub id; `tiny` = the tiny world's base")
    p.add_argument("--reasoner", required=True, help="reasoner checkpoint for the base")
    p.add_argument("--task", default="tiny", help=f"math task: {', '.join(MATH_TASKS)} (default tiny)")
    p.add_argument("--world", help="tiny world directory (default $LRT_TINY_DIR)")
    p.add_argument("--budget", type=int, default=512, help="max_gen_toks B for both passes (default 512)")
    p.add_argument("--score", default="mean_logprob", help="router_score: mean_logprob | min_logprob")
    p.add_argument("--limit", type=int, default=0, help="first N problems (0 = all)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--points", help="leaderboard.csv of other methods to place on the plot (same budget)")
    p.add_argument("--out", default="runs/router", help="output directory (default runs/router)")
    p.set_defaults(func=cmd_router_sweep)


def _docs(task: str, world: Path | None) -> list[dict]:
    from lrt_bench.eval import data

    if task == "tiny":
        return data.load_tiny_docs(world)
    if task not in MATH_TASKS:
        raise LRTError(f"router-sweep runs math tasks ({', '.join(MATH_TASKS)}), not {task!r}")
    return data.load_docs(task)


def _prompt(task: str):
    from lrt_bench.eval import task_utils

    return task_utils.tiny_prompt if task == "tiny" else task_utils.math_prompt


def _run(lm, prompts: list[str], cfg, batch_size: int, label: str) -> list:
    from rich.progress import Progress

    gens: list = []
    with Progress(transient=True) as bar:
        t = bar.add_task(label, total=len(prompts))
        for i in range(0, len(prompts), batch_size):
            gens += lm.generate(prompts[i : i + batch_size], cfg)
            bar.update(t, advance=min(batch_size, len(prompts) - i))
    return gens


def sweep_curve(latent_ok: list[float], latent_tok: list[float], think_ok: list[float], think_tok: list[float],
                scores: list[float]) -> dict[str, Any]:
    """The curve, the intervals against think, and where it lands against the LRT-think line."""
    from lrt_bench.eval import router
    from lrt_bench.tools.findings import paired_bootstrap

    finite = sorted(scores)
    qs = sorted({finite[min(len(finite) - 1, int(q / 20 * len(finite)))] for q in range(21)})
    taus = [-math.inf, *qs, math.inf]
    points = router.sweep(latent_ok, latent_tok, think_ok, think_tok, scores, taus)
    think = {i: v for i, v in enumerate(think_ok)}
    acc_l, tok_l = points[0]["accuracy"], points[0]["mean_generated_tokens"]
    acc_t, tok_t = points[-1]["accuracy"], points[-1]["mean_generated_tokens"]
    for p in points:
        mine = dict(enumerate(router.outcomes(router.route(scores, p["threshold"]), latent_ok, think_ok)))
        d, lo, hi = paired_bootstrap(mine, think)
        p["vs_think_points"], p["vs_think_interval"] = d, [lo, hi]
        # the straight line between all-latent and all-think at this point's token cost
        frac = (p["mean_generated_tokens"] - tok_l) / (tok_t - tok_l) if tok_t != tok_l else 0.0
        p["line_accuracy"] = acc_l + (acc_t - acc_l) * frac
        p["above_line_points"] = 100 * (p["accuracy"] - p["line_accuracy"])
    # a perfect router: re-ask exactly the samples whose latent answer is wrong (the bound on any score)
    n = len(scores)
    wrong = [not c for c in latent_ok]
    oracle = {"accuracy": sum(router.outcomes(wrong, latent_ok, think_ok)) / n,
              "mean_generated_tokens": sum(lt + (0.0 if c else tt) for c, lt, tt
                                           in zip(latent_ok, latent_tok, think_tok)) / n,
              "rerouted": sum(wrong) / n}
    target = [p for p in points if p["accuracy"] >= 0.95 * acc_t and p["mean_generated_tokens"] <= 0.5 * tok_t]
    best = min((p for p in points if p["accuracy"] >= 0.95 * acc_t), key=lambda p: p["mean_generated_tokens"])
    return {"points": points, "latent": {"accuracy": acc_l, "mean_generated_tokens": tok_l},
            "think": {"accuracy": acc_t, "mean_generated_tokens": tok_t},
            "cheapest_within_95pct_of_think": best, "oracle": oracle, "target_met": bool(target)}


def cmd_router_sweep(args: argparse.Namespace) -> int:
    import json

    from lrt_bench.eval import router
    from lrt_bench.io import atomic_write_json, atomic_write_text, check_writable_dir
    from lrt_bench.provenance import provenance

    out = check_writable_dir(args.out, "--out")
    router.check_score(args.score)
    if args.score == "agreement":
        raise LRTError("router-sweep scores single greedy samples: use --score mean_logprob or min_logprob")
    if args.budget < 1 or args.batch_size < 1 or args.limit < 0:
        raise LRTError("--budget and --batch-size must be >= 1, --limit >= 0")
    world = Path(args.world).expanduser() if args.world else None
    docs = _docs(args.task, world)[: args.limit or None]
    prompt = _prompt(args.task)
    prov = provenance()

    import torch

    from lrt_bench.core.generation import DecodeConfig, LatentLM
    from lrt_bench.core.models import load_base
    from lrt_bench.core.reasoner import load_reasoner
    from lrt_bench.eval.data import tiny_dir
    from lrt_bench.eval.grading import grade_math

    base_id = str((world or tiny_dir()) / "base") if args.base == "tiny" else args.base
    base, tok = load_base(base_id, device=args.device, use_safetensors=True)
    net, meta = load_reasoner(args.reasoner, base, device=torch.device(args.device))
    lm = LatentLM(base, tok, net)
    prompts = [prompt(d) for d in docs]
    golds = [str(d["answer"]) for d in docs]
    latent = _run(lm, prompts, DecodeConfig(mode="latent", max_gen_toks=args.budget, score_answers=True),
                  args.batch_size, "latent (scored)")
    think = _run(lm, prompts, DecodeConfig(mode="think", max_gen_toks=args.budget), args.batch_size, "think")
    scores = router.scores(latent, 1, args.score)
    lat_ok = [float(grade_math(g.text, a)) for g, a in zip(latent, golds)]
    th_ok = [float(grade_math(g.text, a)) for g, a in zip(think, golds)]
    result = sweep_curve(lat_ok, [float(g.account.generated_tokens) for g in latent], th_ok,
                         [float(g.account.generated_tokens) for g in think], scores)
    others = _points(args.points, args.budget) if args.points else []
    result.update(task=args.task, budget=args.budget, score=args.score, problems=len(docs), base=base_id,
                  reasoner=str(args.reasoner), reasoner_step=meta.step, other_methods=others,
                  decoding="greedy", provenance=prov)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "router_sweep.json", json.loads(json.dumps(result, default=str)))
    atomic_write_text(out / "ROUTER.md", render(result))
    _plot(result, out / "router_sweep.png")
    print(render(result))
    return 0


def _points(path: str, budget: int) -> list[dict]:
    """(method, mean reasoning+answer tokens, accuracy) of a leaderboard CSV's rows at `budget`."""
    import csv

    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if str(r.get("budget")) == str(budget):
                tokens = float(r.get("reasoning_tokens") or 0) + float(r.get("answer_tokens") or 0)
                rows.append({"method": r["method"], "mean_generated_tokens": tokens,
                             "accuracy": float(r["avg_pass1"]) / 100})
    return rows


def render(r: dict) -> str:
    b = r["cheapest_within_95pct_of_think"]
    lines = [
        f"# Hybrid router sweep: {r['task']}, budget {r['budget']}, score {r['score']}, {r['problems']} problems",
        "",
        f"All latent: {100 * r['latent']['accuracy']:.1f}% at {r['latent']['mean_generated_tokens']:.1f} tokens; "
        f"all think: {100 * r['think']['accuracy']:.1f}% at {r['think']['mean_generated_tokens']:.1f} tokens.",
        f"Cheapest τ within 95% of think's accuracy: τ = {b['threshold']:.4g}, {100 * b['accuracy']:.1f}% at "
        f"{b['mean_generated_tokens']:.1f} tokens ({100 * b['mean_generated_tokens'] / max(1e-9, r['think']['mean_generated_tokens']):.0f}% of "
        f"think's), {100 * b['rerouted']:.0f}% re-asked; vs think {b['vs_think_points']:+.1f} pts "
        f"[{b['vs_think_interval'][0]:+.1f}, {b['vs_think_interval'][1]:+.1f}]. Target (≥ 95% of think's accuracy "
        f"at ≤ 50% of its tokens): {'met' if r['target_met'] else 'not met'}.",
        f"A perfect router (re-asking exactly the wrong latent answers) would reach "
        f"{100 * r['oracle']['accuracy']:.1f}% at {r['oracle']['mean_generated_tokens']:.1f} tokens "
        f"({100 * r['oracle']['mean_generated_tokens'] / max(1e-9, r['think']['mean_generated_tokens']):.0f}% of think's), "
        f"re-asking {100 * r['oracle']['rerouted']:.0f}%.",
        "",
        "| τ | re-asked | accuracy | mean tokens | vs think (pts, 95% CI) | above the latent-think line (pts) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in r["points"]:
        lo, hi = p["vs_think_interval"]
        lines.append(f"| {p['threshold']:.4g} | {100 * p['rerouted']:.0f}% | {100 * p['accuracy']:.1f}% | "
                     f"{p['mean_generated_tokens']:.1f} | {p['vs_think_points']:+.1f} [{lo:+.1f}, {hi:+.1f}] | "
                     f"{p['above_line_points']:+.1f} |")
    return "\n".join(lines) + "\n"


def _plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    pts = r["points"]
    ax.plot([p["mean_generated_tokens"] for p in pts], [100 * p["accuracy"] for p in pts], "o-", label="hybrid (τ sweep)")
    ends = [r["latent"], r["think"]]
    ax.plot([e["mean_generated_tokens"] for e in ends], [100 * e["accuracy"] for e in ends], "k--", lw=1,
            label="latent-think line")
    for o in r.get("other_methods", []):
        ax.scatter([o["mean_generated_tokens"]], [100 * o["accuracy"]], marker="s")
        ax.annotate(o["method"], (o["mean_generated_tokens"], 100 * o["accuracy"]), fontsize=7)
    ax.set_xlabel("mean generated tokens per sample")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{r['task']}, budget {r['budget']}: hybrid router ({r['score']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
