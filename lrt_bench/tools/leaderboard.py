"""`lrt-bench leaderboard`: lm-eval results JSON -> one table per token budget (rich, markdown, CSV, plot).

    lrt-bench leaderboard runs/ [more paths] [--paper] [--markdown FILE] [--csv FILE] [--plot FILE.png]
                          [--router runs/router]

Input: any `--output_path` layout of `lm_eval` (0.4 writes `<output_path>/<model>/results_<time>.json`),
a folder searched recursively for `results_*.json`, or a results file itself. Sample logs are not read.

A row is model x method x budget:
  * model  = `pretrained` of `config.model_args`, its last path component (`Qwen/Qwen3-1.7B` ->
             `Qwen3-1.7B`, as the paper names it; a generic last component such as `base` keeps its parent:
             `quick/base`);
  * method = `--label PATH=NAME` for files under PATH, else a `method` recorded in the results (model info
             `config.lrt.method` or `config.method`: trained baselines), else the backend mode: `think`,
             `nothink`, `nothink (empty)` (nothink_style=empty), `LRT` (mode=latent);
  * budget = `max_gen_toks` of the task's generation_kwargs (`--gen_kwargs` overrides it). A `_b1024`
             suffix names the budget variant of a task: the suffix is stripped for the column.
Columns: pass@1 per benchmark (one column per task, groups such as lrt_suite are never a column: their
subtasks are), the average pass@1 and pass@4 over the table's benchmarks, and the mean reasoning tokens,
answer tokens, latents and seconds per sample over the row's benchmarks.

Nothing is shown blank: `missing` (no result for that task; a footnote says what to run), `n/m` (not
measured: a backend without a token account, e.g. `--model hf`), `n/r` (not reported by the paper),
`n/a` (no average: the row misses a benchmark of its table). `†` marks a result on a subset (`--limit`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrt_bench.errors import LRTError
from lrt_bench.io import atomic_write_bytes, atomic_write_text

# Column headers of the benchmarks we ship, in the paper's order; other tasks keep their name.
BENCHMARKS = {
    "lrt_amc23": "AMC23",
    "lrt_amc23_r16": "AMC23 r16",  # 16 / 40 samples per problem (tasks/lrt_amc/lrt_amc23_r*.yaml)
    "lrt_amc23_r40": "AMC23 r40",
    "lrt_amc83": "AMC83",
    "lrt_math500": "MATH-500",
    "lrt_gsm8k": "GSM8K",
    "lrt_lsat_ar": "LSAT-AR",
    "lrt_lsat_lr": "LSAT-LR",
    "lrt_lsat_rc": "LSAT-RC",
    "lrt_gpqa": "GPQA",
    "lrt_tiny": "tiny",
}
DEFAULT_BUDGET = 512  # max_gen_toks of the tasks without a _bN suffix (tasks/_lrt_defaults.yaml)
SHIPPED_BUDGETS = (1024, 2048, 4096)  # the _bN task variants
_BUDGET_SUFFIX = re.compile(r"^(?P<bench>.+)_b(?P<budget>\d+)$")
# A last path component that says nothing about the model: show its parent too.
_GENERIC_DIRS = {"base", "model", "models", "final", "hf", "merged", "checkpoint", "latest", "best"}
# Model args that change what a row measures; two runs that differ in one of them must not be merged.
_IDENTITY_ARGS = ("pretrained", "revision", "reasoner", "mode", "nothink_style", "answer_allowance",
                  "allowance_in_budget", "router_threshold", "router_score")

# Summary columns: key, header, higher is better (None: no "best").
SUMMARY = (
    ("avg_pass1", "avg pass@1", True),
    ("avg_pass4", "avg pass@4", True),
    ("reasoning_tokens", "reasoning tok", False),
    ("answer_tokens", "answer tok", False),
    ("latents", "latents", None),
    ("seconds", "s/sample", False),
)
_HIGHER = {k: h for k, _, h in SUMMARY}
SORT_KEYS = ("avg_pass1", "avg_pass4", "reasoning_tokens", "answer_tokens", "seconds", "model", "method")

MISSING, NOT_MEASURED, NOT_REPORTED, INCOMPLETE = "missing", "n/m", "n/r", "n/a"


# ------------------------------------------------------------------------------------------ the data


@dataclass
class Cell:
    """One task's result in one results file (accuracies in percent, costs per sample)."""

    task: str  # the lm-eval task, e.g. lrt_gsm8k_b1024
    benchmark: str  # the column, e.g. lrt_gsm8k
    version: str | None
    pass1: float | None = None
    pass4: float | None = None
    maj4: float | None = None
    reasoning_tokens: float | None = None  # None: not measured (NaN in the results)
    forced_tokens: float | None = None
    answer_tokens: float | None = None
    latents: float | None = None
    seconds: float | None = None
    n: int | None = None  # problems evaluated
    n_total: int | None = None  # problems in the task (n < n_total: --limit)
    file: str = ""
    date: float = 0.0

    @property
    def subset(self) -> bool:
        return self.n is not None and self.n_total is not None and self.n < self.n_total


@dataclass
class Row:
    """A leaderboard row: one model x method x budget, with its benchmarks' cells."""

    model: str
    method: str
    budget: int | None  # None: the paper does not state one
    cells: dict[str, Cell] = field(default_factory=dict)
    source: str = "ours"  # "ours" or "paper T1".."paper T4"
    identity: tuple = ()  # the model args that produced it (rows with other args are not merged)
    paper_average: dict[str, float] = field(default_factory=dict)  # the paper's own averages

    @property
    def is_paper(self) -> bool:
        return self.source != "ours"

    @property
    def name(self) -> str:
        budget = "budget not stated" if self.budget is None else f"budget {self.budget}"
        return f"{self.model} · {self.method} · {budget}" + (f" ({self.source})" if self.is_paper else "")


# ---------------------------------------------------------------------------------------- reading


def find_results(paths: list[str | Path]) -> list[Path]:
    """Every lm-eval results file named by `paths` (files as given, folders searched recursively)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            hits = []
            for root, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # skip .git, .venv, ...
                hits += sorted(Path(root) / n for n in names if n.startswith("results_") and n.endswith(".json"))
            if not hits:
                raise LRTError(
                    f"no lm-eval results (results_*.json) under {p}: pass the --output_path folder of an "
                    "lm_eval run, or a results file"
                )
            found += hits
        else:
            raise LRTError(f"{p} does not exist: pass the --output_path folder of an lm_eval run, or a results file")
    return list(dict.fromkeys(found))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LRTError(f"{path} is not readable JSON ({e.__class__.__name__}): pass lm-eval's results_*.json") from e
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or not isinstance(
        data.get("configs"), dict
    ):
        raise LRTError(
            f"{path} is not an lm-eval results file (no 'results' and 'configs'): pass the results_*.json "
            "that `lm_eval --output_path` writes"
        )
    return data


def parse_model_args(model_args: Any) -> dict[str, Any]:
    """`config.model_args` as a dict (lm-eval stores the --model_args string, or a dict from Python)."""
    if isinstance(model_args, dict):
        return dict(model_args)
    out: dict[str, Any] = {}
    for part in str(model_args or "").split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def model_name(pretrained: str) -> str:
    """The model column: the last path component (hub ids lose their org, like the paper's names)."""
    parts = [p for p in str(pretrained).replace("\\", "/").rstrip("/").split("/") if p]
    if not parts:
        return "?"
    if parts[-1].lower() in _GENERIC_DIRS and len(parts) > 1:
        return "/".join(parts[-2:])
    return parts[-1]


def method_of(config: dict, args: dict[str, Any], data: dict) -> str:
    """The method column: a recorded label (trained baselines) first, then the backend's mode."""
    info = config.get("lrt") if isinstance(config.get("lrt"), dict) else {}
    for label in (info.get("method"), config.get("method"), data.get("method")):
        if label:
            return str(label)
    mode = info.get("mode") or args.get("mode")
    if mode is None:
        # --model lrt defaults to think; any other backend is named by itself (e.g. hf)
        return "think" if config.get("model") == "lrt" else str(config.get("model") or "?")
    style = info.get("nothink_style") or args.get("nothink_style") or "prefill"
    if mode == "latent":
        return "LRT"
    if mode == "hybrid":
        tau = info.get("router_threshold", args.get("router_threshold"))
        return f"LRT hybrid (τ={tau})"
    if mode == "nothink" and style == "empty":
        return "nothink (empty)"
    return str(mode)


def _gen_kwargs_budget(gen_kwargs: Any) -> int | None:
    if isinstance(gen_kwargs, dict):
        v = gen_kwargs.get("max_gen_toks")
    else:
        v = parse_model_args(gen_kwargs).get("max_gen_toks")
    return int(v) if v not in (None, "") else None


def _metric(res: dict, name: str) -> float | None:
    v = res.get(f"{name},none")
    if v is None or isinstance(v, str):
        return None
    v = float(v)
    return None if math.isnan(v) else v


def _pct(v: float | None) -> float | None:
    return None if v is None else 100.0 * v  # lm-eval stores fractions; the tables (and the paper) use percent


def _file_cells(path: Path, data: dict) -> tuple[list[tuple[int, Cell]], list[str]]:
    """(budget, cell) for each task of one file that has lrt-bench metrics, and the tasks ignored."""
    config = data.get("config") or {}
    override = _gen_kwargs_budget(config.get("gen_kwargs"))
    groups = {g for g, subs in (data.get("group_subtasks") or {}).items() if subs}
    n_samples = data.get("n-samples") or {}
    date = float(data.get("date") or 0.0)
    cells, ignored = [], []
    for task, res in sorted(data["results"].items()):
        if task in groups or task not in data["configs"]:
            continue  # a group's scores are its subtasks' scores: no column of its own
        if "pass@1,none" not in res:
            ignored.append(task)
            continue
        tcfg = data["configs"][task]
        m = _BUDGET_SUFFIX.match(task)
        bench = m.group("bench") if m else task
        gk = tcfg.get("generation_kwargs") or {}
        budget = override or gk.get("max_gen_toks") or (int(m.group("budget")) if m else DEFAULT_BUDGET)
        ns = n_samples.get(task) or {}
        version = (data.get("versions") or {}).get(task, (tcfg.get("metadata") or {}).get("version"))
        cells.append((int(budget), Cell(
            task=task, benchmark=bench, version=None if version is None else str(version),
            pass1=_pct(_metric(res, "pass@1")), pass4=_pct(_metric(res, "pass@4")), maj4=_pct(_metric(res, "maj@4")),
            reasoning_tokens=_metric(res, "reasoning_tokens"), forced_tokens=_metric(res, "forced_tokens"),
            answer_tokens=_answer_tokens(res), latents=_metric(res, "latents"),
            seconds=_metric(res, "seconds"), n=ns.get("effective"), n_total=ns.get("original"),
            file=str(path), date=date,
        )))
    return cells, ignored


def _answer_tokens(res: dict) -> float | None:
    """Answer tokens per sample; in hybrid mode also the latent answers that think answers replaced
    (those rows paid for both passes)."""
    a, first = _metric(res, "answer_tokens"), _metric(res, "first_pass_tokens")
    return a + first if a is not None and first is not None else a


def _label_for(path: Path, labels: dict[str, str]) -> str | None:
    """The --label NAME of the longest PATH that is `path` or a folder above it."""
    best, best_len = None, -1
    rp = path.resolve()
    for prefix, name in labels.items():
        q = Path(prefix).resolve()
        if (rp == q or q in rp.parents) and len(str(q)) > best_len:
            best, best_len = name, len(str(q))
    return best


def load_results(paths: list[str | Path], labels: dict[str, str] | None = None,
                 notes: list[str] | None = None) -> list[Row]:
    """Rows (model x method x budget) from lm-eval results files or folders.

    Results of the same row from several files are merged by task. When two files hold the same task
    of the same row, the newer run (lm-eval's `date`) wins if both ran the same model args, and an
    error asks for `--label` otherwise. Notes (superseded files, ignored tasks) go to `notes`.
    """
    labels = labels or {}
    notes = notes if notes is not None else []
    files = find_results(paths)
    rows: dict[tuple, Row] = {}
    versions: dict[str, tuple[str, str]] = {}  # benchmark -> (version, file)
    for path in files:
        data = _read_json(path)
        config = data.get("config") or {}
        args = parse_model_args(config.get("model_args"))
        info = config.get("lrt") if isinstance(config.get("lrt"), dict) else {}
        identity = tuple(str(info.get(k, args.get(k))) for k in _IDENTITY_ARGS)
        model = model_name(args.get("pretrained") or config.get("model_name") or config.get("model") or "?")
        method = _label_for(path, labels) or method_of(config, args, data)
        cells, ignored = _file_cells(path, data)
        if ignored:
            notes.append(f"ignored (no pass@1, not an lrt-bench task): {', '.join(ignored)} in {path}")
        for budget, cell in cells:
            seen = versions.setdefault(cell.benchmark, (cell.version, cell.file))
            if seen[0] != cell.version:
                raise LRTError(
                    f"{cell.benchmark} has version {seen[0]} in {seen[1]} but {cell.version} in {cell.file}: "
                    "one column cannot mix task versions; pass only the results of one version (or rerun the other)"
                )
            row = rows.setdefault((model, method, budget), Row(model, method, budget, identity=identity))
            if row.identity != identity:
                # e.g. two reasoner checkpoints of one base: one row would mix them
                diff = ", ".join(f"{k}={a} vs {b}" for k, a, b in zip(_IDENTITY_ARGS, row.identity, identity) if a != b)
                first = next(iter(row.cells.values())).file
                raise LRTError(
                    f"{row.name} has runs with different model args ({diff}) in {first} and {cell.file}: "
                    "tell them apart with --label PATH=NAME"
                )
            old = row.cells.get(cell.benchmark)
            if old is not None:  # a rerun: the newer one counts
                newer, older = (cell, old) if cell.date >= old.date else (old, cell)
                notes.append(f"{cell.task} of {row.name}: {newer.file} supersedes the older run {older.file}")
                cell = newer
            row.cells[cell.benchmark] = cell
    if not any(r.cells for r in rows.values()):
        raise LRTError(
            f"none of {len(files)} results file(s) has lrt-bench metrics (pass@1): evaluate lrt_* tasks "
            "(e.g. --tasks lrt_suite) with --model lrt"
        )
    return list(rows.values())


def paper_rows() -> list[Row]:
    """The paper's reference rows (Tables 1-4), shipped as lrt_bench/paper_reference.json."""
    from importlib.resources import files

    ref = json.loads(files("lrt_bench").joinpath("paper_reference.json").read_text(encoding="utf-8"))
    rows = []
    for r in ref["rows"]:
        cells = {}
        for bench, p1 in r["pass@1"].items():
            p4 = (r.get("pass@4") or {}).get(bench)
            cells[bench] = Cell(task=bench, benchmark=bench, version=None, pass1=p1, pass4=p4,
                                latents=r.get("latents"), file="lrt_bench/paper_reference.json")
        avg = {"avg_pass1": r["average_pass@1"]}
        if r.get("average_pass@4") is not None:
            avg["avg_pass4"] = r["average_pass@4"]
        rows.append(Row(r["model"], r["method"], r["budget"], cells, source=f"paper {r['table']}",
                        paper_average=avg))
    return rows


# ------------------------------------------------------------------------------------------ tables


@dataclass
class Value:
    """A displayed number, or why there is none (MISSING, NOT_MEASURED, NOT_REPORTED, INCOMPLETE)."""

    x: float | None
    why: str | None = None
    subset: bool = False  # from a --limit run


@dataclass
class Table:
    """One budget's table: its benchmarks, sorted rows, values and best cells (data, not colours)."""

    budget: int | None
    benchmarks: list[str]
    rows: list[Row]
    values: list[dict[str, Value]]  # per row: column key -> Value
    best: dict[str, set[int]]  # column key -> indices of rows holding the best value

    @property
    def title(self) -> str:
        return _budget_title(self.budget)

    def columns(self) -> list[tuple[str, str]]:
        """(key, header) of the value columns, benchmarks first."""
        return [(b, BENCHMARKS.get(b, b)) for b in self.benchmarks] + [(k, h) for k, h, _ in SUMMARY]


def _budget_title(budget: int | None) -> str:
    return "budget not stated (paper)" if budget is None else f"budget {budget} tokens"


def _bench_order(b: str) -> tuple:
    names = list(BENCHMARKS)
    return (names.index(b), "") if b in names else (len(names), b)


def _row_values(row: Row, benchmarks: list[str]) -> dict[str, Value]:
    vals: dict[str, Value] = {}
    absent = NOT_REPORTED if row.is_paper else MISSING
    for b in benchmarks:
        c = row.cells.get(b)
        vals[b] = Value(None, absent) if c is None or c.pass1 is None else Value(c.pass1, subset=c.subset)
    cells = [row.cells[b] for b in benchmarks if b in row.cells]
    subset = any(c.subset for c in cells)
    for key, attr in (("avg_pass1", "pass1"), ("avg_pass4", "pass4")):
        if row.is_paper and key in row.paper_average and set(benchmarks) == set(row.cells):
            vals[key] = Value(row.paper_average[key])  # the paper's own figure, over the same benchmarks
            continue
        xs = [getattr(row.cells[b], attr) if b in row.cells else None for b in benchmarks]
        if all(x is not None for x in xs) and xs:
            vals[key] = Value(sum(xs) / len(xs), subset=subset)
        elif row.is_paper:
            vals[key] = Value(None, NOT_REPORTED)
        else:
            # pass@4 absent everywhere means the run had fewer than 4 samples: not measured, not missing
            vals[key] = Value(None, INCOMPLETE if len(cells) < len(benchmarks) else NOT_MEASURED)
    # Costs: the mean over the benchmarks the row has (each benchmark once, as the averages).
    for key in ("reasoning_tokens", "answer_tokens", "latents", "seconds"):
        xs = [getattr(c, key) for c in cells if getattr(c, key) is not None]
        if xs:
            vals[key] = Value(sum(xs) / len(xs), subset=subset)
        else:
            vals[key] = Value(None, NOT_REPORTED if row.is_paper else (MISSING if not cells else NOT_MEASURED))
    return vals


def _decimals(key: str) -> int:
    if key == "latents":
        return 0
    if key == "seconds":
        return 3
    return 1 if key.endswith("tokens") else 2  # accuracies: two decimals, as the paper


def _best(values: list[dict[str, Value]], keys: list[tuple[str, bool | None]]) -> dict[str, set[int]]:
    best: dict[str, set[int]] = {}
    for key, higher in keys:
        if higher is None:
            continue
        # compare what is displayed, so that cells that read the same are best together
        xs = [(i, round(v[key].x, _decimals(key))) for i, v in enumerate(values) if v[key].x is not None]
        if len(xs) < 2:
            best[key] = set()  # one number is not a contest
            continue
        top = max(x for _, x in xs) if higher else min(x for _, x in xs)
        best[key] = {i for i, x in xs if x == top}
    return best


def _sort_key(sort: str, row: Row, vals: dict[str, Value]) -> tuple:
    tie = (row.model, row.method, row.source)
    if sort == "model":
        return (row.model, row.method, row.source)
    if sort == "method":
        return (row.method, row.model, row.source)
    v = vals.get(sort)
    if v is None or v.x is None:
        return (1, 0.0, tie)  # rows without the value go last
    higher = _HIGHER.get(sort, True)  # a benchmark column is an accuracy
    return (0, -v.x if higher else v.x, tie)


def build_tables(rows: list[Row], sort: str = "avg_pass1", notes: list[str] | None = None) -> list[Table]:
    """Group rows by budget and compute each table's values, order and best cells.

    A table's benchmark columns are those of our rows at that budget (the paper's when it has none of
    ours); a paper row that shares none of them is left out, with a note.
    """
    notes = notes if notes is not None else []
    valid = set(SORT_KEYS) | {r_b for r in rows for r_b in r.cells}
    if sort not in valid:
        raise LRTError(f"cannot sort by {sort!r}: use one of {', '.join(SORT_KEYS)} or a task such as lrt_gsm8k")
    budgets = sorted({r.budget for r in rows}, key=lambda b: (b is None, b or 0))
    tables = []
    for budget in budgets:
        group = [r for r in rows if r.budget == budget]
        ours = [r for r in group if not r.is_paper]
        benches = sorted({b for r in (ours or group) for b in r.cells}, key=_bench_order)
        kept = [r for r in group if not r.is_paper or set(r.cells) & set(benches)]
        if len(kept) < len(group):
            notes.append(f"{len(group) - len(kept)} paper row(s) at {_budget_title(budget)} not shown: "
                         "they have none of that table's benchmarks")
        values = [_row_values(r, benches) for r in kept]
        order = sorted(range(len(kept)), key=lambda i: _sort_key(sort, kept[i], values[i]))
        kept, values = [kept[i] for i in order], [values[i] for i in order]
        keys = [(b, True) for b in benches] + [(k, h) for k, _, h in SUMMARY]
        tables.append(Table(budget, benches, kept, values, _best(values, keys)))
    return tables


def _run_hint(benchmarks: list[str], budget: int | None) -> str:
    """The lm_eval arguments that would fill the missing cells."""
    if budget in (None, DEFAULT_BUDGET):
        return f"--tasks {','.join(benchmarks)}"
    if budget in SHIPPED_BUDGETS:
        return f"--tasks {','.join(f'{b}_b{budget}' for b in benchmarks)}"
    return f"--tasks {','.join(benchmarks)} --gen_kwargs max_gen_toks={budget}"


def footnotes(tables: list[Table], notes: list[str] | None = None) -> list[str]:
    """What each marker means and which cells are missing (with the task to run)."""
    out: list[str] = []
    used = {v.why for t in tables for vals in t.values for v in vals.values()}
    for t in tables:
        for row, vals in zip(t.rows, t.values):
            gone = [b for b in t.benchmarks if vals[b].why == MISSING]
            if gone:
                out.append(f"missing: {row.name} has no result for {', '.join(gone)} (run {_run_hint(gone, row.budget)})")
            subset = sorted({f"{c.task} {c.n} of {c.n_total}" for c in row.cells.values() if c.subset})
            if subset:
                out.append(f"† {row.name}: evaluated on a subset (--limit): {', '.join(subset)} problems")
    if INCOMPLETE in used:
        out.append("n/a: no average for a row that misses a benchmark of its table")
    if NOT_MEASURED in used:
        out.append("n/m: not measured (pass@4 needs 4 samples; costs need --model lrt)")
    if any(r.is_paper for t in tables for r in t.rows):
        out.append("paper rows: the paper's own numbers (lrt_bench/paper_reference.json; AMC = lrt_amc23, "
                   "LSAT = lrt_lsat_ar); n/r: not reported by the paper")
    return out + list(notes or [])


# ---------------------------------------------------------------------------------------- rendering


def _fmt(key: str, v: Value) -> str:
    if v.x is None:
        return v.why or MISSING
    s = f"{v.x:.{_decimals(key)}f}"
    return s + ("†" if v.subset else "")


def _has_paper(tables: list[Table]) -> bool:
    return any(r.is_paper for t in tables for r in t.rows)


def render(rows: list[Row], fmt: str = "markdown", sort: str = "avg_pass1", notes: list[str] | None = None,
           title: str | None = "Leaderboard") -> str:
    """The leaderboard as markdown (one table per budget, best cells in bold, footnotes) or CSV (one
    table, a budget column, accuracies in percent; no markers, the value's reason instead of a blank)."""
    notes = list(notes or [])
    tables = build_tables(rows, sort, notes)
    paper = _has_paper(tables)
    if fmt == "csv":
        benches = sorted({b for t in tables for b in t.benchmarks}, key=_bench_order)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["budget", "model", "method", "source", *benches, *(k for k, _, _ in SUMMARY), "subset"])
        for t in tables:
            for row, vals in zip(t.rows, t.values):
                cells = []
                for key in [*benches, *(k for k, _, _ in SUMMARY)]:
                    v = vals.get(key, Value(None, "-"))  # "-": no such column at this budget
                    cells.append(v.why if v.x is None else f"{v.x:.4f}".rstrip("0").rstrip("."))
                w.writerow(["" if t.budget is None else t.budget, row.model, row.method, row.source, *cells,
                            int(any(v.subset for v in vals.values()))])
        return buf.getvalue()
    if fmt != "markdown":
        raise LRTError(f"unknown leaderboard format {fmt!r}: use markdown or csv")
    lines = [f"# {title}", ""] if title else []
    for t in tables:
        cols = t.columns()
        head = ["model", "method", *(["source"] if paper else []), *(h for _, h in cols)]
        lines += [f"## {t.title[0].upper()}{t.title[1:]}", "", "| " + " | ".join(head) + " |",
                  "| " + " | ".join(["---"] * 2 + ["---"] * paper + ["---:"] * len(cols)) + " |"]
        for i, (row, vals) in enumerate(zip(t.rows, t.values)):
            cells = []
            for key, _ in cols:
                s = _fmt(key, vals[key])
                cells.append(f"**{s}**" if i in t.best.get(key, ()) else s)
            method = f"*{row.method}*" if row.is_paper else row.method
            lines.append("| " + " | ".join([row.model, method, *([row.source] if paper else []), *cells]) + " |")
        lines.append("")
    lines.append("Accuracy in percent (pass@1 per benchmark); costs are means per sample; **bold**: best in "
                 "its column at that budget.")
    lines += [""] + [f"- {n}" for n in footnotes(tables, notes)]
    return "\n".join(lines).rstrip() + "\n"


# Columns a narrow terminal gives up first, least important first; then benchmarks, right to left (the
# averages still summarise them). model, method, source (which rows are the paper's) and avg pass@1 stay.
_DROP_FIRST = ("seconds", "latents", "answer_tokens", "reasoning_tokens", "avg_pass4")
# Text columns fold (wrap inside the cell) down to this width before one more column is dropped; below
# it a model name becomes a tower of fragments. Numbers never fold and are never cut.
_FOLD_MIN = 12
_TEXT_COLUMNS = ("model", "method", "source")


def render_rich(rows: list[Row], sort: str = "avg_pass1", notes: list[str] | None = None) -> RichLeaderboard:
    """The leaderboard as a rich renderable: one table per budget, best cells bold green, paper rows dim.

    The columns are chosen when it is printed, for the console's width: a narrow terminal folds model and
    method names, and drops the least important columns (`_DROP_FIRST`, then benchmarks) naming them in a
    note, so that every number shown is whole.
    """
    notes = list(notes or [])
    tables = build_tables(rows, sort, notes)
    return RichLeaderboard(tables, notes)


class RichLeaderboard:
    """Rich renderable of built tables that lays each table out for the console width it is printed at."""

    def __init__(self, tables: list[Table], notes: list[str]):
        self.tables = tables
        self.notes = notes
        self.paper = _has_paper(tables)

    def _columns(self, t: Table) -> list[tuple[str, str]]:
        """(key, header) of every column of `t`, left to right; the text columns first."""
        text = [("model", "model"), ("method", "method")] + ([("source", "source")] if self.paper else [])
        return text + [(k, h.replace(" ", "\n")) for k, h in t.columns()]

    def _table(self, t: Table, shown: list[tuple[str, str]], fold: bool, cap: int | None = None):
        from rich import box
        from rich.table import Table as RichTable
        from rich.text import Text

        rt = RichTable(title=t.title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                       collapse_padding=True)
        for key, header in shown:
            if key in _TEXT_COLUMNS:
                rt.add_column(header, no_wrap=not fold, overflow="fold", max_width=cap)
            else:
                # no_wrap alone does not protect a column (rich squeezes every column as a last resort):
                # the layout leaves room for each number at full width
                rt.add_column(header, justify="right", no_wrap=True)
        for i, (row, vals) in enumerate(zip(t.rows, t.values)):
            cells = []
            for key, _ in shown:
                if key in _TEXT_COLUMNS:
                    cells.append(Text(getattr(row, key)))
                    continue
                s = _fmt(key, vals[key])
                style = "bold green" if i in t.best.get(key, ()) else ("dim" if vals[key].x is None else "")
                cells.append(Text(s, style=style))
            rt.add_row(*cells, style="italic" if row.is_paper else None)
        return rt

    def _layout(self, console, options, t: Table):
        """(rich table, headers dropped) for `t` at options.max_width: fold text, then drop columns."""
        from rich.measure import Measurement

        width = options.max_width
        wide = options.update_width(10**6)

        def natural(rt) -> int:
            return Measurement.get(console, wide, rt).maximum

        shown = self._columns(t)
        drop_order = [k for k in _DROP_FIRST if k in dict(shown)] + list(reversed(t.benchmarks))
        dropped: list[str] = []
        while True:
            if natural(self._table(t, shown, fold=False)) <= width:
                return self._table(t, shown, fold=False), dropped
            # rich shrinks the widest wrappable column first, so if the text fits at _FOLD_MIN each, no
            # text column ends narrower than that and the numbers keep their full width
            if natural(self._table(t, shown, fold=True, cap=_FOLD_MIN)) <= width or not drop_order:
                return self._table(t, shown, fold=True), dropped  # not drop_order: squeeze the text
            key = drop_order.pop(0)
            dropped += [h.replace("\n", " ") for k, h in shown if k == key]
            shown = [c for c in shown if c[0] != key]

    def __rich_console__(self, console, options):
        from rich.text import Text

        width = options.max_width
        dropped_by_table = []
        for t in self.tables:
            rt, dropped = self._layout(console, options, t)
            yield rt
            dropped_by_table.append((t.title, dropped))
        for n in footnotes(self.tables, self.notes):
            yield Text(n, style="dim")
        hint = "widen the terminal, or write every column with --markdown/--csv"
        if len({tuple(d) for _, d in dropped_by_table}) == 1:  # the same in every table: say it once
            if dropped_by_table and dropped_by_table[0][1]:
                yield Text(f"not shown at {width} columns: {', '.join(dropped_by_table[0][1])} ({hint})",
                           style="dim")
            return
        for title, d in dropped_by_table:
            if d:
                yield Text(f"not shown at {width} columns in {title}: {', '.join(d)} ({hint})", style="dim")


def load_router_sweeps(paths: list[str]) -> list[dict]:
    """`lrt-bench router-sweep` outputs (router_sweep.json files or folders holding one), for the plot."""
    import json

    out = []
    for item in paths or []:
        f = Path(item)
        f = f / "router_sweep.json" if f.is_dir() else f
        try:
            doc = json.loads(f.read_text())
            doc["points"], doc["budget"], doc["task"]  # noqa: B018 - the keys the plot needs
        except (OSError, ValueError, KeyError, TypeError):
            raise LRTError(f"--router {item}: not a router_sweep.json written by `lrt-bench router-sweep`") from None
        out.append(doc)
    return out


def router_notes(sweeps: list[dict]) -> list[str]:
    notes = []
    for r in sweeps:
        b = r.get("cheapest_within_95pct_of_think") or {}
        if b:
            notes.append(f"hybrid router ({r['task']}, budget {r['budget']}, {r.get('score')}, greedy): the cheapest τ "
                         f"within 95% of think's accuracy is {b['threshold']:.4g}: {100 * b['accuracy']:.1f}% at "
                         f"{b['mean_generated_tokens']:.1f} tokens, {100 * b['rerouted']:.0f}% re-asked")
    return notes


def plot_png(rows: list[Row], sort: str = "avg_pass1", sweeps: list[dict] | None = None) -> bytes:
    """Average pass@1 against budget and against mean generated tokens, one line per model · method;
    each hybrid router sweep (`sweeps`) as its accuracy-vs-tokens curve over τ in the tokens panel.

    Paper rows are dashed; they have no token counts, so they appear only in the budget panel.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    tables = build_tables(rows, sort, [])
    series: dict[tuple, list[tuple[int | None, float | None, float]]] = {}
    for t in tables:
        for row, vals in zip(t.rows, t.values):
            acc = vals["avg_pass1"].x
            if acc is None:
                continue
            r, a = vals["reasoning_tokens"].x, vals["answer_tokens"].x
            tokens = None if r is None or a is None else r + a
            series.setdefault((row.model, row.method, row.source), []).append((row.budget, tokens, acc))
    if not series:
        raise LRTError("nothing to plot: no row has pass@1 on every benchmark of its table (see the footnotes)")
    fig, (ax_b, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2))
    cmap = plt.get_cmap("tab10" if len(series) <= 10 else "tab20")
    budgets = set()
    for i, ((model, method, source), pts) in enumerate(sorted(series.items())):
        # one colour per line in both panels, so a line can be followed from one panel to the other
        kw = {"color": cmap(i % cmap.N), "marker": "o", "linestyle": "--" if source != "ours" else "-",
              "label": f"{model} · {method}" + (f" ({source})" if source != "ours" else "")}
        by_budget = sorted((b, acc) for b, _, acc in pts if b is not None)
        if by_budget:
            ax_b.plot(*zip(*by_budget), **kw)
            budgets |= {b for b, _ in by_budget}
        by_tokens = sorted((tok, acc) for _, tok, acc in pts if tok is not None)
        if by_tokens:
            ax_t.plot(*zip(*by_tokens), **kw)
    for r in sweeps or []:
        curve = sorted((p["mean_generated_tokens"], 100 * p["accuracy"]) for p in r["points"])
        ax_t.plot(*zip(*curve), color="black", marker=".", linestyle=":",
                  label=f"hybrid router over τ ({r['task']}, B={r['budget']}, greedy)")
    ax_b.set_xscale("log", base=2)
    ax_b.set_xticks(sorted(budgets), [str(b) for b in sorted(budgets)])
    ax_b.minorticks_off()
    ax_b.set(xlabel="token budget (max_gen_toks)", ylabel="average pass@1 (%)", title="accuracy vs budget")
    ax_t.set(xlabel="mean generated tokens per sample (reasoning + answer)", ylabel="average pass@1 (%)",
             title="accuracy vs generated tokens")
    for ax in (ax_b, ax_t):
        ax.grid(alpha=0.3)
    legend: dict[str, Any] = {}  # every line is in one panel at least: one legend entry per line
    for ax in (ax_b, ax_t):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    labels, handles = list(legend), list(legend.values())
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * ((len(labels) - 1) // 3), 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ CLI


def _parse_labels(items: list[str]) -> dict[str, str]:
    labels = {}
    for item in items or []:
        path, sep, name = item.rpartition("=")
        if not sep or not path or not name:
            raise LRTError(f"--label {item!r} is not PATH=NAME: e.g. --label runs/shorterbetter=ShorterBetter")
        labels[path] = name
    return labels


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    notes: list[str] = []
    rows = load_results(args.paths, labels=_parse_labels(args.label), notes=notes)
    sweeps = load_router_sweeps(args.router)
    notes += router_notes(sweeps)
    if args.paper:
        rows += paper_rows()
    # Build every output in memory first: a bad input fails before any file is touched.
    outputs: list[tuple[Path, str | bytes]] = []
    if args.markdown:
        outputs.append((Path(args.markdown), render(rows, "markdown", args.sort, notes)))
    if args.csv:
        outputs.append((Path(args.csv), render(rows, "csv", args.sort, notes)))
    if args.plot:
        if not str(args.plot).lower().endswith(".png"):
            raise LRTError(f"--plot {args.plot}: the plot is a PNG, name the file *.png")
        outputs.append((Path(args.plot), plot_png(rows, args.sort, sweeps)))
    con = Console()
    con.print(render_rich(rows, args.sort, notes))
    for path, payload in outputs:
        if isinstance(payload, bytes):
            atomic_write_bytes(path, payload)
        else:
            atomic_write_text(path, payload)
        con.print(f"wrote {path}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "leaderboard",
        help="tables of lm-eval results: model x method x budget, best cells highlighted",
        description="Read lm-eval results (results_*.json, any --output_path layout) and show one table per "
        "token budget: pass@1 per benchmark, average pass@1 / pass@4, mean tokens, latents, seconds.",
    )
    p.add_argument("paths", nargs="*", default=["results"], metavar="PATH",
                   help="results files or folders searched recursively (default: results)")
    p.add_argument("--label", action="append", default=[], metavar="PATH=NAME",
                   help="method name for the results under PATH, e.g. a trained baseline (repeatable)")
    p.add_argument("--paper", action="store_true", help="add the paper's reference rows (Tables 1-4)")
    p.add_argument("--sort", default="avg_pass1",
                   help=f"column to sort by: {', '.join(SORT_KEYS)} or a task such as lrt_gsm8k (default avg_pass1)")
    p.add_argument("--markdown", metavar="FILE", help="also write the tables as markdown")
    p.add_argument("--csv", metavar="FILE", help="also write the tables as CSV")
    p.add_argument("--plot", metavar="FILE.png", help="also plot accuracy vs budget and vs generated tokens")
    p.add_argument("--router", action="append", default=[], metavar="SWEEP",
                   help="a `lrt-bench router-sweep` output (router_sweep.json or its folder): its curve over τ "
                        "goes on the plot and its best point in the notes; repeatable")
    p.set_defaults(func=run)
    return p
