"""`lrt-bench bench`'s report: the rich (or plain) tables, the markdown file and the JSON written beside it."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from lrt_bench.tools.bench_measure import Cell

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
