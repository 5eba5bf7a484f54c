"""`lrt-bench leaderboard`: lm-eval results JSON -> tables per budget, markdown, CSV, plot.

Fixtures (tests/fixtures/leaderboard): `real/` was written by lm-eval 0.4.13 with `--model lrt`; the rest
is built from it by make_fixtures.py (same keys and shapes, chosen numbers). At budget 512 the
Qwen3-1.7B rows average 44.4 (nothink empty), 40.8 (nothink), 38.0 (think); LRT lacks GPQA.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lrt_bench.errors import LRTError
from lrt_bench.tools import leaderboard as lb

FIX = Path(__file__).resolve().parent / "fixtures" / "leaderboard"
RUNS = FIX / "runs"
SUITE5 = ["lrt_amc23", "lrt_math500", "lrt_gsm8k", "lrt_lsat_ar", "lrt_gpqa"]


def rows_by_key(rows):
    return {(r.model, r.method, r.budget): r for r in rows}


def table(tables, budget):
    (t,) = [t for t in tables if t.budget == budget]
    return t


def methods(t):
    return [(r.method, r.source) if r.is_paper else r.method for r in t.rows]


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lrt-bench")
    lb.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["leaderboard", *argv])
    return args.func(args)


# ------------------------------------------------------------------------------------------ reading


def test_real_lm_eval_output():
    (row,) = lb.load_results([FIX / "real" / "tiny"])
    assert (row.model, row.method, row.budget) == ("full/base", "nothink", 512)  # .../full/base: parent kept
    (cell,) = row.cells.values()
    assert (cell.task, cell.benchmark, cell.version) == ("lrt_tiny", "lrt_tiny", "1.0")
    assert cell.pass1 == 25.0 and cell.pass4 == 25.0 and cell.answer_tokens == 6.0 and cell.latents == 0.0
    assert cell.subset and (cell.n, cell.n_total) == (4, 200)  # --limit 4

    # lrt_suite_b1024 run with --gen_kwargs max_gen_toks=16: the budget is what ran; the group is no column
    (row,) = lb.load_results([FIX / "real" / "suite"])
    assert row.budget == 16
    assert sorted(row.cells) == sorted(SUITE5)
    assert {c.task for c in row.cells.values()} == {f"{b}_b1024" for b in SUITE5}


def test_output_path_layout_rows():
    notes: list[str] = []
    rows = rows_by_key(lb.load_results([RUNS], notes=notes))
    q = "Qwen3-1.7B"
    assert set(rows) == {(q, "think", 512), (q, "nothink", 512), (q, "nothink (empty)", 512), (q, "LRT", 512),
                         (q, "think", 1024), (q, "nothink", 1024)}
    assert sorted(rows[(q, "think", 512)].cells) == sorted(SUITE5)  # from the lrt_suite group's subtasks
    assert sorted(rows[(q, "LRT", 512)].cells) == sorted(SUITE5[:4])
    assert rows[(q, "LRT", 512)].cells["lrt_math500"].latents == 256
    # --gen_kwargs max_gen_toks=1024 on plain task names: budget 1024
    assert sorted(rows[(q, "nothink", 1024)].cells) == ["lrt_gsm8k", "lrt_math500"]
    # the older GSM8K-only think run is superseded by the newer suite run, and the note says so
    assert rows[(q, "think", 512)].cells["lrt_gsm8k"].pass1 == 70.0
    (note,) = [n for n in notes if "supersedes" in n]
    assert "results_2026-01-02T10-00-00" in note and "results_2026-01-01T09-00-00" in note


def test_a_results_file_given_directly():
    f = next((RUNS / "Qwen__Qwen3-1.7B").glob("results_2026-01-02T13-*.json"))
    (row,) = lb.load_results([f])
    assert (row.method, row.budget) == ("LRT", 512)


def test_trained_baseline_label_and_override(tmp_path):
    (row,) = lb.load_results([FIX / "baseline"])  # the results carry config.lrt.method
    assert (row.model, row.method) == ("ShorterBetter-Qwen3-1.7B", "ShorterBetter")
    # --label PATH=NAME wins, for every file under PATH
    rows = lb.load_results([RUNS, FIX / "hf"], labels={str(FIX / "hf"): "hf chat"})
    assert ("Qwen3-1.7B", "hf chat", 512) in rows_by_key(rows)
    with pytest.raises(LRTError, match="PATH=NAME"):
        lb._parse_labels(["no-equals-sign"])


def test_model_and_method_names():
    assert lb.model_name("Qwen/Qwen3-1.7B") == "Qwen3-1.7B"
    assert lb.model_name("/data/ckpts/my-model/") == "my-model"
    assert lb.model_name("/work/worlds/quick/base") == "quick/base"
    assert lb.parse_model_args("pretrained=Qwen/Qwen3-1.7B,mode=nothink,nothink_style=empty") == {
        "pretrained": "Qwen/Qwen3-1.7B", "mode": "nothink", "nothink_style": "empty"}
    m = lambda **a: lb.method_of({"model": "lrt"}, a, {})  # noqa: E731
    assert [m(), m(mode="think"), m(mode="nothink"), m(mode="nothink", nothink_style="empty"), m(mode="latent")] == [
        "think", "think", "nothink", "nothink (empty)", "LRT"]
    assert lb.method_of({"model": "hf"}, {}, {}) == "hf"
    assert lb.method_of({"model": "lrt", "method": "LC-R1"}, {"mode": "think"}, {}) == "LC-R1"


def test_other_backend_costs_are_not_measured():
    (row,) = lb.load_results([FIX / "hf"])
    assert row.method == "hf" and row.cells["lrt_gsm8k"].reasoning_tokens is None  # NaN in the file
    (t,) = lb.build_tables([row])
    assert {k: t.values[0][k].why for k in ("reasoning_tokens", "answer_tokens", "seconds")} == {
        "reasoning_tokens": "n/m", "answer_tokens": "n/m", "seconds": "n/m"}
    assert any(n.startswith("n/m:") for n in lb.footnotes([t]))


# ----------------------------------------------------------------------------------- bad input


def test_mixed_task_versions_are_refused():
    with pytest.raises(LRTError) as e:
        lb.load_results([FIX / "mixed_versions"])
    msg = str(e.value)
    assert "lrt_gsm8k has version 1.0 in" in msg and "but 2.0 in" in msg
    assert "mixed_versions/a/results_" in msg and "mixed_versions/b/results_" in msg
    assert "\n" not in msg


def test_folder_without_results(tmp_path):
    (tmp_path / "samples_lrt_tiny_2026.jsonl").write_text("{}\n")
    with pytest.raises(LRTError, match=r"no lm-eval results \(results_\*\.json\) under .*: pass the --output_path"):
        lb.load_results([tmp_path])
    with pytest.raises(LRTError, match="does not exist"):
        lb.load_results([tmp_path / "nope"])


def test_foreign_json_names_the_file(tmp_path):
    f = FIX / "foreign" / "results_gsm8k.json"
    with pytest.raises(LRTError, match=rf"{f} is not an lm-eval results file \(no 'results' and 'configs'\)"):
        lb.load_results([f])
    bad = tmp_path / "results_x.json"
    bad.write_text("{not json")
    with pytest.raises(LRTError, match=rf"{bad} is not readable JSON"):
        lb.load_results([bad])


def test_results_without_lrt_metrics(tmp_path):
    d = json.loads(next((FIX / "real" / "tiny").rglob("results_*.json")).read_text())
    d["results"] = {"lrt_tiny": {"alias": "lrt_tiny", "exact_match,none": 0.5}}
    (tmp_path / "results_1.json").write_text(json.dumps(d))
    with pytest.raises(LRTError, match=r"has lrt-bench metrics \(pass@1\): evaluate lrt_\* tasks"):
        lb.load_results([tmp_path])


def test_two_reasoners_in_one_row_need_labels(tmp_path):
    src = next((RUNS / "Qwen__Qwen3-1.7B").glob("results_2026-01-02T13-*.json"))
    for name, reasoner in (("a", "ckpt/run-a"), ("b", "ckpt/run-b")):
        d = json.loads(src.read_text())
        d["config"]["lrt"]["reasoner"] = d["config"]["model_args"]["reasoner"] = reasoner
        (tmp_path / name).mkdir()
        (tmp_path / name / src.name).write_text(json.dumps(d))
    with pytest.raises(LRTError, match=r"reasoner=ckpt/run-a vs ckpt/run-b.*--label PATH=NAME"):
        lb.load_results([tmp_path])
    rows = lb.load_results([tmp_path], labels={str(tmp_path / "a"): "LRT a", str(tmp_path / "b"): "LRT b"})
    assert sorted(r.method for r in rows) == ["LRT a", "LRT b"]


# ---------------------------------------------------------------------------------------- tables


def test_budget_grouping_and_columns():
    tables = lb.build_tables(lb.load_results([RUNS, FIX / "real" / "tiny"]))
    assert [t.budget for t in tables] == [512, 1024]
    t512 = table(tables, 512)
    assert t512.benchmarks == [*SUITE5, "lrt_tiny"]  # the paper's order, then ours
    assert [h for _, h in t512.columns()][:6] == ["AMC23", "MATH-500", "GSM8K", "LSAT-AR", "GPQA", "tiny"]
    assert table(tables, 1024).benchmarks == SUITE5
    assert all(r.budget == t.budget for t in tables for r in t.rows)


def test_sorting():
    rows = lb.load_results([RUNS])
    t = table(lb.build_tables(rows), 512)
    assert methods(t) == ["nothink (empty)", "nothink", "think", "LRT"]  # no average (missing GPQA) goes last
    assert [round(v["avg_pass1"].x, 2) for v in t.values[:3]] == [44.4, 40.8, 38.0]
    t = table(lb.build_tables(rows, sort="seconds"), 512)
    assert methods(t) == ["nothink (empty)", "LRT", "nothink", "think"]  # costs: lowest first
    t = table(lb.build_tables(rows, sort="lrt_gsm8k"), 512)
    assert methods(t) == ["LRT", "nothink", "think", "nothink (empty)"]
    assert methods(table(lb.build_tables(rows, sort="method"), 512)) == ["LRT", "nothink", "nothink (empty)", "think"]
    with pytest.raises(LRTError, match="cannot sort by 'speed': use one of avg_pass1"):
        lb.build_tables(rows, sort="speed")


def test_best_cells():
    t = table(lb.build_tables(lb.load_results([RUNS])), 512)
    idx = {r.method: i for i, r in enumerate(t.rows)}
    best = {k: {t.rows[i].method for i in v} for k, v in t.best.items()}
    assert best["lrt_amc23"] == {"nothink (empty)"}
    assert best["lrt_math500"] == best["lrt_gsm8k"] == {"LRT"}
    assert best["avg_pass1"] == best["avg_pass4"] == {"nothink (empty)"}
    assert best["reasoning_tokens"] == {"nothink", "nothink (empty)", "LRT"}  # ties are all best; fewest wins
    assert best["answer_tokens"] == {"think"} and best["seconds"] == {"nothink (empty)"}
    assert "latents" not in t.best  # a count of latents is no contest
    assert idx["LRT"] not in t.best["lrt_gpqa"]  # a missing cell is never best
    # a single number is not highlighted
    (t1,) = lb.build_tables(lb.load_results([FIX / "real" / "tiny"]))
    assert all(not v for v in t1.best.values())


def test_missing_cells_are_named():
    rows = lb.load_results([RUNS])
    tables = lb.build_tables(rows)
    t = table(tables, 512)
    lrt = t.values[methods(t).index("LRT")]
    assert lrt["lrt_gpqa"].x is None and lrt["lrt_gpqa"].why == "missing"
    assert lrt["avg_pass1"].why == "n/a" and lrt["lrt_gsm8k"].x == 77.0
    notes = lb.footnotes(tables)
    assert "missing: Qwen3-1.7B · LRT · budget 512 has no result for lrt_gpqa (run --tasks lrt_gpqa)" in notes
    assert ("missing: Qwen3-1.7B · nothink · budget 1024 has no result for lrt_amc23, lrt_lsat_ar, lrt_gpqa "
            "(run --tasks lrt_amc23_b1024,lrt_lsat_ar_b1024,lrt_gpqa_b1024)") in notes
    assert lb._run_hint(["lrt_gsm8k"], 300) == "--tasks lrt_gsm8k --gen_kwargs max_gen_toks=300"


# ----------------------------------------------------------------------------------------- outputs


def test_markdown():
    md = lb.render(lb.load_results([RUNS]), "markdown")
    lines = md.splitlines()
    assert lines[0] == "# Leaderboard"
    assert "## Budget 512 tokens" in lines and "## Budget 1024 tokens" in lines
    assert lines.index("## Budget 512 tokens") < lines.index("## Budget 1024 tokens")
    head = "| model | method | AMC23 | MATH-500 | GSM8K | LSAT-AR | GPQA | avg pass@1 | avg pass@4 | " \
           "reasoning tok | answer tok | latents | s/sample |"
    assert head in lines
    rows = [ln for ln in lines if ln.startswith("| Qwen3-1.7B |")]
    assert rows[0].startswith("| Qwen3-1.7B | nothink (empty) | **40.00** | 60.00 | 66.00 | **26.00** | **30.00** | **44.40** |")
    assert "| Qwen3-1.7B | LRT | 38.00 | **61.00** | **77.00** | 20.00 | missing | n/a | n/a |" in md
    assert all("|  |" not in ln and "| |" not in ln for ln in rows)  # nothing blank
    assert "- missing: Qwen3-1.7B · LRT · budget 512 has no result for lrt_gpqa (run --tasks lrt_gpqa)" in lines


def test_csv():
    text = lb.render(lb.load_results([RUNS, FIX / "real" / "tiny"]), "csv")
    recs = list(csv.DictReader(io.StringIO(text)))
    assert list(recs[0])[:4] == ["budget", "model", "method", "source"]
    # with tiny in the 512 table no row there has every benchmark: no averages, rows sorted by name
    assert [(r["budget"], r["model"], r["method"]) for r in recs] == [
        ("512", "Qwen3-1.7B", "LRT"), ("512", "Qwen3-1.7B", "nothink"), ("512", "Qwen3-1.7B", "nothink (empty)"),
        ("512", "Qwen3-1.7B", "think"), ("512", "full/base", "nothink"),
        ("1024", "Qwen3-1.7B", "think"), ("1024", "Qwen3-1.7B", "nothink")]
    by = {(r["budget"], r["model"], r["method"]): r for r in recs}
    lrt = by[("512", "Qwen3-1.7B", "LRT")]
    assert lrt["lrt_gpqa"] == "missing" and lrt["avg_pass1"] == "n/a" and lrt["lrt_gsm8k"] == "77"
    assert lrt["latents"] == "256" and lrt["lrt_tiny"] == "missing"
    assert by[("1024", "Qwen3-1.7B", "think")]["lrt_tiny"] == "-"  # no such column at that budget
    tiny = by[("512", "full/base", "nothink")]
    assert tiny["lrt_tiny"] == "25" and tiny["subset"] == "1"
    assert all(v != "" for r in recs for k, v in r.items() if k != "source")


def test_paper_rows():
    paper = lb.paper_rows()
    assert len(paper) == 18 and {r.source for r in paper} == {"paper T1", "paper T2", "paper T3", "paper T4"}
    lrt = rows_by_key(paper)[("DeepSeek-R1-Distill-Qwen-1.5B", "LRT", 512)]
    assert {b: c.pass1 for b, c in lrt.cells.items()} == {
        "lrt_amc23": 38.0, "lrt_math500": 60.65, "lrt_gsm8k": 77.16, "lrt_lsat_ar": 19.57, "lrt_gpqa": 29.17}

    tables = lb.build_tables(lb.load_results([RUNS]) + paper)
    assert [t.budget for t in tables] == [512, 1024, None]  # Tables 2-4 state no budget
    t = table(tables, 512)
    assert ("LRT", "paper T1") in methods(t) and "LRT" in methods(t)  # beside ours
    i = t.rows.index(lrt)
    assert t.values[i]["avg_pass1"].x == 44.91  # the paper's own average
    assert t.values[i]["reasoning_tokens"].why == "n/r" and t.values[i]["avg_pass4"].why == "n/r"
    assert i in t.best["avg_pass1"]
    q = table(tables, None)
    j = [k for k, r in enumerate(q.rows) if (r.model, r.method) == ("Qwen3-4B", "LRT")][0]
    assert q.values[j]["avg_pass4"].x == 71.6
    md = lb.render(lb.load_results([RUNS]) + paper, "markdown")
    assert "| DeepSeek-R1-Distill-Qwen-1.5B | *LRT* | paper T1 | 38.00 | 60.65 | **77.16** |" in md
    assert "## Budget not stated (paper)" in md
    # beside tiny-world rows the paper has nothing to compare: its rows at that budget are left out, said so
    notes: list[str] = []
    tables = lb.build_tables(lb.load_results([FIX / "real" / "tiny"]) + paper, notes=notes)
    assert methods(table(tables, 512)) == ["nothink"]
    assert notes == ["5 paper row(s) at budget 512 tokens not shown: they have none of that table's benchmarks"]


def test_paper_reference_matches_the_shared_copy():
    shared = Path(__file__).resolve().parents[2] / "shared" / "paper" / "reference_results.json"
    if not shared.is_file():
        pytest.skip(f"{shared} not found")
    ref = json.loads(shared.read_text())
    cols = {"amc": "lrt_amc23", "math500": "lrt_math500", "gsm8k": "lrt_gsm8k", "lsat": "lrt_lsat_ar",
            "gpqa": "lrt_gpqa"}
    rows = rows_by_key(lb.paper_rows())
    t1 = ref["table1_r1_distill_1p5b"]
    names = {"Baseline": "think", "NoThinking": "nothink", "ShorterBetter": "ShorterBetter", "LC-R1": "LC-R1",
             "LRT": "LRT"}
    for budget in ("512", "1024"):
        for name, vals in t1[budget].items():
            row = rows[("DeepSeek-R1-Distill-Qwen-1.5B", names[name], int(budget))]
            assert [row.cells[cols[c]].pass1 for c in t1["columns"][:-1]] == vals[:-1]
            assert row.paper_average["avg_pass1"] == vals[-1]
    t2 = ref["table2_qwen3"]
    row = rows[("Qwen3-4B", "LRT", None)]
    assert [row.cells[cols[c]].pass4 for c in t2["columns"][:-1]] == t2["Qwen3-4B"]["LRT@4"][:-1]


def test_plot_png():
    png = lb.plot_png(lb.load_results([RUNS]) + lb.paper_rows())
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


# --------------------------------------------------------------------------------------------- CLI


def _terminal(rows, width: int) -> str:
    from rich.console import Console

    con = Console(width=width, record=True, color_system=None, file=io.StringIO())
    con.print(lb.render_rich(rows))
    return con.export_text()


@pytest.mark.parametrize("width", [80, 60])
def test_narrow_terminal_keeps_numbers_whole(width):
    """Numbers are never cut ("25…"): a narrow terminal folds names and drops columns, and says which."""
    rows = lb.load_results([RUNS]) + lb.paper_rows()
    out = _terminal(rows, width)
    assert "…" not in out
    assert max(len(ln) for ln in out.splitlines()) <= width
    lines = out.splitlines()
    note = next(i for i, ln in enumerate(lines) if ln.startswith(f"not shown at {width} columns"))
    note_text = re.sub(r"\s+", " ", " ".join(lines[note:]))  # the notes come last; a long one wraps
    tables = lb.build_tables(rows)
    dropped_any = False
    for t in tables:
        # the note names this table's dropped columns (once for all tables when they agree)
        per_table = re.search(rf"in {re.escape(t.title)}: (.*?) \(widen", note_text)
        names = (per_table or re.search(r"columns: (.*?) \(widen", note_text)).group(1).split(", ")
        headers = {h: k for k, h in t.columns()}
        assert set(names) <= set(headers), names
        dropped_any |= bool(names)
        shown = [k for k, h in t.columns() if h not in names]
        assert "avg_pass1" in shown and t.benchmarks[0] in shown  # the least important go first
        assert "seconds" not in shown and "latents" not in shown
        for row, vals in zip(t.rows, t.values):
            # the row's shown numbers, whole, side by side and last on its line: so no dropped column is
            # printed after all and no shown one is missing
            cells = r"\s+".join(re.escape(lb._fmt(k, vals[k])) for k in shown)
            method = re.escape(row.method.split()[0][:8])  # a folded name keeps that much on its first line
            assert re.search(rf"(?m)^.*\s{method}.*?\s{cells}\s*$", out), (row.name, cells)
    assert dropped_any
    wide = _terminal(rows, 200)  # a wide terminal shows everything and says nothing
    assert "not shown" not in wide and "s/sample" in wide and "…" not in wide


def test_cli_writes_every_output(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    md, cs, png = tmp_path / "out" / "lb.md", tmp_path / "lb.csv", tmp_path / "lb.png"
    assert cli([str(RUNS), "--paper", "--markdown", str(md), "--csv", str(cs), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "budget 512 tokens" in out and "budget not stated (paper)" in out and "paper T1" in out
    assert "missing: Qwen3-1.7B · LRT · budget 512 has no result for lrt_gpqa" in out
    notes: list[str] = []
    rows = lb.load_results([RUNS], notes=notes) + lb.paper_rows()
    assert md.read_text() == lb.render(rows, "markdown", notes=notes)  # the same table as the terminal's
    assert cs.read_text().startswith("budget,model,method,source,")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["lb.csv", "lb.md", "lb.png", "out"]  # no temp files


def test_cli_bad_input_writes_nothing(tmp_path):
    md = tmp_path / "lb.md"
    with pytest.raises(LRTError, match="not an lm-eval results file"):
        cli([str(RUNS), str(FIX / "foreign"), "--markdown", str(md)])
    with pytest.raises(LRTError, match="name the file \\*.png"):
        cli([str(RUNS), "--markdown", str(md), "--plot", str(tmp_path / "plot.jpg")])
    assert list(tmp_path.iterdir()) == []


def test_cli_default_path_and_sort(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LRTError, match="results does not exist"):
        cli([])
    shutil.copytree(RUNS, tmp_path / "results")
    assert cli(["--sort", "seconds"]) == 0
    assert "budget 1024 tokens" in capsys.readouterr().out


def test_import_is_light():
    code = ("import sys, lrt_bench.tools.leaderboard; "
            "print([m for m in ('torch', 'lm_eval', 'transformers', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_router_sweep_curve_goes_on_the_plot_and_in_the_notes(tmp_path):
    """--router adds a `lrt-bench router-sweep` curve to the tokens panel and its best point to the notes
    (the committed tiny-world sweep and demo results)."""
    from lrt_bench.errors import LRTError
    from lrt_bench.tools.leaderboard import load_router_sweeps, plot_png, router_notes

    root = Path(__file__).resolve().parents[1] / "results"
    sweeps = load_router_sweeps([str(root / "router" / "tiny_b512")])
    notes = router_notes(sweeps)
    assert len(notes) == 1 and "hybrid router (tiny, budget 512" in notes[0] and "re-asked" in notes[0]
    from lrt_bench.tools.leaderboard import load_results

    rows = load_results([str(root / "tiny" / "results")])
    with_curve, without = plot_png(rows, sweeps=sweeps), plot_png(rows)
    assert with_curve[:8] == b"\x89PNG\r\n\x1a\n" and with_curve != without
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(LRTError, match="not a router_sweep.json"):
        load_router_sweeps([str(tmp_path / "bad.json")])
