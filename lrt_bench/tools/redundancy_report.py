"""The redundancy analysis's report: the paper's Figure 2 curves beside ours, as a rich table and a PNG."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from lrt_bench.errors import LRTError

PAPER_FILE = "paper_reference.json"
PAPER_KEY = "figure2_redundancy_r1_distill_7b_math500"
PAPER_LABEL = "paper (R1-Distill-Qwen-7B, MATH-500)"

# ------------------------------------------------------------------------------------------------
# The paper's curves
# ------------------------------------------------------------------------------------------------


def paper_curve(data: Any) -> dict | None:
    """The paper's Figure 2 curves (accuracy as fractions, p = 0 is the full trajectory) from a reference
    document holding `figure2_redundancy_r1_distill_7b_math500` (at any depth), or None."""

    def find(obj: Any) -> Any:
        if isinstance(obj, dict):
            if PAPER_KEY in obj:
                return obj[PAPER_KEY]
            for v in obj.values():
                hit = find(v)
                if hit is not None:
                    return hit
        return None

    fig = find(data)
    try:
        full = fig["full_trajectory"]
        ref = {
            "label": PAPER_LABEL,
            "p": [0.0, *map(float, fig["deletion_p"])],
            "token": [full["accuracy"] / 100, *(v / 100 for v in fig["token_level"])],
            "step": [full["accuracy"] / 100, *(v / 100 for v in fig["step_level"])],
            "mean_full_tokens": full.get("mean_tokens"),
            "note": fig.get("note", ""),
        }
    except (TypeError, KeyError, ValueError):
        return None
    if not len(ref["p"]) == len(ref["token"]) == len(ref["step"]):
        return None
    return ref


def load_paper_reference() -> tuple[dict | None, str]:
    """The paper's curves from the packaged `lrt_bench/paper_reference.json`, or (None, why not)."""
    from importlib import resources

    try:
        data = json.loads(resources.files("lrt_bench").joinpath(PAPER_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, OSError, json.JSONDecodeError, ModuleNotFoundError):
        return None, f"paper curve skipped: lrt_bench/{PAPER_FILE} is not installed"
    ref = paper_curve(data)
    if ref is None:
        return None, f"paper curve skipped: lrt_bench/{PAPER_FILE} has no {PAPER_KEY}"
    return ref, f"paper: {PAPER_LABEL}, accuracy read off its Figure 2"


# ------------------------------------------------------------------------------------------------
# Output: table, plot
# ------------------------------------------------------------------------------------------------


def check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise LRTError("the redundancy plot needs matplotlib: pip install matplotlib") from None


def _row(result: dict, gran: str, p: float) -> dict | None:
    return next((r for r in result["results"] if r["granularity"] == gran and r["p"] == p), None)


def _paper_at(paper: dict | None, gran: str, p: float) -> float | None:
    if not paper:
        return None
    for q, v in zip(paper["p"], paper[gran]):
        if abs(q - p) < 1e-9:
            return v
    return None


def render_plot(result: dict) -> bytes:
    """PNG bytes: accuracy vs p (ours and the paper's) and mean kept reasoning tokens vs p."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    acc_ax, tok_ax = fig.subplots(1, 2)
    styles = {"token": ("C0", "o"), "step": ("C1", "s")}
    for gran in result["granularities"]:
        color, marker = styles[gran]
        rows = [r for r in result["results"] if r["granularity"] == gran]
        ps = [r["p"] for r in rows]
        acc_ax.plot(ps, [100 * r["accuracy"] for r in rows], color=color, marker=marker, label=f"ours, {gran}")
        tok_ax.plot(ps, [r["mean_kept_tokens"] for r in rows], color=color, marker=marker, label=f"ours, {gran}")
        paper = result.get("paper")
        if paper:
            acc_ax.plot(paper["p"], [100 * v for v in paper[gran]], color=color, marker=marker, linestyle="--",
                        alpha=0.55, label=f"paper, {gran}")
    acc_ax.set_xlabel("deletion rate p")
    acc_ax.set_ylabel(f"accuracy (%, {result['metric']})")
    acc_ax.set_title(f"{result['task']}: answer from [X, R(p)]", fontsize=10)
    acc_ax.grid(alpha=0.3)
    acc_ax.legend(fontsize=8)
    tok_ax.set_xlabel("deletion rate p")
    tok_ax.set_ylabel("mean reasoning tokens kept")
    model = "/".join(Path(str(result["model"])).parts[-2:]) or str(result["model"])
    tok_ax.set_title(f"{model}, {result['n_problems']} problems", fontsize=10)
    tok_ax.grid(alpha=0.3)
    tok_ax.legend(fontsize=8)
    if not result.get("paper"):
        fig.text(0.01, 0.01, result.get("paper_note", ""), fontsize=7, alpha=0.7)
    elif result["paper"].get("mean_full_tokens"):
        fig.text(0.01, 0.01, f"{PAPER_LABEL}: full trajectories average {result['paper']['mean_full_tokens']} "
                 "tokens", fontsize=7, alpha=0.7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def render_table(result: dict):
    """A rich table: one row per p, accuracy and mean kept tokens per granularity, the paper's beside."""
    from rich.table import Table

    t = result["think"]
    table = Table(
        title=f"Redundancy: {result['task']} ({result['n_problems']} problems), {result['model']}",
        caption=(
            f"greedy; full reasoning in think mode (budget {t['max_gen_toks']}, mean {t['mean_reasoning_tokens']:.1f} "
            f"tokens, {t['cut_at_budget']} cut at the budget; its own answer: {100 * t['accuracy']:.1f}%); answers "
            f"from [X, R(p), \\n</think>\\n\\n] within {result['answer_toks']} tokens. {result['paper_note']}"
        ),
    )
    table.add_column("p", justify="right")
    for gran in result["granularities"]:
        table.add_column(f"{gran} acc", justify="right")
        table.add_column(f"{gran} kept tok", justify="right")
    paper = result.get("paper")
    if paper:
        for gran in result["granularities"]:
            table.add_column(f"paper {gran}", justify="right", style="dim")
    for p in result["p"]:
        cells = [f"{p:g}"]
        for gran in result["granularities"]:
            r = _row(result, gran, p)
            cells += [f"{100 * r['accuracy']:.1f}%", f"{r['mean_kept_tokens']:.1f}"]
        if paper:
            for gran in result["granularities"]:
                v = _paper_at(paper, gran, p)
                cells.append("" if v is None else f"{100 * v:.1f}%")
        table.add_row(*cells)
    return table
