"""The demo's findings: each of the paper's findings, the paper's number, ours, its interval, met or not.

Reads a demo's output folder (lm-eval results and sample logs under results/b<budget>/<method>/, the
redundancy analysis, demo.json) and writes FINDINGS.md. Accuracy differences between methods are
paired over the same problems (each problem's pass@1 over its samples) with a bootstrap 95% interval
(`paired_bootstrap`); a difference whose interval includes 0 is not a finding. Nothing here runs a
model: the numbers are the committed files' own, so the README's summary can be checked against them.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The demo's method folders -> the labels the findings use.
LABELS = {"think": "think", "nothink": "NoThinking", "lrt-untrained": "LRT (untrained)", "lrt-sft": "LRT (SFT)",
          "lrt": "LRT (SFT + GRPO)", "shorterbetter": "ShorterBetter", "lcr1": "LC-R1"}


@dataclass
class MethodResult:
    """One method at one budget: per-problem pass@1 and per-problem mean token counts."""

    pass1: dict[int, float]  # doc_id -> pass@1 over its samples
    reasoning: dict[int, float]  # doc_id -> mean reasoning tokens
    answer: dict[int, float]  # doc_id -> mean answer tokens
    steps: dict[int, int] = field(default_factory=dict)  # doc_id -> the problem's operations (tiny world docs)

    @property
    def accuracy(self) -> float:
        return 100 * statistics.fmean(self.pass1.values())

    @property
    def reasoning_tokens(self) -> float:
        return statistics.fmean(self.reasoning.values())


PER_PROBLEM = "per_problem.json"


def write_per_problem(out: str | Path) -> Path:
    """OUT/per_problem.json: each method's per-problem pass@1 and token means at each budget, read
    from lm-eval's sample logs (OUT/results/b<budget>/<method>/**/samples_*.jsonl). It is all the
    findings need, so a committed run keeps it and not the bulky sample logs (full responses)."""
    from lrt_bench.io import atomic_write_json, read_jsonl

    target = Path(out) / PER_PROBLEM
    # cells whose sample logs are gone (a committed run resumed) keep what was collected before
    runs: dict[str, dict[str, list]] = json.loads(target.read_text()) if target.is_file() else {}
    for bdir in sorted(Path(out, "results").glob("b*")):
        if not bdir.name[1:].isdigit():
            continue
        for mdir in sorted(p for p in bdir.iterdir() if p.is_dir()):
            files = sorted(mdir.rglob("samples_*.jsonl"))
            if not files:
                continue
            cols: dict[str, list] = {"doc_id": [], "pass1": [], "reasoning": [], "answer": [], "steps": []}
            for smp in read_jsonl(files[-1]):
                for col, key in (("doc_id", "doc_id"), ("pass1", "pass@1"), ("reasoning", "reasoning_tokens"),
                                 ("answer", "answer_tokens")):
                    cols[col].append(smp[key])
                cols["steps"].append((smp.get("doc") or {}).get("steps"))
            if not all(isinstance(n, int) for n in cols["steps"]):
                del cols["steps"]  # docs that do not say their number of operations (not the tiny world)
            runs[f"{bdir.name}/{mdir.name}"] = cols
    atomic_write_json(target, dict(sorted(runs.items())))
    return target


def load_demo(out: str | Path) -> dict[int, dict[str, MethodResult]]:
    """budget -> method folder -> MethodResult, from OUT/per_problem.json (`write_per_problem`)."""
    path = Path(out) / PER_PROBLEM
    if not path.is_file():
        return {}
    runs: dict[int, dict[str, MethodResult]] = {}
    for key, cols in json.loads(path.read_text()).items():
        budget, method = key.split("/", 1)
        ids = cols["doc_id"]
        runs.setdefault(int(budget[1:]), {})[method] = MethodResult(
            dict(zip(ids, map(float, cols["pass1"]))), dict(zip(ids, map(float, cols["reasoning"]))),
            dict(zip(ids, map(float, cols["answer"]))), dict(zip(ids, cols.get("steps", []))))
    return runs


def paired_bootstrap(a: dict[int, float], b: dict[int, float], n_boot: int = 10_000, seed: int = 0
                     ) -> tuple[float, float, float]:
    """Mean of a - b over the problems both have (points), with a bootstrap 95% interval."""
    ids = sorted(set(a) & set(b))
    if not ids:
        raise ValueError("no common problems to compare")
    import numpy as np

    d = np.array([100 * (a[i] - b[i]) for i in ids])  # [n] per-problem differences, points
    rng = np.random.default_rng(seed)
    means = np.concatenate([d[rng.integers(0, len(d), (1000, len(d)))].mean(1)  # [1000] per chunk
                            for _ in range(n_boot // 1000)])
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


@dataclass
class Finding:
    name: str
    target: str
    paper: str
    ours: str
    interval: str = ""
    met: bool | None = None  # None: not measured by the demo


def _diff(runs, budget, x, y) -> tuple[float, float, float] | None:
    got = runs.get(budget, {})
    if x not in got or y not in got:
        return None
    return paired_bootstrap(got[x].pass1, got[y].pass1)


def _fmt_diff(d) -> tuple[str, str]:
    return f"{d[0]:+.1f} pts", f"[{d[1]:+.1f}, {d[2]:+.1f}]"


def findings(out: str | Path, runs: dict[int, dict[str, MethodResult]] | None = None) -> list[Finding]:
    """The paper's findings with their targets, measured on a demo's output (FULL budget = the largest one run)."""
    out = Path(out)
    runs = load_demo(out) if runs is None else runs
    if not runs:
        raise ValueError(f"no demo results in {out / PER_PROBLEM}")
    full, small = max(runs), min(runs)
    at = runs[full]
    rows: list[Finding] = []

    think = at.get("think")
    if think is not None:
        rows.append(_traces(out, think.reasoning_tokens, full))

    red = out / "redundancy" / "redundancy.json"
    if red.is_file():
        r = json.loads(red.read_text())
        acc = {(x["granularity"], round(x["p"], 2)): 100 * x["accuracy"] for x in r["results"]}
        base0 = acc.get(("token", 0.0))
        t3, t5, s5 = acc.get(("token", 0.3)), acc.get(("token", 0.5)), acc.get(("step", 0.5))
        if None not in (base0, t3, t5):
            ours = f"{base0:.0f}% -> {t3:.0f}% (p=0.3), {t5:.0f}% (p=0.5)"
            if s5 is not None:
                ours += f"; step deletion p=0.5: {s5:.0f}%"
            rows.append(Finding("redundancy (Fig. 2)", "token deletion p=0.3 costs <= 3 pts, p=0.5 <= 8 pts",
                                "92.8 -> 90.6 at p=0.5", ours, met=base0 - t3 <= 3 and base0 - t5 <= 8))

    if all("nothink" in runs[b] for b in runs):
        accs = {b: runs[b]["nothink"].accuracy for b in sorted(runs)}
        rows.append(Finding("NoThinking", "between 10% and 40% at every budget", "",
                            ", ".join(f"{v:.1f}% (B={b})" for b, v in accs.items()),
                            met=all(10 <= v <= 40 for v in accs.values())))

    d = _diff(runs, full, "lrt", "nothink")
    if d is not None:
        rows.append(Finding("LRT vs NoThinking", ">= +10 pts, interval excluding 0", "+2.2 avg (Table 1)",
                            *_fmt_diff(d), met=d[0] >= 10 and d[1] > 0))
    d = _diff(runs, full, "lrt", "lrt-sft")
    if d is not None:
        rows.append(Finding("GRPO vs SFT", "SFT + GRPO >= SFT + 3 pts, interval excluding 0", "+7.1 avg (Table 4)",
                            *_fmt_diff(d), met=d[0] >= 3 and d[1] > 0))

    for name in ("shorterbetter", "lcr1"):
        if name in at and think is not None:
            cut = 100 * (1 - at[name].reasoning_tokens / think.reasoning_tokens) if think.reasoning_tokens else 0.0
            d = paired_bootstrap(at[name].pass1, think.pass1)
            beats_small = _diff(runs, small, name, "think")
            ours = (f"reasoning {think.reasoning_tokens:.1f} -> {at[name].reasoning_tokens:.1f} tokens ({cut:.0f}% cut), "
                    f"accuracy {d[0]:+.1f} pts at B={full}")
            if beats_small is not None:
                ours += f", {beats_small[0]:+.1f} pts vs think at B={small}"
            rows.append(Finding(f"baseline {LABELS[name]}", "cuts reasoning >= 30% at <= 3 pts cost; beats the base "
                                "at the small budgets", "Table 1", ours, f"[{d[1]:+.1f}, {d[2]:+.1f}] (B={full})",
                                met=cut >= 30 and d[0] >= -3 and beats_small is not None and beats_small[1] > 0))

    if len(runs) >= 2 and all(m in runs[b] for b in runs for m in ("think", "lrt")):
        think_curve = [runs[b]["think"].accuracy for b in sorted(runs)]
        best_small = max(runs[small], key=lambda m: runs[small][m].accuracy)
        rows.append(Finding(
            "budgets", "think falls as the budget cuts its traces; LRT is best at the smallest budgets", "Table 1",
            "think " + ", ".join(f"{v:.1f}%" for v in think_curve) + f" over B={sorted(runs)}; best at B={small}: "
            f"{LABELS.get(best_small, best_small)} ({runs[small][best_small].accuracy:.1f}%)",
            met=think_curve[0] < think_curve[-1] and best_small == "lrt"))

    rows.append(_latent_count(out))
    rows.append(_efficiency(out))
    rows.append(Finding("seeds", "the findings hold for two world seeds", "", "not measured by one demo run: "
                        "`python -m lrt_bench.tools.findings OUT --seeds OUT2` sets two runs side by side", met=None))

    demo = out / "demo.json"
    if demo.is_file():
        meta = json.loads(demo.read_text())
        sec, reused = meta.get("seconds", {}), meta.get("reused", [])
        train_reused = [r for r in reused if not r.startswith("world")]
        if "total" in sec and train_reused:
            rows.append(Finding("time", "full demo <= 20 min with the world cached, <= 30 min from nothing", "",
                                f"not measured: this run reused {len(train_reused)} finished stages of an earlier "
                                f"one ({sec['total'] / 60:.1f} min for the rest)", met=None))
        elif "total" in sec:
            rows.append(Finding("time", "full demo <= 20 min with the world cached, <= 30 min from nothing", "",
                                f"{sec['total'] / 60:.1f} min (world {sec.get('world', 0) / 60:.1f} min)",
                                met=sec["total"] - sec.get("world", 0) <= 20 * 60 and sec["total"] <= 30 * 60))
    return rows


LATENT_COUNTS = (4, 8, 16, 32, 64)
LATENT_COUNT_FILE = "latent_count.json"  # written by bench/tiny_sweep.py --out OUT/latent_count.json
BENCH_FILE = "bench.json"  # written by lrt-bench bench --out-dir OUT --name bench
TRACES_FILE = "traces.json"  # written by the demo's traces stage (lrt_bench.tools.traces)


def _traces(out: Path, mean_len: float, budget: int) -> Finding:
    """Mean trace length at the full budget, and the spread within groups (OUT/traces.json, the demo's
    `lrt_bench.tools.traces` stage)."""
    target = "mean reasoning length >= 60 tokens; in groups of 8 samples the shortest right one >= 20% below the mean"
    ours, met = f"{mean_len:.1f} tokens (think, budget {budget})", mean_len >= 60
    f = out / TRACES_FILE
    if not f.is_file():
        return Finding("traces", target, "R1 traces avg 3,529 tokens", ours + "; group spread not measured "
                       "(`python -m lrt_bench.tools.traces --out <demo out>/traces.json`)", met=None if met else False)
    t = json.loads(f.read_text())
    cut = t.get("shortest_right_vs_group_mean")
    spread = "no group has a right sample" if cut is None else f"{100 * cut:.0f}% below the group mean"
    ours += f"; shortest right of {t['group']} samples {spread} ({t['problems']} problems, T={t['temperature']})"
    return Finding("traces", target, "R1 traces avg 3,529 tokens", ours, met=met and cut is not None and cut >= 0.2)


def _latent_count(out: Path) -> Finding:
    """The latent-count curve of bench/tiny_sweep.py, when it was run into the demo's directory."""
    target, paper = "a curve over 4 / 8 / 16 / 32 / 64 latents", "Table 3"
    f = out / LATENT_COUNT_FILE
    if not f.is_file():
        return Finding("latent count", target, paper, "not measured (`python bench/tiny_sweep.py --out <demo out>/latent_count.json`)")
    cells = {c["num_latents"]: c for c in json.loads(f.read_text())["cells"] if c["fusion"] == "concat"}
    ours = ", ".join(f"{n}: {100 * cells[n]['eval_accuracy']:.1f}%" for n in sorted(cells))
    steps = sorted({c["steps"] for c in cells.values()})
    return Finding("latent count", target, paper, f"LRT after SFT ({'/'.join(map(str, steps))} steps, greedy, "
                   f"{cells[min(cells)].get('eval_problems', '?')} problems): {ours}; plot latent_count.png",
                   met=all(n in cells for n in LATENT_COUNTS))


def _efficiency(out: Path) -> Finding:
    """think / latent wall time from `lrt-bench bench`, when it was run into the demo's directory."""
    target, paper = "think / latent wall time >= 5x at batch 1 and 32 (`lrt-bench bench`)", "6.0x (Table 7)"
    f = out / BENCH_FILE
    if not f.is_file():
        return Finding("efficiency", target, paper, "not measured (`lrt-bench bench --out-dir <demo out> --name bench`)")
    ratios = json.loads(f.read_text()).get("ratios", {}).get("natural", {})
    r1, r32 = ratios.get("think_over_latent_time@bs1"), ratios.get("think_over_latent_time@bs32")
    if r1 is None or r32 is None:
        return Finding("efficiency", target, paper, f"{f.name} has no batch 1 and 32 ratios", met=None)
    return Finding("efficiency", target, paper, f"{r1:.1f}x at batch 1, {r32:.1f}x at batch 32 (bench.md)",
                   met=r1 >= 5 and r32 >= 5)


def render_findings(out: str | Path) -> str:
    """FINDINGS.md: one row per finding."""
    out = Path(out)
    runs = load_demo(out)
    meta: dict[str, Any] = json.loads((out / "demo.json").read_text()) if (out / "demo.json").is_file() else {}
    prov = meta.get("provenance", {})
    n = len(next(iter(runs[max(runs)].values())).pass1) if runs else 0
    mark = {True: "met", False: "**not met**", None: "not measured"}
    lines = [
        "# Findings of the tiny-world demo",
        "",
        f"The paper's findings, measured by `lrt-bench demo` (world {meta.get('world_code_version')}, seed "
        f"{meta.get('world_seed')}; commit {prov.get('commit')}; {n} eval problems, sampled pass@1 over each "
        "problem's samples). Differences are paired over the same problems, with a bootstrap 95% interval.",
        "",
        "| finding | target | paper | ours | 95% interval | |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in findings(out, runs):
        lines.append(f"| {f.name} | {f.target} | {f.paper} | {f.ours} | {f.interval} | {mark[f.met]} |")
    if runs:
        lines += by_steps_table(runs[max(runs)], max(runs))
    return "\n".join(lines) + "\n"


def by_steps_table(at: dict[str, MethodResult], budget: int) -> list[str]:
    """Markdown lines: each method's accuracy by the problems' number of operations at one budget, and
    LRT's paired difference to NoThinking per step count (where the latents help); [] without steps."""
    methods = [m for m in LABELS if m in at and at[m].steps]
    if not methods:
        return []
    steps = sorted(set(at[methods[0]].steps.values()))

    def acc(r: MethodResult, n: int) -> float:
        return 100 * statistics.fmean(v for i, v in r.pass1.items() if r.steps.get(i) == n)

    lines = ["", f"## Accuracy by number of operations (budget {budget})", "",
             "| method | " + " | ".join(f"{n} step{'s' * (n > 1)}" for n in steps) + " |",
             "| --- |" + " --- |" * len(steps)]
    for m in methods:
        lines.append(f"| {LABELS[m]} | " + " | ".join(f"{acc(at[m], n):.1f}%" for n in steps) + " |")
    counts = [sum(1 for v in at[methods[0]].steps.values() if v == n) for n in steps]
    lines.append("| problems | " + " | ".join(str(c) for c in counts) + " |")
    if "lrt" in methods and "nothink" in methods:
        cells = []
        for n in steps:
            ids = {i for i, v in at["lrt"].steps.items() if v == n}
            d = paired_bootstrap({i: at["lrt"].pass1[i] for i in ids}, {i: at["nothink"].pass1[i] for i in ids
                                                                          if i in at["nothink"].pass1})
            cells.append(f"{d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}]")
        lines.append(f"| {LABELS['lrt']} − NoThinking (pts, 95% CI) | " + " | ".join(cells) + " |")
    return lines


def readme_summary(out: str | Path) -> str:
    """The README's paragraph on the committed demo: every figure read from the demo's files."""
    out = Path(out)
    runs = load_demo(out)
    full, small = max(runs), min(runs)
    at, lo = runs[full], runs[small]
    meta = json.loads((out / "demo.json").read_text())

    def acc(r: dict[str, MethodResult], m: str) -> str:
        return f"{r[m].accuracy:.1f}%" if m in r else "n/a"

    n = len(next(iter(at.values())).pass1)
    parts = [
        f"On the tiny world's {n} eval problems at a {full}-token budget (sampled pass@1): the base thinking "
        f"explicitly {acc(at, 'think')} with {at['think'].reasoning_tokens:.1f} reasoning tokens, NoThinking "
        f"{acc(at, 'nothink')}, LRT with no reasoning tokens {acc(at, 'lrt-sft')} after SFT and {acc(at, 'lrt')} "
        f"after GRPO (an untrained G_φ: {acc(at, 'lrt-untrained')}).",
        f"At a {small}-token budget: think {acc(lo, 'think')}, NoThinking {acc(lo, 'nothink')}, LRT {acc(lo, 'lrt')}.",
    ]
    for name in ("shorterbetter", "lcr1"):
        if name in at:
            parts.append(f"{LABELS[name]}: {acc(at, name)} with {at[name].reasoning_tokens:.1f} reasoning tokens.")
    sec = meta.get("seconds", {})
    cpus = meta.get("provenance", {}).get("machine", {}).get("cpus")
    resumed = [r for r in meta.get("reused", []) if not r.startswith("world")]
    if "total" in sec:
        cached = (" with the tiny world cached" if any(r.startswith("world") for r in meta.get("reused", [])) else
                  f" from nothing (the world's build {sec['world'] / 60:.1f} min of it)" if sec.get("world") else "")
        took = (f"The run took {sec['total'] / 60:.1f} min{cached} on {cpus} CPU cores" if not resumed else
                f"The run resumed {len(resumed)} stages finished by an earlier one and took {sec['total'] / 60:.1f} "
                f"min more on {cpus} CPU cores")
        parts.append(took + f"; each finding against its target is in `results/{out.name}/FINDINGS.md`.")
    return " ".join(parts)


def seeds_table(outs: list[str | Path]) -> str:
    """The "seeds" finding across committed demo runs on different world seeds: each finding's verdict on
    every run (from its files, as FINDINGS.md has it) and whether it holds on all of them."""
    mark = {True: "met", False: "not met", None: "not measured"}
    verdicts: dict[str, list[bool | None]] = {}  # finding -> its verdict on each run (None: not measured)
    seeds = []
    for i, out in enumerate(outs):
        out = Path(out)
        seeds.append(json.loads((out / "demo.json").read_text()).get("world_seed"))
        for f in findings(out):
            if f.name not in ("seeds", "time"):  # the one this table is, and the machine's, not the world's
                verdicts.setdefault(f.name, [None] * len(outs))[i] = f.met
    lines = ["| finding | " + " | ".join(f"seed {s}" for s in seeds) + " | on every seed |",
             "| --- | " + " | ".join("---" for _ in seeds) + " | --- |"]
    for name, v in verdicts.items():
        holds = ("not measured" if None in v else "holds" if all(v) else "fails on every seed" if not any(v)
                 else "**differs**")
        lines.append(f"| {name} | " + " | ".join(mark[x] for x in v) + f" | {holds} |")
    return "\n".join(lines)


def write_findings(out: str | Path) -> str:
    """OUT/per_problem.json (from the sample logs, `write_per_problem`), then OUT/FINDINGS.md; returns
    the findings' text. The demo's last stage, and `python -m lrt_bench.tools.findings OUT`."""
    from lrt_bench.io import atomic_write_text

    write_per_problem(out)
    text = render_findings(out)
    atomic_write_text(Path(out) / "FINDINGS.md", text)
    return text


def main(argv: list[str] | None = None) -> int:
    """`python -m lrt_bench.tools.findings OUT`: rewrite OUT/per_problem.json and OUT/FINDINGS.md from
    OUT's files, e.g. after `bench/tiny_sweep.py` or `lrt-bench bench` wrote their results into it.
    `... OUT --seeds OUT2 ...`: print each finding's verdict on every run instead (`seeds_table`)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m lrt_bench.tools.findings", description=main.__doc__.split("\n")[0])
    p.add_argument("out", help="a demo's output directory (with results/ or per_problem.json, and demo.json)")
    p.add_argument("--seeds", nargs="+", metavar="OUT",
                   help="print the findings' verdicts across OUT and these other demo runs (world seeds) instead")
    args = p.parse_args(argv)
    if args.seeds:
        outs = [Path(args.out), *map(Path, args.seeds)]
        if missing := [str(o) for o in outs if not (o / PER_PROBLEM).is_file() or not (o / "demo.json").is_file()]:
            p.error(f"--seeds: {', '.join(missing)} hold no finished demo (per_problem.json and demo.json): run "
                    "`lrt-bench demo --seed N --out DIR` first")
        print(seeds_table(outs))
        return 0
    out = Path(args.out)
    if not (out / PER_PROBLEM).is_file() and not any((out / "results").glob("b*/*/**/samples_*.jsonl")):
        p.error(f"{out} has neither {PER_PROBLEM} nor sample logs under results/: pass the --out directory of a "
                "finished `lrt-bench demo`")
    print(write_findings(out), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
