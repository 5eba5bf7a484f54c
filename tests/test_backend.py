"""The `lrt` lm-eval backend: registration, parity with `hf`, batch invariance, bad input."""

import json
import os
import subprocess
import sys

import pytest
from conftest import backbone_config

from lrt_bench.core.reasoner import ReasoningNetwork, save_reasoner
from lrt_bench.errors import LRTError


def run_py(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


@pytest.mark.slow
def test_hook_registers_lrt_next_to_builtin_models():
    # A fresh interpreter: the .pth start-up hook is what registers us (lm-eval 0.4 has no plugins).
    r = run_py(
        "from lm_eval.api.registry import get_model; "
        "print(get_model('lrt').__name__, get_model('hf').__name__, get_model('dummy').__name__)"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["LRTLM", "HFLM", "DummyLM"]


@pytest.mark.slow
def test_hook_adds_our_task_folder():
    r = run_py("from lm_eval.tasks import TaskManager; tm = TaskManager(); "
               "print('lrt_tiny' in tm.all_tasks, 'gsm8k' in tm.all_tasks)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True"]


@pytest.mark.slow
def test_hook_can_be_switched_off():
    r = run_py("from lm_eval.tasks import TaskManager; print('lrt_tiny' in TaskManager().all_tasks)",
               LRT_BENCH_NO_LM_EVAL_HOOK="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


@pytest.mark.slow
def test_hook_checks_model_args_before_lm_eval_indexes_its_tasks():
    """A bad model_arg is reported before lm-eval's ~13 s task indexing: with a task that does not
    exist, the error is still ours (lm-eval would otherwise stop at the unknown task first)."""
    r = subprocess.run([sys.executable, "-m", "lm_eval", "--model", "lrt", "--model_args",
                        "pretrained=/nowhere,mode=think,budget=3", "--tasks", "no_such_task_anywhere"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "lrt-bench: error: unknown model_arg(s) budget" in r.stderr, r.stderr[-2000:]
    assert "no_such_task_anywhere" not in r.stderr


def test_hook_checks_the_reasoner_weights_before_lm_eval_indexes_its_tasks(world_reasoner, tmp_path):
    """A damaged reasoner checkpoint (weights that fail their recorded SHA-256) is reported before the
    task indexing too, not after it and the base's loading."""
    import shutil

    from lrt_bench.core.reasoner import CHECKPOINT_WEIGHTS

    bad = tmp_path / "reasoner"
    shutil.copytree(world_reasoner, bad)
    raw = bytearray((bad / CHECKPOINT_WEIGHTS).read_bytes())
    raw[-40:-20] = bytes(20)
    (bad / CHECKPOINT_WEIGHTS).write_bytes(bytes(raw))
    r = subprocess.run([sys.executable, "-m", "lm_eval", "--model", "lrt", "--model_args",
                        f"pretrained=/nowhere,mode=latent,reasoner={bad}", "--tasks", "no_such_task_anywhere"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "does not match the SHA-256" in r.stderr, r.stderr[-2000:]
    assert "no_such_task_anywhere" not in r.stderr


@pytest.mark.parametrize("gen_kwargs, msg", [
    ("max_gen_toks=abc", "max_gen_toks='abc' must be a whole number"),
    ("do_sample=true,temperature=nan", "temperature=nan must be finite"),
    ("max_gen_toks=100000", "exceeds the base's context of"),
], ids=["budget-word", "temperature-nan", "budget-beyond-context"])
def test_hook_checks_gen_kwargs_before_lm_eval_indexes_its_tasks(tiny_world, gen_kwargs, msg):
    """--gen_kwargs values that no model is needed to judge fail before the task indexing too; a budget
    beyond the context is judged from a local base's config.json."""
    r = subprocess.run([sys.executable, "-m", "lm_eval", "--model", "lrt", "--model_args",
                        f"pretrained={tiny_world / 'base'},mode=nothink", "--gen_kwargs", gen_kwargs,
                        "--tasks", "no_such_task_anywhere"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert msg in r.stderr, r.stderr[-2000:]
    assert "no_such_task_anywhere" not in r.stderr


@pytest.mark.parametrize("gen_kwargs, model_args, msg", [
    ({"max_gen_toks": 2.7}, {}, "max_gen_toks=2.7 must be a whole number"),
    ({"top_k": "many"}, {}, "top_k='many' must be a whole number"),
    ({"seed": -1}, {}, "seed must be >= 0"),
    ({"num_beams": 4}, {}, "'num_beams' is not supported"),
    ({"max_gen_toks": 5000}, {"mode": "think"}, "can generate 10000 tokens or more"),
    ({"max_gen_toks": 5000}, {"mode": "think", "answer_allowance": 3200}, "can generate 8200 tokens or more"),
])
def test_check_gen_kwargs_rejects(tiny_world, gen_kwargs, model_args, msg):
    from lrt_bench.eval.backend import LRTLM

    with pytest.raises(LRTError, match=msg.replace("(", r"\(")):
        LRTLM.check_gen_kwargs(gen_kwargs, {"pretrained": str(tiny_world / "base"), **model_args})


@pytest.mark.parametrize("gen_kwargs, model_args", [
    ({"max_gen_toks": 5000}, {"mode": "think", "allowance_in_budget": "true"}),  # at most B tokens: fits 8192
    ({"max_gen_toks": 5000}, {"mode": "nothink"}),
    ({"max_gen_toks": 100000}, {}),  # a hub id: the context is the backend's to check once the model is there
    ({"temperature": 0.6, "top_p": 0.95, "until": ["\n\n"]}, {}),  # no budget given: each task's own applies
])
def test_check_gen_kwargs_accepts(tiny_world, gen_kwargs, model_args):
    from lrt_bench.eval.backend import LRTLM

    pretrained = "Qwen/Qwen3-1.7B" if gen_kwargs.get("max_gen_toks") == 100000 else str(tiny_world / "base")
    LRTLM.check_gen_kwargs(gen_kwargs, {"pretrained": pretrained, **model_args})


def evaluate(model: str, model_args: str, tasks, limit, tiny_world, **kw):
    import lm_eval

    os.environ["LRT_TINY_DIR"] = str(tiny_world)
    return lm_eval.simple_evaluate(
        model=model, model_args=model_args, tasks=tasks, limit=limit, log_samples=True,
        bootstrap_iters=0, **kw,
    )


def per_doc(results, task, metric="pass@1"):
    return {s["doc_id"]: s[metric] for s in results["samples"][task]}


GREEDY = {"do_sample": False, "temperature": 0, "max_gen_toks": 160}


# Parity with lm-eval's stock `hf` backend. The tiny tokenizer's chat template, like Qwen3's, does not
# write `<think>` in the generation prompt, and the lrt backend's think mode appends `<think>\n` itself
# (docs/design.md §4.1). So both backends run with the same flags on the parity task, `lrt_tiny` with the assistant
# turn opened by `<think>\n` (lm-eval's gen_prefix, tasks/lrt_tiny/lrt_tiny_parity.yaml), and hf sees the
# tokens lrt sees (lrt takes a rendered prompt that ends in `<think>\n` as it is):
#   lm_eval --model hf  --model_args pretrained=$LRT_TINY_DIR/base \
#       --tasks lrt_tiny_parity --apply_chat_template \
#       --gen_kwargs do_sample=false,temperature=0,max_gen_toks=160 --batch_size 8 --limit 16 --device cpu
#   lm_eval --model lrt --model_args pretrained=$LRT_TINY_DIR/base,mode=think  (the same flags)


@pytest.mark.slow
def test_think_parity_with_hf(tiny_world):
    """`lrt` in think mode gives `hf`'s per-document results, with the same flags on lrt_tiny_parity."""
    from lrt_bench.eval.evaluate import task_manager

    base = tiny_world / "base"
    same = dict(gen_kwargs=GREEDY, apply_chat_template=True, task_manager=task_manager())
    ours = evaluate("lrt", f"pretrained={base},mode=think,device=cpu,batch_size=8", ["lrt_tiny_parity"], 16,
                    tiny_world, **same)
    ref = evaluate("hf", f"pretrained={base},device=cpu,batch_size=8", ["lrt_tiny_parity"], 16, tiny_world, **same)
    ours_s, ref_s = ours["samples"]["lrt_tiny_parity"], ref["samples"]["lrt_tiny_parity"]
    # the same prompt text reached both backends, and it opens the think block
    assert [s["arguments"] for s in ours_s] == [s["arguments"] for s in ref_s]
    assert all(s["arguments"][0][0].endswith("<|im_start|>assistant\n<think>\n") for s in ours_s)
    # per-document results and responses are equal
    assert per_doc(ours, "lrt_tiny_parity") == per_doc(ref, "lrt_tiny_parity")
    assert {s["doc_id"]: s["resps"] for s in ours_s} == {s["doc_id"]: s["resps"] for s in ref_s}
    # the parity task does not change what lrt generates: plain lrt_tiny, no flags, gives the same responses
    plain = evaluate("lrt", f"pretrained={base},mode=think,device=cpu,batch_size=8", ["lrt_tiny"], 16, tiny_world,
                     gen_kwargs=GREEDY)
    assert [s["resps"] for s in plain["samples"]["lrt_tiny"]] == [s["resps"] for s in ours_s]
    # accounts reach the samples and the results JSON; hf's are NaN (not measured)
    s = ours_s[0]
    assert s["reasoning_tokens"] > 0 and s["latents"] == 0
    assert ours["results"]["lrt_tiny_parity"]["reasoning_tokens,none"] > 0
    assert ours["model_info"]["lrt"]["mode"] == "think" if "model_info" in ours else True


@pytest.mark.slow
def test_latent_batch_size_invariance(tiny_world, world_reasoner):
    args = f"pretrained={tiny_world / 'base'},reasoner={world_reasoner},mode=latent,device=cpu"
    one = evaluate("lrt", args + ",batch_size=1", ["lrt_tiny"], 12, tiny_world, gen_kwargs=GREEDY)
    eight = evaluate("lrt", args + ",batch_size=8", ["lrt_tiny"], 12, tiny_world, gen_kwargs=GREEDY)
    a = [s["resps"] for s in one["samples"]["lrt_tiny"]]
    b = [s["resps"] for s in eight["samples"]["lrt_tiny"]]
    assert a == b
    assert one["samples"]["lrt_tiny"][0]["latents"] == 4


def make_lm(**kw):
    from lrt_bench.eval.backend import LRTLM

    return LRTLM(device="cpu", **kw)


def test_unknown_model_arg(tiny_world):
    with pytest.raises(LRTError, match="unknown model_arg.*budget") as e:
        make_lm(pretrained=str(tiny_world / "base"), budget=5)
    assert "\n" not in str(e.value)


def test_latent_without_reasoner(tiny_world):
    with pytest.raises(LRTError, match="mode=latent needs a reasoner"):
        make_lm(pretrained=str(tiny_world / "base"), mode="latent")


def test_missing_reasoner_path(tiny_world, tmp_path):
    with pytest.raises(LRTError, match="no reasoner checkpoint"):
        make_lm(pretrained=str(tiny_world / "base"), mode="latent", reasoner=str(tmp_path / "missing"))


def test_reasoner_for_another_base(tiny_world, tokenizer, tmp_path):
    from conftest import make_base

    other = make_base(tokenizer, hidden=32)
    net = ReasoningNetwork.for_base(other, backbone_config=backbone_config(), num_latents=2)
    save_reasoner(net, tmp_path / "r", base_id="other-32")
    with pytest.raises(LRTError, match="trained for base 'other-32' with hidden size 32") as e:
        make_lm(pretrained=str(tiny_world / "base"), mode="latent", reasoner=str(tmp_path / "r"))
    assert "\n" not in str(e.value)


def test_loglikelihood_refused_in_latent_mode(tiny_world, world_reasoner):
    from lm_eval.api.instance import Instance

    lm = make_lm(pretrained=str(tiny_world / "base"), mode="latent", reasoner=str(world_reasoner))
    req = Instance("loglikelihood", doc={}, arguments=("Compute 1+1.", " 2"), idx=0)
    with pytest.raises(LRTError, match="cannot run in mode=latent"):
        lm.loglikelihood([req])
    think = make_lm(pretrained=str(tiny_world / "base"), mode="think")
    (ll, greedy), = think.loglikelihood([req])
    assert ll < 0 and isinstance(greedy, bool)


@pytest.mark.slow
def test_chat_template_flag_gives_same_prompts(tiny_world):
    base = tiny_world / "base"
    plain = evaluate("lrt", f"pretrained={base},mode=nothink,device=cpu,batch_size=4", ["lrt_tiny"], 4,
                     tiny_world, gen_kwargs=GREEDY)
    templ = evaluate("lrt", f"pretrained={base},mode=nothink,device=cpu,batch_size=4", ["lrt_tiny"], 4,
                     tiny_world, gen_kwargs=GREEDY, apply_chat_template=True)
    assert [s["resps"] for s in plain["samples"]["lrt_tiny"]] == [s["resps"] for s in templ["samples"]["lrt_tiny"]]


def lm_eval_cli(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lm_eval", *args], capture_output=True, text=True,
                          timeout=900, env={**os.environ, **(env or {})}, cwd=cwd)


@pytest.mark.slow
def test_cli_runs_every_benchmark_and_the_suite(tiny_world, world_reasoner, tmp_path, data_dir):
    """`lm_eval --model lrt` from another directory, no --include_path: all five + the group write results."""
    out = tmp_path / "out"
    r = lm_eval_cli(
        "--model", "lrt",
        "--model_args", f"pretrained={tiny_world / 'base'},reasoner={world_reasoner},mode=latent",
        "--device", "cpu", "--batch_size", "16", "--tasks", "lrt_suite", "--limit", "4", "--gen_kwargs", "max_gen_toks=8",
        "--output_path", str(out), "--log_samples",
        env={"LRT_DATA_DIR": str(data_dir)}, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (results_file,) = list(out.rglob("results_*.json"))
    res = json.loads(results_file.read_text())["results"]
    for task in ("lrt_amc23", "lrt_math500", "lrt_gsm8k", "lrt_lsat_ar", "lrt_gpqa", "lrt_suite"):
        assert "pass@1,none" in res[task], task
    assert res["lrt_math500"]["latents,none"] == 4
    assert len(list(out.rglob("samples_lrt_gpqa_*.jsonl"))) == 1


@pytest.mark.parametrize(
    "model_args, message",
    [
        ("mode=latent,reasoner=/nonexistent/ckpt", "no reasoner checkpoint"),
        ("mode=think,budget=3", "unknown model_arg(s) budget"),
    ],
)
@pytest.mark.slow
def test_cli_bad_input_leaves_no_results(tiny_world, tmp_path, model_args, message):
    out = tmp_path / "out"
    r = lm_eval_cli("--model", "lrt", "--model_args", f"pretrained={tiny_world / 'base'},{model_args}",
                    "--device", "cpu", "--tasks", "lrt_tiny", "--limit", "2", "--output_path", str(out),
                    env={"LRT_TINY_DIR": str(tiny_world)})
    assert r.returncode != 0
    (line,) = [ln for ln in r.stderr.splitlines() if "lrt-bench: error:" in ln]
    assert message in line and "Traceback" not in r.stderr
    assert not out.exists() or not list(out.rglob("*.json"))
