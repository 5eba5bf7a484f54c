"""How much the tiny base's think-mode traces vary: groups of samples per problem, shortest right one vs the mean.

    python -m lrt_bench.tools.traces [--world DIR] [--problems 100] [--group 8] [--temperature 0.6] \\
        --out OUT/traces.json

The issue's "traces" target asks that within a group of 8 samples of one problem the shortest right
trace be on average >= 20% shorter than the group's mean: the room ShorterBetter's reward (the shortest
right length of the group) has to work with. This samples `--group` think-mode responses per eval problem
at the eval's temperature and top-p 0.95 (the world build's own `generate`, seeded), counts reasoning
tokens (everything before `</think>`), and averages 1 - shortest_right / group_mean over the problems
with at least one right sample. The demo runs it as a stage (OUT/traces.json); its FINDINGS.md reads
the file (the "traces" row).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from lrt_bench.errors import positive_int
from lrt_bench.io import atomic_write_json, read_jsonl


def shortest_right_cut(lengths: list[int], right: list[bool]) -> float | None:
    """1 - (shortest right sample's length) / (the group's mean length); None when no sample is right."""
    mean = statistics.fmean(lengths)
    if not any(right) or mean == 0:
        return None
    return 1 - min(n for n, ok in zip(lengths, right) if ok) / mean


def measure(world: Path, problems: int, group: int, temperature: float, seed: int = 0) -> dict:
    """Sample `group` traces for each of the first `problems` eval problems; the groups' statistics."""
    import torch

    from lrt_bench.core.layout import THINK_CLOSE
    from lrt_bench.core.models import load_base
    from lrt_bench.eval.grading import grade_math
    from lrt_bench.tiny.build import THINK_PREFIX, chat_prompt, generate, reasoning_length

    rows = read_jsonl(world / "data" / "eval.jsonl")[:problems]
    model, tok = load_base(world / "base", device="cpu", use_safetensors=True, what="the tiny base")
    close_id = tok.convert_tokens_to_ids(THINK_CLOSE)
    prompts = [chat_prompt(tok, r["problem"]) + THINK_PREFIX for r in rows for _ in range(group)]
    with torch.random.fork_rng(devices=[]):  # seeded, and the caller's RNG (a demo run in-process) untouched
        torch.manual_seed(seed)
        outs = generate(model, tok, prompts, 400, 100, temperature=temperature)  # [problems * group] token ids
    cuts, means, right_share = [], [], []
    for p, r in enumerate(rows):
        lens, right = [], []
        for ids in outs[p * group:(p + 1) * group]:
            lens.append(reasoning_length(ids, close_id))
            right.append(grade_math(tok.decode(ids, skip_special_tokens=True), r["answer"]))
        means.append(statistics.fmean(lens))
        right_share.append(sum(right) / group)
        if (cut := shortest_right_cut(lens, right)) is not None:
            cuts.append(cut)
    return {"problems": len(rows), "group": group, "temperature": temperature, "top_p": 0.95, "seed": seed,
            "mean_reasoning_tokens": round(statistics.fmean(means), 2),
            "groups_with_a_right_sample": len(cuts),
            "shortest_right_vs_group_mean": round(statistics.fmean(cuts), 4) if cuts else None,
            "accuracy": round(statistics.fmean(right_share), 4)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", help="tiny world directory (default: $LRT_TINY_DIR or the user cache)")
    p.add_argument("--problems", type=positive_int, default=100, help="eval problems (the first N of the split)")
    p.add_argument("--group", type=positive_int, default=8, help="samples per problem (ShorterBetter's num_generations)")
    p.add_argument("--temperature", type=float, default=0.6, help="sampling temperature (the eval's)")
    p.add_argument("--out", required=True, help="the JSON to write (a demo's OUT/traces.json)")
    args = p.parse_args(argv)
    if not 0 < args.temperature <= 2:
        p.error(f"--temperature must be in (0, 2], got {args.temperature}")

    from lrt_bench.eval.data import tiny_dir

    world = Path(args.world) if args.world else tiny_dir()
    if not (world / "world.json").is_file():
        p.error(f"{world} holds no tiny world (no world.json): build one with `lrt-bench tiny build --out {world}`")
    write_traces(world, args.out, args.problems, args.group, args.temperature)
    return 0


def write_traces(world: str | Path, out: str | Path, problems: int = 100, group: int = 8,
                 temperature: float = 0.6) -> dict:
    """`measure` on `world`, written atomically to `out` with the world's version and the provenance."""
    from lrt_bench.provenance import provenance

    world = Path(world)
    meta = json.loads((world / "world.json").read_text())
    result = measure(world, problems, group, temperature)
    command = (f"python -m lrt_bench.tools.traces --world {world} --problems {problems} --group {group} "
               f"--temperature {temperature} --out {out}")
    atomic_write_json(out, {**result, "world_code_version": meta.get("code_version"),
                            "world_seed": meta.get("seed"), "command": command, "provenance": provenance()})
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
