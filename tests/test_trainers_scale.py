"""The trainers at scale, proven on CPU: 2 processes (gloo) compute what 1 does, accumulation is one
update per step, --resume after SIGKILL is exact under 2 processes, and the memory levers work
(fp32 master weights, gradient checkpointing in train mode, chunked log-probs at the sampling
temperature).

Two-process runs go through `accelerate launch` as a user would start them on CPU:
`ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2` (torchrun + gloo; plain
`accelerate launch --cpu --num_processes 2` runs one process unless mpirun is set up, which the
trainers now refuse). "The same computation" means the same global batch, the same rollouts (seeded
by position in the global batch) and a loss normalised over the whole step, so 1 and 2 processes
differ only in the order of floating-point reductions.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_trainers import COMMON, GRPO_RECIPE, SB_RECIPE, SFT_RECIPE, VARIED_REWARDS, _argv, _env, _log, _run

from trainers.checkpoint import list_checkpoints

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# Weights after a few Adam steps: 1 vs 2 processes differ by reduction order only. Measured on this
# machine: max |Δ| ~1e-7 (SFT) to ~1e-6 (GRPO); an update of the wrong size differs by ~lr = 1e-4.
ATOL = 2e-5


@pytest.fixture(scope="module")
def world(tiny_world) -> Path:
    return Path(tiny_world).resolve()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(trainer: str, recipe: Path, world: Path, out: Path, nproc: int, **overrides) -> tuple[subprocess.Popen, Path]:
    """`accelerate launch` of `python -m trainers.<trainer>` on `nproc` CPU processes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}.log"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(nproc),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", f"trainers.{trainer}", "--config", str(recipe),
           *_argv(overrides), "--output_dir", str(out)]
    env = {**_env(world), "ACCELERATE_USE_CPU": "1"}
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    return proc, log


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (torchrun's workers run in sessions of their own)."""
    def children(p: int) -> list[int]:
        out = []
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                out += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
        return out

    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children(p)
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _launch_and_wait(trainer, recipe, world, out, nproc, **overrides) -> Path:
    proc, log = _launch(trainer, recipe, world, out, nproc, **overrides)
    try:
        rc = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            _kill_tree(proc.pid)
    assert rc == 0, f"{trainer} on {nproc} processes exited {rc}:\n{log.read_text()[-4000:]}"
    return out


def _weights(out: Path) -> dict[str, torch.Tensor]:
    if (out / "reasoner").is_dir():
        return load_file(str(out / "reasoner" / "model.safetensors"))
    return load_file(str(out / "model" / "model.safetensors"))


def _max_diff(a: dict, b: dict, keys=None) -> float:
    assert keys is not None or set(a) == set(b)
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in (keys or a))


def _check_one_run(out: Path, steps: int, processes: int) -> dict:
    """One output dir, logs from rank 0 only (each step once), the summary of the run."""
    assert sorted(p.name for p in out.parent.iterdir() if p.is_dir()) == [out.name]
    assert [r["step"] for r in _log(out)] == list(range(steps + 1)), "a step logged twice (more than one rank logs?)"
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["processes"] == processes and summary["optimizer_steps"] == steps
    return summary


def _assert_same_training(one: Path, two: Path, start: dict | None = None) -> float:
    d = _max_diff(_weights(one), _weights(two))
    assert d < ATOL, f"1 vs 2 processes: weights differ by {d:.2e} (> {ATOL})"
    l1 = [r["loss"] for r in _log(one)[1:]]
    l2 = [r["loss"] for r in _log(two)[1:]]
    assert l1 == pytest.approx(l2, rel=1e-4, abs=1e-6), f"losses differ: {l1} vs {l2}"
    if start is not None:  # (a state dict has both names of a tied weight; the saved file has one)
        saved = _weights(one)
        moved = _max_diff(start, saved, keys=list(saved))
        assert moved > 20 * max(d, 1e-6), f"training moved the weights by {moved:.2e}, 1 vs 2 differ by {d:.2e}"
    return d


SFT = {**COMMON, "max_steps": 3, "learning_rate": 1e-3}


@pytest.fixture(scope="module")
def sft_reasoner(world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sft_start") / "run"
    _run("sft", SFT_RECIPE, world, **SFT, per_device_train_batch_size=8, output_dir=str(out))
    return out / "reasoner"


# ============================================================== 1. two processes compute what one does


def test_sft_two_processes_match_one(world, tmp_path):
    one = tmp_path / "one" / "run"
    cap = _run("sft", SFT_RECIPE, world, **SFT, per_device_train_batch_size=8, output_dir=str(one))
    two = _launch_and_wait("sft", SFT_RECIPE, world, tmp_path / "two" / "run", 2, **SFT, per_device_train_batch_size=4)
    _check_one_run(two, 3, processes=2)
    d = _assert_same_training(one, two, start=cap.phi0)
    print(f"SFT: 1 process (batch 8) vs 2 processes (4 each): max |Δw| = {d:.2e}")


def test_grpo_latent_two_processes_match_one(world, sft_reasoner, tmp_path):
    # dapo: each process's micro-batch loss is a share of the whole step's token mean, so splitting
    # the step over processes or accumulation steps changes nothing.
    over = {**COMMON, "max_steps": 3, "learning_rate": 1e-4, "num_generations": 4, "per_device_train_batch_size": 4,
            "generation_batch_size": 4, "loss_type": "dapo", "rewards": VARIED_REWARDS, "reasoner": str(sft_reasoner)}
    one = tmp_path / "one" / "run"
    _run("grpo", GRPO_RECIPE, world, **over, gradient_accumulation_steps=2, output_dir=str(one))
    two = _launch_and_wait("grpo", GRPO_RECIPE, world, tmp_path / "two" / "run", 2, **over)
    _check_one_run(two, 3, processes=2)
    d = _assert_same_training(one, two, start=load_file(str(sft_reasoner / "model.safetensors")))
    print(f"GRPO latent: 1 process (2 accumulation steps) vs 2 processes: max |Δw| = {d:.2e}")


def test_grpo_explicit_two_processes_match_one(world, tmp_path):
    # ShorterBetter's policy (the base trains); grpo loss: the mean over sequences, equal whatever the split
    over = {**COMMON, "max_steps": 2, "learning_rate": 1e-4, "num_generations": 4, "per_device_train_batch_size": 4,
            "generation_batch_size": 4, "loss_type": "grpo"}
    one = tmp_path / "one" / "run"
    cap = _run("grpo", SB_RECIPE, world, **over, gradient_accumulation_steps=2, output_dir=str(one))
    two = _launch_and_wait("grpo", SB_RECIPE, world, tmp_path / "two" / "run", 2, **over)
    _check_one_run(two, 2, processes=2)
    d = _assert_same_training(one, two, start=cap.base0)
    print(f"GRPO explicit: 1 process (2 accumulation steps) vs 2 processes: max |Δw| = {d:.2e}")


# ================================================================ 2. accumulation is accumulation


def test_sft_accumulation_equals_the_big_batch(world, tmp_path):
    a = tmp_path / "acc" / "run"
    cap = _run("sft", SFT_RECIPE, world, **SFT, per_device_train_batch_size=4, gradient_accumulation_steps=2,
               output_dir=str(a))
    b = tmp_path / "big" / "run"
    _run("sft", SFT_RECIPE, world, **SFT, per_device_train_batch_size=8, output_dir=str(b))
    for out in (a, b):
        _check_one_run(out, 3, processes=1)  # exactly one optimizer update per trainer step
    d = _assert_same_training(a, b, start=cap.phi0)
    print(f"SFT: 2 accumulation steps of 4 vs one batch of 8: max |Δw| = {d:.2e}")


def test_grpo_accumulation_equals_the_big_batch(world, sft_reasoner, tmp_path):
    over = {**COMMON, "max_steps": 2, "learning_rate": 1e-4, "num_generations": 4, "generation_batch_size": 4,
            "loss_type": "grpo", "rewards": VARIED_REWARDS, "reasoner": str(sft_reasoner)}
    a = tmp_path / "acc" / "run"
    _run("grpo", GRPO_RECIPE, world, **over, per_device_train_batch_size=4, gradient_accumulation_steps=2,
         output_dir=str(a))
    b = tmp_path / "big" / "run"
    _run("grpo", GRPO_RECIPE, world, **over, per_device_train_batch_size=8, output_dir=str(b))
    for out in (a, b):
        _check_one_run(out, 2, processes=1)
    d = _assert_same_training(a, b, start=load_file(str(sft_reasoner / "model.safetensors")))
    print(f"GRPO latent: 2 accumulation steps of 1 prompt vs one batch of 2: max |Δw| = {d:.2e}")


# ================================================================== 3. resume under two processes


def test_two_process_resume_after_sigkill_is_exact(world, tmp_path):
    over = {**SFT, "per_device_train_batch_size": 4, "max_steps": 20, "save_steps": 2, "learning_rate": 1e-4}
    killed = tmp_path / "killed" / "run"
    proc, log = _launch("sft", SFT_RECIPE, world, killed, 2, **over)
    try:
        deadline = time.monotonic() + 300
        while not list_checkpoints(killed) and proc.poll() is None:
            assert time.monotonic() < deadline, f"no checkpoint after 300 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.01)
        assert proc.poll() is None, f"the run ended before it could be killed:\n{log.read_text()[-3000:]}"
        _kill_tree(proc.pid)  # the launcher and both ranks, as a lost node
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            _kill_tree(proc.pid)
    at = list_checkpoints(killed)[-1][0]
    assert not (killed / "reasoner").exists() and at < 20
    _launch_and_wait("sft", SFT_RECIPE, world, killed, 2, **over, resume=True)
    whole = _launch_and_wait("sft", SFT_RECIPE, world, tmp_path / "whole" / "run", 2, **over)
    wa, wb = _weights(whole), _weights(killed)
    diff = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not diff, f"resumed after step {at} under 2 processes, these tensors differ from the uninterrupted run: {diff}"
    assert [r["step"] for r in _log(killed)] == list(range(21))
    print(f"2 processes: killed with checkpoint-{at:06d} of 20 steps, resumed, bit-identical")


def test_launch_that_sets_up_one_process_is_refused(world, tmp_path):
    """`accelerate launch --multi_gpu` without a GPU (and without ACCELERATE_USE_CPU) starts 2 processes
    that each think they are alone: refused in one line, before anything is written."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "trainers.sft", "--config", str(SFT_RECIPE),
           *_argv({**SFT, "max_steps": 1}), "--output_dir", str(out)]
    env = {k: v for k, v in _env(world).items() if k != "ACCELERATE_USE_CPU"}
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "2 processes were launched but accelerate set up 1" in r.stdout + r.stderr
    assert not out.exists()


# ============================================================================ 4. the memory levers


def _saved_bytes(fn) -> int:
    """Bytes autograd keeps for the backward pass while `fn` runs (activations, mostly)."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    out.sum().backward()
    return total


def _policy(world, recipe, **over):
    from trainers.accelerator import make_accelerator
    from trainers.config import GRPOConfig
    from trainers.grpo import build_policy

    cfg = GRPOConfig.load(recipe, {**COMMON, "output_dir": "unused", "num_generations": 2,
                                   "per_device_train_batch_size": 4, **over})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LRT_TINY_DIR", str(world))
        return build_policy(cfg, make_accelerator(cfg))


def _rollout(policy, world, max_gen_toks=24):
    from lrt_bench.core.generation import DecodeConfig
    from trainers.data import load_rows

    rows, _ = load_rows(str(world / "data" / "train.jsonl"), max_samples=2)
    return policy.rollout([r["problem"] for r in rows], 2, DecodeConfig(mode=policy.mode, max_gen_toks=max_gen_toks,
                                                                        temperature=1.0, seed=0))


def test_explicit_policy_fp32_master_weights_train_mode_and_checkpointing(world):
    # dtype bfloat16 is the compute dtype; the trained weights stay fp32 (bf16 comes from autocast on GPU)
    policy, trainable, lm = _policy(world, SB_RECIPE, dtype="bfloat16")
    assert {p.dtype for p in trainable.parameters()} == {torch.float32}
    assert lm.base.training and all(p.requires_grad for p in trainable.parameters())
    ro = _rollout(policy, world)
    assert lm.base.training, "the rollout (eval mode, KV cache) must give the base back in train mode"

    off = _saved_bytes(lambda: policy.logprobs(ro, trainable)[0])
    policy_gc, trainable_gc, _ = _policy(world, SB_RECIPE, gradient_checkpointing=True)
    on = _saved_bytes(lambda: policy_gc.logprobs(ro, trainable_gc)[0])
    print(f"explicit policy, saved for backward: {off / 2**20:.2f} MiB without checkpointing, {on / 2**20:.2f} with")
    assert on < off / 3, f"gradient checkpointing saved {on} bytes vs {off} without: it did not engage"


def test_reasoner_backbone_checkpointing_engages(world, sft_reasoner):
    policy, net, _ = _policy(world, GRPO_RECIPE, reasoner=str(sft_reasoner))
    assert net.training and {p.dtype for p in net.parameters()} == {torch.float32}
    ro = _rollout(policy, world, max_gen_toks=8)
    assert net.training, "the rollout must give G_φ back in train mode"
    hidden = policy.lm.hidden_states(ro.batch)  # [P, L, d], no grad: the frozen base's states of X
    off = _saved_bytes(lambda: net(hidden, ro.batch.attention_mask))
    policy_gc, net_gc, _ = _policy(world, GRPO_RECIPE, reasoner=str(sft_reasoner), gradient_checkpointing=True)
    on = _saved_bytes(lambda: net_gc(hidden, ro.batch.attention_mask))
    print(f"G_φ backbone, saved for backward: {off / 2**20:.2f} MiB without checkpointing, {on / 2**20:.2f} with")
    assert on < off / 2


def test_head_logprobs_are_the_sampling_distribution_in_chunks():
    """Chunked, recomputed log-probs equal log_softmax(logits / T) — values and gradients."""
    from lrt_bench.core.generation import head_logprobs

    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(8, 50, bias=False)
    hidden = torch.randn(3, 7, 8, generator=g, requires_grad=True)
    ids = torch.randint(0, 50, (3, 7), generator=g)
    for temperature in (1.0, 0.6):
        direct = torch.log_softmax(head(hidden) / temperature, -1).gather(-1, ids[..., None]).squeeze(-1)  # [3, 7]
        (gh_direct, gw_direct) = torch.autograd.grad(direct.sum(), (hidden, head.weight))
        chunked = head_logprobs(hidden, head, ids, temperature, chunk_tokens=4)  # 21 positions in 6 chunks
        (gh, gw) = torch.autograd.grad(chunked.sum(), (hidden, head.weight))
        assert torch.allclose(chunked, direct, atol=1e-6)
        assert torch.allclose(gh, gh_direct, atol=1e-6) and torch.allclose(gw, gw_direct, atol=1e-6)
    with torch.no_grad():  # no graph: nothing is checkpointed
        assert head_logprobs(hidden, head, ids).requires_grad is False
