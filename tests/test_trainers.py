"""The trainers (trainers/*.py): GRPO core math against hand-computed numbers, φ-only training, the
explicit policy, config errors, exact resume after SIGKILL, and smoke runs of the entry points.

Runs train on the quick tiny world (`tiny_world`; LRT_TEST_TINY_WORLD reuses a built one) with a few
steps, few rows and small batches, so the whole file stays within a CPU CI budget. In-process runs
(`_run`) are preferred; subprocesses (`_spawn`) check the `python -m trainers.*` entry points and
supply a process to SIGKILL in the resume tests.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from lrt_bench.errors import LRTError
from trainers import grpo_core

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "trainers" / "recipes" / "tiny"
SFT_RECIPE = RECIPES / "sft.yaml"
GRPO_RECIPE = RECIPES / "grpo.yaml"
SB_RECIPE = RECIPES / "shorterbetter.yaml"

# Overrides every run shares: few rows (tokenising all 22,400 takes seconds), no eval, no progress bar.
# dataset_where None: all rows, not the tiny recipes' 1-2-step curriculum (the tests need answer variety)
COMMON = {"progress": False, "eval_steps": 0, "warmup_steps": 0, "max_samples": 256, "logging_steps": 1,
          "save_steps": 0, "dataset_where": None}
SFT_SMALL = {**COMMON, "per_device_train_batch_size": 8}
# Not the recipe's gentle lr 5e-5 and 1-2-step curriculum: three steps on all rows at lr 1e-4 must move φ
# far enough that the KL is nonzero in fp32, and give groups whose rewards differ.
GRPO_SMALL = {**COMMON, "per_device_train_batch_size": 8, "num_generations": 4, "learning_rate": 1e-4}
# A few-step SFT reasoner answers every prompt wrong, so `correctness` alone gives all-equal groups,
# zero advantages and no update at all. A length term gives each group a spread (answers of 1 or 2 digits).
VARIED_REWARDS = [{"name": "correctness"}, {"name": "shorterbetter", "params": {"alpha": 1.0, "beta": 0.1}}]

SFT_KEYS = ("loss", "grad_norm", "lr", "tokens_per_s", "seconds")
GRPO_KEYS = ("loss", "reward", "reward_std", "accuracy", "kl", "clip_fraction", "grad_norm", "lr",
             "tokens_per_s", "seconds")


def approx(x, rel=1e-5, abs=1e-6):  # noqa: A002 - pytest's name
    return pytest.approx(x, rel=rel, abs=abs)


# =========================================================================== 1. GRPO core, by hand


def test_group_advantages_by_hand():
    r = torch.tensor([0.0, 1.0, 2.0, 3.0, 5.0, 5.0, 5.0, 5.0])
    # group 1: mean 1.5, population std sqrt((2.25 + 0.25 + 0.25 + 2.25) / 4) = sqrt(1.25)
    std = math.sqrt(1.25)
    want = [-1.5 / (std + 1e-4), -0.5 / (std + 1e-4), 0.5 / (std + 1e-4), 1.5 / (std + 1e-4), 0, 0, 0, 0]
    assert grpo_core.group_advantages(r, 4).tolist() == approx(want)
    # scale off: centred only
    assert grpo_core.group_advantages(r, 4, scale=False).tolist() == approx([-1.5, -0.5, 0.5, 1.5, 0, 0, 0, 0])
    # a 0/1 group: mean 0.5, std 0.5; a custom eps
    got = grpo_core.group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]), 4, eps=0.0)
    s = math.sqrt(3 / 16)  # second group: mean 1/4, deviations (-1/4)^2 x3 + (3/4)^2 -> 12/16 / 4
    assert got.tolist() == approx([1, -1, -1, 1, -0.25 / s, -0.25 / s, -0.25 / s, 0.75 / s])
    # all-equal groups carry no signal: exact zeros, with or without scaling
    for scale in (True, False):
        z = grpo_core.group_advantages(torch.tensor([1.0] * 4 + [0.0] * 4), 4, scale=scale)
        assert torch.equal(z, torch.zeros(8))
    with pytest.raises(ValueError):
        grpo_core.group_advantages(torch.zeros(6), 4)


def test_kl_k3_by_hand():
    logp = torch.tensor([[0.0, -1.0, -1.0, -2.0]])
    ref = torch.tensor([[0.0, -2.0, 0.0, -2.5]])
    # d = ref - logp = [0, -1, 1, -0.5]; k3 = e^d - d - 1
    want = [0.0, math.exp(-1) + 1 - 1, math.exp(1) - 1 - 1, math.exp(-0.5) + 0.5 - 1]
    got = grpo_core.kl_k3(logp, ref)
    assert got.tolist()[0] == approx(want)
    assert (got >= 0).all()


def test_clipped_objective_by_hand():
    eps = 0.2
    ratios = [1.1, 1.5, 0.5, 1.0]  # inside, above 1+eps, below 1-eps, exactly 1
    old = torch.tensor([[-1.0, -2.0, -0.5, -3.0]] * 2)
    logp = old + torch.log(torch.tensor(ratios))
    adv = torch.tensor([1.0, -1.0])  # one per sequence
    loss, clipped = grpo_core.clipped_objective(logp, old, adv, eps)
    # A > 0: -min(r A, clip(r) A):  1.1 -> -1.1 ; 1.5 -> -1.2 (clip binds) ; 0.5 -> -0.5 ; 1.0 -> -1.0
    # A < 0:                         1.1 ->  1.1 ; 1.5 ->  1.5 ; 0.5 -> 0.8 (clip binds) ; 1.0 ->  1.0
    assert loss.tolist()[0] == approx([-1.1, -1.2, -0.5, -1.0])
    assert loss.tolist()[1] == approx([1.1, 1.5, 0.8, 1.0])
    assert clipped.tolist() == [[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]

    # asymmetric upper clip (DAPO): with epsilon_high 0.3, 1.5 clips to 1.3 and 1.25 is inside
    logp2 = old[:1] + torch.log(torch.tensor([[1.25, 1.5, 0.5, 1.0]]))
    loss2, clipped2 = grpo_core.clipped_objective(logp2, old[:1], torch.tensor([2.0]), eps, epsilon_high=0.3)
    assert loss2.tolist()[0] == approx([-2.5, -2.6, -1.0, -2.0])
    assert clipped2.tolist() == [[0.0, 1.0, 0.0, 0.0]]

    # per-token advantages [B, T] (LC-R1's bonus at one token)
    adv_tok = torch.tensor([[1.0, 1.0, -1.0, 3.0]])
    loss3, clipped3 = grpo_core.clipped_objective(logp[:1], old[:1], adv_tok, eps)
    assert loss3.tolist()[0] == approx([-1.1, -1.2, 0.8, -3.0])
    assert clipped3.tolist() == [[0.0, 1.0, 1.0, 0.0]]

    # where the clip binds the token gets no gradient; elsewhere d/dlogp (-r A) = -r A
    lp = logp.clone().requires_grad_(True)
    grpo_core.clipped_objective(lp, old, adv, eps)[0].sum().backward()
    assert lp.grad.tolist()[0] == approx([-1.1, 0.0, -0.5, -1.0])
    assert lp.grad.tolist()[1] == approx([1.1, 1.5, 0.0, 1.0])


def test_grpo_loss_aggregation_and_kl_by_hand():
    # ratio 1 everywhere (logp == old), so the clipped term per token is -A of its row.
    logp = torch.zeros(2, 3)
    old = torch.zeros(2, 3)
    adv = torch.tensor([1.0, -2.0])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    # bnpo: (-1 -1 -1 + 2) / 4 ; grpo: mean(-1, 2); dr_grpo: (-1) / (2 rows x 5); dapo: (-1) / 10 items
    loss_tok, st = grpo_core.grpo_loss(logp, old, adv, mask, epsilon=0.2, loss_type="bnpo")
    assert float(loss_tok) == approx(-0.25)
    assert st == {"clip_fraction": 0.0}
    loss_seq, _ = grpo_core.grpo_loss(logp, old, adv, mask, epsilon=0.2, loss_type="grpo")
    assert float(loss_seq) == approx(0.5)
    loss_dr, _ = grpo_core.grpo_loss(logp, old, adv, mask, epsilon=0.2, loss_type="dr_grpo", max_completion_length=5)
    assert float(loss_dr) == approx(-0.1)
    loss_dapo, _ = grpo_core.grpo_loss(logp, old, adv, mask, epsilon=0.2, loss_type="dapo", num_items=10)
    assert float(loss_dapo) == approx(-0.1)
    # dapo over two micro-batches, each normalised by the step's 4 tokens, sums to the step's bnpo
    halves = [grpo_core.grpo_loss(logp[i : i + 1], old[i : i + 1], adv[i : i + 1], mask[i : i + 1], epsilon=0.2,
                                  loss_type="dapo", num_items=4)[0] for i in (0, 1)]
    assert float(sum(halves)) == approx(-0.25)
    with pytest.raises(ValueError, match="num_items"):
        grpo_core.grpo_loss(logp, old, adv, mask, epsilon=0.2, loss_type="dapo")
    with pytest.raises(ValueError, match="max_completion_length"):
        grpo_core.grpo_loss(logp, old, adv, mask, epsilon=0.2, loss_type="dr_grpo")

    # + β·KL (k3, d = ref - logp); the masked-out positions hold huge values that must not count
    beta = 0.1
    ref = torch.tensor([[0.0, -1.0, 1.0], [math.log(2.0), 7.0, -7.0]])
    k = [[0.0, math.exp(-1.0), math.exp(1.0) - 2.0], [2.0 - math.log(2.0) - 1.0]]
    tok_terms = [-1 + beta * k[0][0], -1 + beta * k[0][1], -1 + beta * k[0][2], 2 + beta * k[1][0]]
    loss, st = grpo_core.grpo_loss(logp, old, adv, mask, epsilon=0.2, beta=beta, ref_logp=ref, loss_type="bnpo")
    assert float(loss) == approx(sum(tok_terms) / 4)
    assert st["kl"] == approx((k[0][0] + k[0][1] + k[0][2] + k[1][0]) / 4)
    assert st["clip_fraction"] == 0.0
    loss, st2 = grpo_core.grpo_loss(logp, old, adv, mask, epsilon=0.2, beta=beta, ref_logp=ref, loss_type="grpo")
    assert float(loss) == approx((sum(tok_terms[:3]) / 3 + tok_terms[3]) / 2)
    assert st2["kl"] == approx(st["kl"])  # the logged KL is always the token mean

    # β = 0 with a reference: the KL is reported but not in the loss
    loss0, st0 = grpo_core.grpo_loss(logp, old, adv, mask, epsilon=0.2, beta=0.0, ref_logp=ref)
    assert float(loss0) == approx(-0.25)
    assert st0["kl"] == approx(st["kl"])
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_core.grpo_loss(logp, old, adv, mask, epsilon=0.2, beta=0.1)

    # clip_fraction counts masked tokens only: row 0 token 1 clipped (ratio 1.5, A > 0), the masked
    # row-1 tokens are clipped too (ratio 0.5, A < 0) but do not count: 1 of 4
    lp = torch.log(torch.tensor([[1.0, 1.5, 1.0], [1.0, 0.5, 0.5]]))
    _, st = grpo_core.grpo_loss(lp, old, adv, mask, epsilon=0.2)
    assert st["clip_fraction"] == approx(0.25)


# ============================================================================ helpers for real runs


@pytest.fixture(scope="session")
def world(tiny_world) -> Path:
    return Path(tiny_world).resolve()


class Capture:
    """What an in-process run started from: the base object (and its weights then), the first G_φ."""

    base = None
    base0: dict[str, torch.Tensor] | None = None
    phi0: dict[str, torch.Tensor] | None = None


def _clone(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _run(trainer: str, recipe: Path, world: Path, **overrides) -> Capture:
    """Run trainers.<trainer>.main in this process, capturing the loaded base and the initial G_φ."""
    from trainers.config import GRPOConfig, SFTConfig

    mod = importlib.import_module(f"trainers.{trainer}")
    cls = SFTConfig if trainer == "sft" else GRPOConfig
    cap = Capture()
    load_base, build_reasoner = mod.load_base, mod.build_reasoner

    def loading(cfg, device, **kw):
        base, tok = load_base(cfg, device, **kw)
        cap.base, cap.base0 = base, _clone(base)
        return base, tok

    def building(cfg, base):
        net = build_reasoner(cfg, base)
        if cap.phi0 is None:  # GRPO builds the KL reference second
            cap.phi0 = _clone(net)
        return net

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LRT_TINY_DIR", str(world))
        mp.setattr(mod, "load_base", loading)
        mp.setattr(mod, "build_reasoner", building)
        try:
            mod.main(cls.load(recipe, overrides))
        finally:
            torch.set_num_threads(threads)  # the recipes' torch_threads is process-wide
    return cap


def _argv(overrides: dict) -> list[str]:
    out = []
    for k, v in overrides.items():
        out += [f"--{k}", json.dumps(v) if isinstance(v, (list, dict, bool)) or v is None else str(v)]
    return out


def _env(world: Path) -> dict[str, str]:
    return {**os.environ, "LRT_TINY_DIR": str(world), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _spawn(trainer: str, recipe: Path, world: Path, log: Path, **overrides) -> subprocess.Popen:
    cmd = [sys.executable, "-m", f"trainers.{trainer}", "--config", str(recipe), *_argv(overrides)]
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, cwd=REPO, env=_env(world), stdout=f, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    assert rc == 0, f"{proc.args} exited {rc}:\n{log.read_text()[-3000:]}"


def _log(out: Path) -> list[dict]:
    return [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines() if ln.strip()]


def _reasoner(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "reasoner" / "model.safetensors"))


def _hidden(world: Path) -> int:
    return json.loads((world / "base" / "config.json").read_text())["hidden_size"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_all_changed(before: dict, after: dict, what: str) -> None:
    assert set(before) == set(after), f"{what}: the saved keys differ from the initial ones"
    same = [k for k in before if torch.equal(before[k], after[k])]
    assert not same, f"{what}: these parameters did not change: {same}"


def _assert_base_untouched(cap: Capture, world: Path) -> None:
    """θ after training: bit-identical to what was loaded and to the file on disk; no gradients."""
    after = cap.base.state_dict()
    assert set(after) == set(cap.base0)
    changed = [k for k in after if not torch.equal(after[k], cap.base0[k])]
    assert not changed, f"base parameters changed: {changed}"
    disk = load_file(str(world / "base" / "model.safetensors"))
    assert all(torch.equal(after[k], v) for k, v in disk.items())
    assert all(not p.requires_grad and p.grad is None for p in cap.base.parameters())


@pytest.fixture(scope="session")
def sft_run(world, tmp_path_factory):
    """A 3-step in-process SFT on the quick world, shared: its reasoner starts the GRPO tests."""
    out = tmp_path_factory.mktemp("sft") / "run"
    digest = _sha256(world / "base" / "model.safetensors")
    cap = _run("sft", SFT_RECIPE, world, **SFT_SMALL, max_steps=3, output_dir=str(out))
    assert _sha256(world / "base" / "model.safetensors") == digest
    return cap, out


# ============================================================================= 2. φ trains, θ frozen


def test_sft_trains_every_phi_param_and_no_base_param(sft_run, world):
    cap, out = sft_run
    _assert_all_changed(cap.phi0, _reasoner(out), "SFT")
    _assert_base_untouched(cap, world)
    meta = json.loads((out / "reasoner" / "reasoner_config.json").read_text())
    assert meta["step"] == 3 and meta["base"]["hidden_size"] == _hidden(world)
    # G_φ was initialised from the base's layers (init_backbone_from_base in the recipe)
    assert torch.equal(cap.phi0["backbone.layers.0.mlp.up_proj.weight"],
                       cap.base0["model.layers.0.mlp.up_proj.weight"])
    steps = [r["step"] for r in _log(out)]
    assert steps == [0, 1, 2, 3]


def test_grpo_latent_trains_every_phi_param_and_no_base_param(sft_run, world, tmp_path):
    _, sft_out = sft_run
    out = tmp_path / "grpo"
    digest = _sha256(world / "base" / "model.safetensors")
    cap = _run("grpo", GRPO_RECIPE, world, **GRPO_SMALL, max_steps=3, reasoner=str(sft_out / "reasoner"),
               rewards=VARIED_REWARDS, output_dir=str(out))
    # it started from the SFT reasoner, and every φ tensor moved away from it
    start = _reasoner(sft_out)
    assert all(torch.equal(cap.phi0[k], v) for k, v in start.items())
    log = _log(out)
    assert any(r.get("reward_std", 0) > 0 for r in log), "no reward spread: the test would prove nothing"
    # the KL reference is the starting (SFT) reasoner: zero before the first update, then positive;
    # one optimisation pass per rollout batch (num_iterations 1) never clips
    assert log[1]["kl"] == approx(0.0) and log[-1]["kl"] > 0
    assert all(r["clip_fraction"] == 0.0 for r in log[1:])
    _assert_all_changed(cap.phi0, _reasoner(out), "GRPO (latent)")
    _assert_base_untouched(cap, world)
    assert _sha256(world / "base" / "model.safetensors") == digest


# ================================================================== 3. explicit policy trains θ


def test_grpo_explicit_trains_the_base_and_saves_a_loadable_model(world, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "sb"
    digest = _sha256(world / "base" / "model.safetensors")
    # save_steps 1: a checkpoint of the base itself (tied embeddings) is written mid-run
    cap = _run("grpo", SB_RECIPE, world, **{**GRPO_SMALL, "save_steps": 1}, max_steps=2, output_dir=str(out))
    assert cap.phi0 is None  # no G_φ in the explicit policy
    assert _sha256(world / "base" / "model.safetensors") == digest  # the file on disk is never written
    assert any(r.get("grad_norm", 0) > 0 for r in _log(out))

    ck = load_file(str(out / "checkpoint-000001" / "trainable.safetensors"))
    assert "base.lm_head.weight" in ck and "base.model.embed_tokens.weight" in ck  # the CompletionScorer's base

    model = AutoModelForCausalLM.from_pretrained(out / "model")
    tok = AutoTokenizer.from_pretrained(out / "model")
    assert tok.eos_token_id == AutoTokenizer.from_pretrained(world / "base").eos_token_id
    trained = model.state_dict()
    original = cap.base0  # the base as loaded, before any step
    assert set(trained) == set(original)
    same = [k for k in original if torch.equal(trained[k], original[k])]
    assert not same, f"explicit GRPO left these base parameters unchanged: {same}"
    # the saved model is the trained in-memory one
    assert all(torch.equal(v, trained[k]) for k, v in cap.base.state_dict().items())
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, model.config.vocab_size) and torch.isfinite(logits).all()


# ============================================================================ 4. config errors


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg, f"not a one-line message: {msg!r}"
    return msg


def test_recipe_key_typo_suggests_the_closest_key(tmp_path):
    from trainers.config import GRPOConfig, SFTConfig

    recipe = tmp_path / "typo.yaml"
    recipe.write_text(SFT_RECIPE.read_text().replace("learning_rate:", "learning_rat:"))
    with pytest.raises(LRTError) as e:
        SFTConfig.load(recipe)
    msg = _one_line(e)
    assert "'learning_rat'" in msg and "did you mean 'learning_rate'" in msg and str(recipe) in msg
    with pytest.raises(LRTError) as e:
        GRPOConfig.load(GRPO_RECIPE, {"num_generation": 4})
    assert "did you mean 'num_generations'" in _one_line(e)


def test_batch_not_divisible_by_num_generations():
    from trainers.config import GRPOConfig

    with pytest.raises(LRTError) as e:
        GRPOConfig.load(GRPO_RECIPE, {"per_device_train_batch_size": 10, "num_generations": 4})
    msg = _one_line(e)
    assert "(10)" in msg and "num_generations (4)" in msg and "e.g. 8" in msg


def test_reward_and_policy_errors():
    from trainers.config import GRPOConfig

    with pytest.raises(LRTError) as e:
        GRPOConfig.load(GRPO_RECIPE, {"rewards": [{"name": "correctnes"}]})
    msg = _one_line(e)
    assert "unknown reward 'correctnes'" in msg and "correctness" in msg and "shorterbetter" in msg

    with pytest.raises(LRTError) as e:
        GRPOConfig.load(SB_RECIPE, {"rewards": [{"name": "lcr1"}]})
    msg = _one_line(e)
    assert "lcr1" in msg and "extractor" in msg

    with pytest.raises(LRTError) as e:
        GRPOConfig.load(SB_RECIPE, {"reasoner": "runs/tiny/sft/reasoner"})
    msg = _one_line(e)
    assert "explicit" in msg and "reasoner" in msg


def test_generation_batch_and_loss_type_errors():
    from trainers.config import GRPOConfig

    for g in (6, 12, 0):  # not a multiple of K = 4; does not divide 8 completions; zero
        with pytest.raises(LRTError) as e:
            GRPOConfig.load(GRPO_RECIPE, {"num_generations": 4, "per_device_train_batch_size": 8,
                                          "generation_batch_size": g})
        msg = _one_line(e)
        assert f"generation_batch_size ({g})" in msg and "num_generations (4)" in msg and "e.g. 4" in msg
    cfg = GRPOConfig.load(GRPO_RECIPE, {"num_generations": 4, "per_device_train_batch_size": 8,
                                        "gradient_accumulation_steps": 3, "generation_batch_size": 12})
    assert cfg.prompts_per_generation == 3 and cfg.prompts_per_step == 2
    with pytest.raises(LRTError) as e:
        GRPOConfig.load(GRPO_RECIPE, {"loss_type": "token"})
    assert "now called 'bnpo'" in _one_line(e)
    with pytest.raises(LRTError) as e:
        GRPOConfig.load(GRPO_RECIPE, {"loss_type": "dpo"})
    assert "grpo, bnpo, dr_grpo, dapo" in _one_line(e)


def test_deepspeed_config_cannot_override_the_recipe():
    """Under DeepSpeed the recipe fills the micro-batch, accumulation and clipping; a config that sets
    other values is refused (accelerate would take DeepSpeed's accumulation with only a warning)."""
    from types import SimpleNamespace

    from trainers.accelerator import prepare
    from trainers.config import SFTConfig

    cfg = SFTConfig.load(SFT_RECIPE, {"gradient_accumulation_steps": 4, "max_grad_norm": 0.1})
    prepared = []
    ds = {"gradient_accumulation_steps": "auto", "gradient_clipping": "auto"}
    acc = SimpleNamespace(distributed_type=SimpleNamespace(name="DEEPSPEED"),
                          state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(deepspeed_config=ds)),
                          prepare=lambda *objs: prepared.append(objs) or objs)
    prepare(acc, cfg, "model", "optimizer")
    assert ds == {"gradient_accumulation_steps": 4, "gradient_clipping": 0.1,
                  "train_micro_batch_size_per_gpu": cfg.per_device_train_batch_size}
    assert prepared == [("model", "optimizer")]
    ds.update(gradient_accumulation_steps=1)
    with pytest.raises(LRTError) as e:
        prepare(acc, cfg, "model", "optimizer")
    assert "gradient_accumulation_steps: 1, the recipe 4" in _one_line(e)


def test_missing_dataset_file(world, tmp_path):
    missing = tmp_path / "nope" / "train.jsonl"
    with pytest.raises(LRTError) as e:
        _run("sft", SFT_RECIPE, world, **SFT_SMALL, max_steps=1, dataset=str(missing), output_dir=str(tmp_path / "o"))
    msg = _one_line(e)
    assert str(missing) in msg and "not found" in msg


def test_existing_output_dir_needs_resume_or_overwrite(world, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("earlier run")
    with pytest.raises(LRTError) as e:
        _run("sft", SFT_RECIPE, world, **SFT_SMALL, max_steps=1, output_dir=str(out))
    msg = _one_line(e)
    assert str(out) in msg and "--resume" in msg and "--overwrite" in msg
    assert [p.name for p in out.iterdir()] == ["keep.txt"]  # untouched


def test_reference_reasoner_for_another_base(world, tmp_path, tokenizer):
    from conftest import backbone_config, make_base

    from lrt_bench.core.reasoner import ReasoningNetwork, save_reasoner

    other = make_base(tokenizer, hidden=32)
    net = ReasoningNetwork.for_base(other, backbone_config=backbone_config(), num_latents=4)
    save_reasoner(net, tmp_path / "r32", base_id="some/other-base")
    with pytest.raises(LRTError) as e:
        _run("grpo", GRPO_RECIPE, world, **GRPO_SMALL, max_steps=1, reasoner=str(tmp_path / "r32"),
             output_dir=str(tmp_path / "o"))
    msg = _one_line(e)
    assert "'some/other-base'" in msg and "hidden size 32" in msg and f"hidden size {_hidden(world)}" in msg


@pytest.mark.slow
def test_cli_error_is_one_line_and_exit_2(world):
    r = subprocess.run(
        [sys.executable, "-m", "trainers.grpo", "--config", str(GRPO_RECIPE), "--learning_rat", "1"],
        cwd=REPO, env=_env(world), capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("python -m trainers.grpo: error:") and "did you mean 'learning_rate'" in lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""


# ======================================================================== 5. resume after SIGKILL


def _kill_after_first_checkpoint(trainer, recipe, world, out: Path, overrides: dict) -> int | None:
    """Start a run, SIGKILL it once a complete checkpoint exists. -> the latest checkpoint's step, or
    None when the run finished before it could be killed (the caller then makes it longer)."""
    from trainers.checkpoint import list_checkpoints

    log = out.parent / f"{out.name}.log"
    proc = _spawn(trainer, recipe, world, log, **overrides, output_dir=str(out))
    try:
        deadline = time.monotonic() + 300
        while not list_checkpoints(out):
            if proc.poll() is not None:
                break
            assert time.monotonic() < deadline, f"no checkpoint after 300 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if rc == 0:
        return None  # too fast: finished before the kill
    assert rc == -signal.SIGKILL, f"{trainer} exited {rc} before the kill:\n{log.read_text()[-3000:]}"
    return list_checkpoints(out)[-1][0]


def _resume_matches_uninterrupted(trainer, recipe, world, tmp_path, overrides: dict, lengths: tuple[int, ...]):
    """Run B (subprocess) is SIGKILLed after its first checkpoint and resumed in-process; its final
    reasoner must be bit-identical to run A's, which ran uninterrupted in-process."""
    for n in lengths:
        over = {**overrides, "max_steps": n, "save_steps": 2}
        b = tmp_path / f"b{n}"
        at = _kill_after_first_checkpoint(trainer, recipe, world, b, over)
        if at is not None:
            break
    else:
        pytest.fail(f"every {trainer} run finished before it could be killed (max_steps {lengths})")
    assert not (b / "reasoner").exists(), "the killed run had already written its final reasoner"
    assert 2 <= at < n
    _run(trainer, recipe, world, **over, output_dir=str(b), resume=True)
    a = tmp_path / f"a{n}"
    cap = _run(trainer, recipe, world, **over, output_dir=str(a))

    wa, wb = _reasoner(a), _reasoner(b)
    assert set(wa) == set(wb)
    diff = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not diff, f"resumed after step {at} of {n}, these tensors differ from the uninterrupted run: {diff}"
    assert any(not torch.equal(cap.phi0[k], wa[k]) for k in wa), "nothing trained: the comparison is vacuous"
    # the resumed log reads as one run: each step once, in order, losses equal to run A's
    la, lb = _log(a), _log(b)
    assert [r["step"] for r in lb] == list(range(n + 1)) == [r["step"] for r in la]
    assert [r.get("loss") for r in lb[1:]] == [r.get("loss") for r in la[1:]]
    print(f"{trainer}: killed with checkpoint-{at:06d} of {n} steps, resumed, bit-identical to run A")


@pytest.mark.slow
def test_sft_resume_after_sigkill_is_exact(world, tmp_path):
    _resume_matches_uninterrupted("sft", SFT_RECIPE, world, tmp_path, SFT_SMALL, lengths=(30, 120, 480))


@pytest.mark.slow
def test_grpo_resume_after_sigkill_is_exact(sft_run, world, tmp_path):
    _, sft_out = sft_run
    over = {**GRPO_SMALL, "reasoner": str(sft_out / "reasoner"), "rewards": VARIED_REWARDS}
    _resume_matches_uninterrupted("grpo", GRPO_RECIPE, world, tmp_path, over, lengths=(10, 40, 160))


@pytest.mark.slow
def test_resume_log_reads_as_one_run(world, tmp_path):
    """--resume with no checkpoint yet starts over (and so does the log); a log line cut short by the
    kill is dropped rather than crashing the resumed run."""
    out = tmp_path / "r"
    over = {**SFT_SMALL, "max_steps": 3}
    _run("sft", SFT_RECIPE, world, **over, output_dir=str(out))
    first = _reasoner(out)
    shutil.rmtree(out / "reasoner")  # as if killed before any checkpoint (the summary is written last)
    (out / "train_summary.json").unlink()
    with open(out / "log.jsonl", "a") as f:
        f.write('{"step": 4, "lo')
    _run("sft", SFT_RECIPE, world, **over, output_dir=str(out), resume=True)
    assert [r["step"] for r in _log(out)] == [0, 1, 2, 3]
    assert all(torch.equal(first[k], v) for k, v in _reasoner(out).items())

    out2 = tmp_path / "r2"
    over = {**over, "save_steps": 1}
    _run("sft", SFT_RECIPE, world, **over, output_dir=str(out2))
    shutil.rmtree(out2 / "reasoner")
    (out2 / "train_summary.json").unlink()
    with open(out2 / "log.jsonl", "a") as f:
        f.write('{"step": 4, "lo')
    _run("sft", SFT_RECIPE, world, **over, output_dir=str(out2), resume=True)  # from checkpoint 2
    assert [r["step"] for r in _log(out2)] == [0, 1, 2, 3]
    assert all(torch.equal(first[k], v) for k, v in _reasoner(out2).items())


# =========================================================== 6. smoke runs of the entry points


def _check_log(out: Path, keys: tuple[str, ...], steps: int) -> list[dict]:
    log = _log(out)
    assert log[0]["step"] == 0 and log[0]["max_steps"] == steps
    recs = log[1:]
    assert [r["step"] for r in recs] == list(range(1, steps + 1))
    for r in recs:
        missing = [k for k in keys if k not in r]
        assert not missing, f"log line {r} lacks {missing}"
        assert all(isinstance(r[k], (int, float)) and math.isfinite(r[k]) for k in keys), r
        assert r["seconds"] > 0 and r["tokens_per_s"] > 0 and r["lr"] > 0
    assert "eval_accuracy" in recs[-1] and 0 <= recs[-1]["eval_accuracy"] <= 1
    return recs


SMOKE = {"progress": False, "max_steps": 2, "warmup_steps": 0, "max_samples": 256, "logging_steps": 1,
         "eval_steps": 2, "eval_samples": 8}


@pytest.mark.slow
def test_sft_entry_point_smoke(world, tmp_path):
    from lrt_bench.core.reasoner import read_reasoner_meta

    out = tmp_path / "sft"
    log = tmp_path / "sft.log"
    _finish(_spawn("sft", SFT_RECIPE, world, log, **SMOKE, per_device_train_batch_size=8, output_dir=str(out)), log)
    _check_log(out, SFT_KEYS, 2)
    meta = read_reasoner_meta(out / "reasoner")
    assert meta.step == 2 and meta.recipe["trainer"] == "sft" and meta.base.id == str(world / "base")
    summary = json.loads((out / "train_summary.json").read_text())
    # the recipe's rows: the world's SFT data D in the recipe's curriculum, at most max_samples of them
    recipe = yaml.safe_load(SFT_RECIPE.read_text())
    steps = set(recipe["dataset_where"]["steps"])
    d = [json.loads(ln) for ln in (world / "data" / "sft.jsonl").read_text().splitlines()]
    assert summary["trainer"] == "sft" and summary["steps"] == 2
    assert summary["rows"] == min(256, sum(r["steps"] in steps for r in d)) > 0
    recipe = yaml.safe_load(SFT_RECIPE.read_text())
    assert json.loads((out / "config.json").read_text())["num_latents"] == recipe["num_latents"]


@pytest.mark.slow
def test_grpo_entry_point_smoke(sft_run, world, tmp_path):
    _, sft_out = sft_run
    out = tmp_path / "grpo"
    log = tmp_path / "grpo.log"
    proc = _spawn("grpo", GRPO_RECIPE, world, log, **SMOKE, per_device_train_batch_size=8, num_generations=4,
                  reasoner=str(sft_out / "reasoner"), output_dir=str(out))
    _finish(proc, log)
    recs = _check_log(out, GRPO_KEYS, 2)
    assert all(0 <= r["accuracy"] <= 1 and r["reward_std"] >= 0 and 0 <= r["clip_fraction"] <= 1 for r in recs)
    assert all(r["kl"] >= 0 and "reward_correctness" in r for r in recs)
    assert (out / "reasoner" / "model.safetensors").is_file()
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["policy"] == "latent" and summary["steps"] == 2


@pytest.mark.slow
def test_grpo_gpu_script_runs_on_cpu(tmp_path):
    """bench/grpo_gpu.py (the GPU check) runs the trainer's own set-up and step at shrunk depth on CPU."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OUT=str(tmp_path), OMP_NUM_THREADS="1")
    common = ["--layers", "1", "--vocab", "2048", "--device", "cpu", "--completion-tokens", "6", "--steps", "2", "--prompt-words", "8",
              "--num-generations", "2"]
    r = subprocess.run([sys.executable, str(root / "bench" / "grpo_gpu.py"), *common, "--latents", "4",
                        "--prompts", "2", "--generation-batch-size", "2"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads((tmp_path / "grpo_gpu_latent_qwen3-1.7b.json").read_text())
    assert out["complete"] and len(out["runs"]) == 1 and len(out["runs"][0]["steps"]) == 2
    # forced lengths: every completion is exactly --completion-tokens (EOS is ignored)
    assert all(s["completion_tokens"] == 6 and s["grad_norm"] > 0 for s in out["runs"][0]["steps"])
    assert out["runs"][0]["mean_rollout_tokens_per_s_after_first"] > 0

    r = subprocess.run([sys.executable, str(root / "bench" / "grpo_gpu.py"), *common, "--policy", "explicit",
                        "--gradient-checkpointing", "both", "--steps", "1"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads((tmp_path / "grpo_gpu_explicit_r1-distill-qwen-1.5b.json").read_text())
    assert [run["gradient_checkpointing"] for run in out["runs"]] == [False, True]
    # think mode with ignore_eos: 6 reasoning tokens, the forced close, then the 64-token answer
    assert all(run["steps"][0]["completion_tokens"] > 6 + 64 and run["steps"][0]["grad_norm"] > 0
               for run in out["runs"])


def test_lr_schedule_of_the_recipes():
    """`make_scheduler`'s per-step learning rates for the recipes' schedules, set against
    transformers.get_scheduler: equal where transformers defines the same schedule (no warm-up: the GRPO,
    ShorterBetter and LC-R1 recipes), and for the SFT recipes' warm-up + cosine to a floor equal to
    `cosine_warmup_with_min_lr` through the warm-up, one step behind it after (the peak is held for two
    steps), which is why the trainers keep their own schedule: the committed SFT run was trained on it."""
    from types import SimpleNamespace

    from transformers import get_scheduler

    from trainers.optim import make_scheduler

    def lrs(make, steps):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched, out = make(opt), []
        for _ in range(steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    def ours(kind, warm, floor, total):
        cfg = SimpleNamespace(lr_scheduler_type=kind, warmup_steps=warm, min_lr_ratio=floor)
        return lrs(lambda o: make_scheduler(o, cfg, total), total)

    def hf(name, warm, total, **kw):
        return lrs(lambda o: get_scheduler(name, o, num_warmup_steps=warm, num_training_steps=total,
                                           scheduler_specific_kwargs=kw), total)  # fmt: skip

    assert ours("constant", 0, 0.0, 300) == hf("constant", 0, 300) == [1.0] * 300
    assert ours("cosine", 0, 0.0, 200) == pytest.approx(hf("cosine", 0, 200), abs=1e-12)
    assert ours("linear", 0, 0.0, 200) == pytest.approx(hf("linear", 0, 200), abs=1e-12)
    mine, theirs = ours("cosine", 50, 0.05, 500), hf("cosine_warmup_with_min_lr", 50, 500, min_lr_rate=0.05)
    assert mine[:50] == pytest.approx(theirs[:50], abs=1e-12) and mine[49] == mine[50] == 1.0
    assert mine[51:] == pytest.approx(theirs[50:-1], abs=1e-12)
    assert mine[-1] == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 449 / 450)))
