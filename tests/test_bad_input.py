"""Every bad input, through the real entry points: one line that names the problem, no traceback, and
nothing left behind that would block a rerun.

Each row runs a command in a fresh process (`lm_eval`, `python -m trainers.*`, `lrt-bench ...`) and
checks its exit code, that stderr has exactly one error line and it names the problem, that there is
no traceback, and that the output path it was given does not exist afterwards (or, for --resume and
files that existed before, is unchanged).

The commands are independent (each row has its own output paths; the crafted inputs are made once and
only read), and each spends most of its ~20 s importing and indexing lm-eval's tasks on one core, so
the `outcomes` fixture runs the selected rows two at a time and each test checks its row's outcome.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lrt_bench.core.reasoner import CHECKPOINT_CONFIG, CHECKPOINT_WEIGHTS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SFT = REPO / "trainers" / "recipes" / "tiny" / "sft.yaml"
GRPO = REPO / "trainers" / "recipes" / "tiny" / "grpo.yaml"
UNWRITABLE = "/proc/lrt-bench-test/out"  # refused by the file system even to root (CI runs as root)
FAST = ["--max_steps", "2", "--warmup_steps", "0", "--eval_steps", "0", "--progress", "false", "--max_samples", "64"]


@dataclass
class Ctx:
    world: Path
    tmp: Path
    reasoner: Path  # a good reasoner checkpoint for the world's base
    run: Path  # a finished 2-step SFT run with a checkpoint at step 1
    own: Path | None = None  # the row's own folder, for its outputs

    def crafted(self, name: str, edit: Callable[[dict], None] | None = None,
                weights: Callable[[bytes], bytes] | None = None) -> Path:
        """A copy of the good reasoner with its config and/or weights file edited (made once per name:
        rows running side by side may read it)."""
        d = self.tmp / "crafted" / name
        if d.is_dir():
            return d
        tmp = d.with_name(f".{name}.{threading.get_ident()}")
        shutil.copytree(self.reasoner, tmp)
        if edit is not None:
            doc = json.loads((tmp / CHECKPOINT_CONFIG).read_text())
            edit(doc)
            (tmp / CHECKPOINT_CONFIG).write_text(json.dumps(doc))
        if weights is not None:
            (tmp / CHECKPOINT_WEIGHTS).write_bytes(weights((tmp / CHECKPOINT_WEIGHTS).read_bytes()))
        try:
            tmp.rename(d)
        except OSError:  # another row made it first
            shutil.rmtree(tmp)
        return d

    def killed_run(self, name: str, damage: Callable[[Path], None] | None = None) -> Path:
        """A copy of the SFT run as if killed after its step-1 checkpoint (no final output yet)."""
        d = self.tmp / "runs" / name
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(self.run, d)
        shutil.rmtree(d / "reasoner")
        (d / "train_summary.json").unlink()
        if damage is not None:
            damage(d)
        return d


@dataclass
class Case:
    id: str
    argv: Callable[[Ctx], list[str]]
    message: str  # what the one error line must say
    rc: int = 2
    out: Callable[[Ctx], Path] | None = None  # must not exist afterwards
    unchanged: Callable[[Ctx], Path] | None = None  # must be byte-identical afterwards
    env: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------- commands


def lm_eval(model_args: str, *extra: str) -> Callable[[Ctx], list[str]]:
    def argv(c: Ctx) -> list[str]:
        return [sys.executable, "-m", "lm_eval", "--model", "lrt", "--model_args",
                f"pretrained={c.world / 'base'}," + model_args.format(c=c), "--device", "cpu",
                "--tasks", "lrt_tiny", "--limit", "1", "--output_path", str(c.own / "lm_eval_out"), *extra]
    return argv


def latent(reasoner: Callable[[Ctx], Path]) -> Callable[[Ctx], list[str]]:
    return lambda c: lm_eval(f"mode=latent,reasoner={reasoner(c)}")(c)


def trainer(name: str, *over: str, out: str = "fresh") -> Callable[[Ctx], list[str]]:
    def argv(c: Ctx) -> list[str]:
        o = [a.format(c=c) for a in over]
        outdir = [] if "--output_dir" in o else ["--output_dir", str(c.own / out)]
        recipe = SFT if name == "sft" else GRPO
        extra = ["--reasoner", str(c.reasoner)] if name == "grpo" and "--reasoner" not in o else []
        return [sys.executable, "-m", f"trainers.{name}", "--config", str(recipe), *FAST, *outdir, *extra, *o]
    return argv


def cli(*args: str) -> Callable[[Ctx], list[str]]:
    return lambda c: [sys.executable, "-m", "lrt_bench.cli", *[a.format(c=c) for a in args]]


def _flip(raw: bytes) -> bytes:
    b = bytearray(raw)
    b[-40:-20] = bytes(20)  # inside the last tensor: the file still parses
    return bytes(b)


def _random(raw: bytes) -> bytes:
    return hashlib.sha256(b"x").digest() * (len(raw) // 32)


def _no_sha(doc: dict) -> None:
    doc.pop("weights_sha256")


def _net(**kw) -> Callable[[dict], None]:
    return lambda doc: doc["network"].update(**kw)


def _truncate(rel: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (ckpt,) = run.glob("checkpoint-*")
        f = ckpt / rel
        f.write_bytes(f.read_bytes()[: 100])
    return damage


def _garble(rel: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (ckpt,) = run.glob("checkpoint-*")
        f = ckpt / rel
        f.write_bytes(_random(f.read_bytes()))
    return damage


def _pop_key(key: str) -> Callable[[dict], None]:
    return lambda doc: doc["network"].pop(key)


out_lm = lambda c: c.own / "lm_eval_out"  # noqa: E731
out_fresh = lambda c: c.own / "fresh"  # noqa: E731

CASES = [
    # ---- reasoner checkpoints (lm_eval --model lrt ... reasoner=)
    Case("reasoner-invalid-json", latent(lambda c: _write(c.crafted("json"), CHECKPOINT_CONFIG, "{nope").parent),
         "not valid JSON", rc=1, out=out_lm),
    Case("reasoner-missing-hidden-size", latent(lambda c: c.crafted("nohs", _pop_key("base_hidden_size"))),
         "missing base_hidden_size", rc=1, out=out_lm),
    Case("reasoner-num-latents-string", latent(lambda c: c.crafted("nlstr", _net(num_latents="16"))),
         "num_latents must be an integer", rc=1, out=out_lm),
    Case("reasoner-no-network", latent(lambda c: c.crafted("nonet", lambda d: d.pop("network"))),
         "no 'network' mapping", rc=1, out=out_lm),
    Case("reasoner-unknown-key", latent(lambda c: c.crafted("unk", _net(colour="red"))),
         "unknown reasoner config keys", rc=1, out=out_lm),
    Case("reasoner-string-for-number", latent(lambda c: c.crafted("rms", _net(latent_rms="big"))),
         "latent_rms must be a number", rc=1, out=out_lm),
    Case("reasoner-hidden-size-string", latent(lambda c: c.crafted("hs", _net(base_hidden_size="64"))),
         "base_hidden_size must be an integer", rc=1, out=out_lm),
    Case("reasoner-num-latents-vs-weights", latent(lambda c: c.crafted("nl", _net(num_latents=9))),
         "size mismatch", rc=1, out=out_lm),
    Case("reasoner-flipped-bytes", latent(lambda c: c.crafted("flip", weights=_flip)),
         "does not match the SHA-256", rc=1, out=out_lm),
    Case("reasoner-truncated", latent(lambda c: c.crafted("trunc", _no_sha, lambda b: b[: len(b) // 2])),
         "unreadable", rc=1, out=out_lm),
    Case("reasoner-random-bytes", latent(lambda c: c.crafted("rand", _no_sha, _random)),
         "unreadable", rc=1, out=out_lm),
    Case("reasoner-custom-model-type", latent(lambda c: c.crafted("evil", lambda d: d["network"]["backbone_config"].update(
        model_type="evil", auto_map={"AutoModel": "evilmod.EvilModel"}))),
         "transformers does not ship", rc=1, out=out_lm),
    Case("reasoner-null-backbone-config", latent(lambda c: c.crafted("nullbb", _net(backbone_config=None))),
         "must carry its backbone config", rc=1, out=out_lm),
    Case("reasoner-missing-dir", lm_eval("mode=latent,reasoner={c.tmp}/nowhere"), "no reasoner checkpoint",
         rc=1, out=out_lm),
    Case("latent-without-reasoner", lm_eval("mode=latent"), "mode=latent needs a reasoner", rc=1, out=out_lm),
    # ---- model_args / gen_kwargs
    Case("max-gen-toks-word", lm_eval("mode=nothink", "--gen_kwargs", "max_gen_toks=abc"),
         "max_gen_toks='abc' must be a whole number", rc=1, out=out_lm),
    Case("max-gen-toks-fraction", lm_eval("mode=nothink", "--gen_kwargs", "max_gen_toks=2.7"),
         "max_gen_toks=2.7 must be a whole number", rc=1, out=out_lm),
    Case("answer-allowance-word", lm_eval("mode=think,answer_allowance=lots"),
         "answer_allowance='lots' must be a whole number", rc=1, out=out_lm),
    Case("temperature-nan", lm_eval("mode=nothink", "--gen_kwargs", "do_sample=true,temperature=nan"),
         "temperature=nan must be finite", rc=1, out=out_lm),
    Case("budget-beyond-context", lm_eval("mode=nothink", "--gen_kwargs", "max_gen_toks=100000"),
         "exceeds the base's context", rc=1, out=out_lm),
    Case("unknown-model-arg", lm_eval("mode=think,budget=3"), "unknown model_arg(s) budget", rc=1, out=out_lm),
    Case("hybrid-without-reasoner", lm_eval("mode=hybrid,router_threshold=-0.5"), "mode=hybrid needs a reasoner",
         rc=1, out=out_lm),
    Case("hybrid-threshold-out-of-range", lm_eval("mode=hybrid,reasoner={c.reasoner},router_threshold=0.5"),
         "outside the range of router_score=mean_logprob", rc=1, out=out_lm),
    # ---- trainers: recipe values
    Case("sft-learning-rate-nan", trainer("sft", "--learning_rate", "nan"), "learning_rate must be a finite number",
         out=out_fresh),
    Case("sft-negative-weight-decay", trainer("sft", "--weight_decay", "-0.1"), "weight_decay must be >= 0",
         out=out_fresh),
    Case("sft-adam-beta1", trainer("sft", "--adam_beta1", "3"), "adam_beta1 must be in [0, 1)", out=out_fresh),
    Case("sft-dataset-where-string", trainer("sft", "--dataset_where", "steps"), "dataset_where must map a field",
         out=out_fresh),
    Case("sft-eval-samples-zero", trainer("sft", "--eval_steps", "1", "--eval_samples", "0"),
         "eval_samples >= 1", out=out_fresh),
    Case("sft-base-missing", trainer("sft", "--base", "{c.tmp}/no/such/base"), "is not a directory",
         out=out_fresh),
    Case("sft-output-dir-is-file", trainer("sft", "--output_dir", "{c.tmp}/afile"), "is a file",
         unchanged=lambda c: _write(c.tmp, "afile", "keep me")),
    Case("sft-output-dir-unwritable", trainer("sft", "--output_dir", UNWRITABLE), "cannot be written"),
    Case("sft-reasoner-truncated", trainer("sft", "--reasoner", "{c.tmp}/crafted/trunc"), "unreadable",
         out=out_fresh),
    Case("grpo-reasoner-missing", trainer("grpo", "--reasoner", "{c.tmp}/nowhere"), "no reasoner checkpoint",
         out=out_fresh),
    Case("grpo-reasoner-flipped", trainer("grpo", "--reasoner", "{c.tmp}/crafted/flip"), "does not match the SHA-256",
         out=out_fresh),
    Case("grpo-reasoner-custom-code", trainer("grpo", "--reasoner", "{c.tmp}/crafted/evil"),
         "transformers does not ship", out=out_fresh),
    # ---- trainers: --resume
    Case("resume-changed-learning-rate", lambda c: trainer("sft", "--resume", "--learning_rate", "0.5",
                                                           "--output_dir", str(c.killed_run("lr")))(c),
         "would change what the run", unchanged=lambda c: c.tmp / "runs" / "lr" / "config.json"),
    Case("resume-changed-num-latents", lambda c: trainer("sft", "--resume", "--num_latents", "8",
                                                         "--output_dir", str(c.killed_run("nl")))(c),
         "num_latents", unchanged=lambda c: c.tmp / "runs" / "nl" / "config.json"),
    Case("resume-truncated-checkpoint", lambda c: trainer("sft", "--resume", "--output_dir", str(
        c.killed_run("trunc", _truncate("trainable.safetensors"))))(c), "unreadable",
         unchanged=lambda c: c.tmp / "runs" / "trunc" / "config.json"),
    Case("resume-garbled-rng", lambda c: trainer("sft", "--resume", "--output_dir", str(
        c.killed_run("rng", _garble("rng.safetensors"))))(c), "unreadable",
         unchanged=lambda c: c.tmp / "runs" / "rng" / "config.json"),
    Case("resume-nothing-there", trainer("sft", "--resume"), "does not exist or is empty", out=out_fresh),
    # ---- lrt-bench
    Case("tiny-build-out-file", cli("tiny", "build", "--quick", "--no-progress", "--out", "{c.tmp}/afile2"),
         "is a file", unchanged=lambda c: _write(c.tmp, "afile2", "keep me")),
    Case("tiny-build-out-nonempty", cli("tiny", "build", "--quick", "--no-progress", "--out", "{c.tmp}/full"),
         "is not a tiny world", unchanged=lambda c: _write(c.tmp / "full", "something.txt", "mine")),
    Case("tiny-build-out-unwritable", cli("tiny", "build", "--quick", "--no-progress", "--out", UNWRITABLE),
         "cannot be written"),
    Case("tiny-build-negative-seed", cli("tiny", "build", "--quick", "--seed", "-1", "--out", "{c.tmp}/w"),
         "argument --seed: must be >= 0", out=lambda c: c.tmp / "w"),
    Case("tiny-build-zero-threads", cli("tiny", "build", "--quick", "--threads", "0", "--out", "{c.tmp}/w0"),
         "argument --threads: must be >= 1", out=lambda c: c.tmp / "w0"),
    Case("demo-out-file", cli("demo", "--quick", "--out", "{c.tmp}/afile3"), "is a file",
         unchanged=lambda c: _write(c.tmp, "afile3", "keep me")),
    Case("redundancy-out-file", cli("redundancy", "--model", "{c.world}", "--task", "lrt_tiny", "--out", "{c.tmp}/afile4"),
         "is a file", unchanged=lambda c: _write(c.tmp, "afile4", "keep me")),
    Case("bench-device-tpu", cli("bench", "--device", "tpu", "--out-dir", "{c.tmp}/bench"), "is not a torch device",
         out=lambda c: c.tmp / "bench"),
    Case("bench-reasoner-custom-code", cli("bench", "--world", "{c.world}", "--reasoner", "{c.tmp}/crafted/evil",
                                           "--problems", "1", "--out-dir", "{c.tmp}/bench_evil"),
         "transformers does not ship", out=lambda c: c.tmp / "bench_evil"),
    Case("bench-reasoner-flipped", cli("bench", "--world", "{c.world}", "--reasoner", "{c.tmp}/crafted/flip",
                                       "--problems", "1", "--out-dir", "{c.tmp}/bench_flip"),
         "does not match the SHA-256", out=lambda c: c.tmp / "bench_flip"),
]


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


@pytest.fixture(scope="module")
def ctx(tiny_world, world_reasoner, tmp_path_factory) -> Ctx:
    tmp = tmp_path_factory.mktemp("bad_input")
    run = tmp / "good_run"
    r = subprocess.run([sys.executable, "-m", "trainers.sft", "--config", str(SFT), *FAST, "--save_steps", "1",
                        "--output_dir", str(run)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "LRT_TINY_DIR": str(tiny_world)}, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    c = Ctx(world=tiny_world, tmp=tmp, reasoner=world_reasoner, run=run)
    for sub in ("crafted", "runs"):
        (tmp / sub).mkdir()
    # the crafted reasoners the trainer rows point at
    c.crafted("trunc", _no_sha, lambda b: b[: len(b) // 2])
    c.crafted("flip", weights=_flip)
    c.crafted("evil", lambda d: d["network"]["backbone_config"].update(model_type="evil",
                                                                      auto_map={"AutoModel": "evilmod.EvilModel"}))
    return c


def test_the_table_covers_at_least_40_cases():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@dataclass
class Outcome:
    rc: int
    stderr: str
    errors: list[str]  # the lines of stderr that say "error"
    left: list[Path]  # files under the output path that must not exist
    changed: bool  # the file that must stay as it was was changed
    seconds: float  # the command's wall time


def _run_case(ctx: Ctx, case: Case) -> Outcome:
    c = dataclasses.replace(ctx, own=ctx.tmp / "rows" / case.id)
    c.own.mkdir(parents=True)
    argv = case.argv(c)  # first: it makes the killed runs whose config.json must stay unchanged
    keep = case.unchanged(c) if case.unchanged else None
    assert keep is None or keep.is_file(), keep
    before = keep.read_bytes() if keep is not None else None
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=ctx.tmp,
                       env={**os.environ, "LRT_TINY_DIR": str(ctx.world), "HF_HUB_OFFLINE": "1", **case.env})
    errors = [ln for ln in r.stderr.splitlines() if "error:" in ln.lower() or ln.startswith("error")]
    out = case.out(c) if case.out is not None else None
    left = sorted(out.rglob("*"))[:5] if out is not None and out.exists() else []
    seconds = time.perf_counter() - t0
    return Outcome(r.returncode, r.stderr, errors, left, before is not None and keep.read_bytes() != before, seconds)


@pytest.fixture(scope="module")
def outcomes(ctx, request) -> dict[str, Outcome]:
    """Every selected row's outcome, two rows at a time (see the module docstring)."""
    chosen = {item.callspec.params["case"].id for item in request.session.items
              if getattr(item, "originalname", "") == "test_bad_input_is_one_line"}
    rows = [case for case in CASES if case.id in chosen]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip([case.id for case in rows], pool.map(lambda case: _run_case(ctx, case), rows)))
    if os.environ.get("LRT_BAD_INPUT_LOG"):  # the table of what each case prints, for the record
        with open(os.environ["LRT_BAD_INPUT_LOG"], "a") as f:
            for cid, o in done.items():
                f.write(json.dumps({"id": cid, "rc": o.rc, "errors": o.errors, "seconds": round(o.seconds, 2)}) + "\n")
    return done


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line(outcomes, case: Case):
    o = outcomes[case.id]
    assert o.rc == case.rc, f"exit {o.rc}; stderr:\n{o.stderr[-3000:]}"
    assert "Traceback" not in o.stderr, o.stderr[-3000:]
    assert len(o.errors) == 1, f"expected one error line, got {len(o.errors)}:\n{o.stderr[-3000:]}"
    assert case.message in o.errors[0], o.errors[0]
    assert not o.left, f"left behind: {o.left}"
    assert not o.changed, "a file that existed before was changed"


def test_resume_on_a_finished_run_does_nothing(ctx):
    run = ctx.tmp / "runs" / "finished"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(ctx.run, run)
    weights = run / "reasoner" / CHECKPOINT_WEIGHTS
    before = (weights.stat().st_mtime_ns, (run / "config.json").read_bytes(), (run / "log.jsonl").read_bytes())
    r = subprocess.run(trainer("sft", "--resume", "--output_dir", str(run))(ctx), capture_output=True, text=True,
                       timeout=600, cwd=ctx.tmp, env={**os.environ, "LRT_TINY_DIR": str(ctx.world)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "is complete" in r.stderr and "Traceback" not in r.stderr
    assert (weights.stat().st_mtime_ns, (run / "config.json").read_bytes(), (run / "log.jsonl").read_bytes()) == before


def test_stale_checkpoint_temps_are_removed_on_resume(ctx):
    run = ctx.killed_run("stale")
    stale = run / ".checkpoint-000002.abcd1234.tmp"
    stale.mkdir()
    (stale / "trainable.safetensors").write_bytes(b"half")
    r = subprocess.run(trainer("sft", "--resume", "--output_dir", str(run))(ctx), capture_output=True, text=True,
                       timeout=600, cwd=ctx.tmp, env={**os.environ, "LRT_TINY_DIR": str(ctx.world)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert not stale.exists() and (run / "reasoner" / CHECKPOINT_WEIGHTS).is_file()
