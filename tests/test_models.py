"""The one owner of each shared concept: dtype names, base loading and an untrained G_φ (lrt_bench/core/models.py),
JSON-lines reading (lrt_bench/io.py), an Account as a dict (lrt_bench/eval/response.py) and a generation's
reasoning ids (lrt_bench/core/layout.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from lrt_bench.core import layout
from lrt_bench.core.models import load_base, resolve_dtype, untrained_reasoner
from lrt_bench.errors import LRTError
from lrt_bench.eval.response import account_dict
from lrt_bench.io import iter_jsonl, read_jsonl

# ---------------------------------------------------------------------------------------------- dtype


@pytest.mark.parametrize("name, device, expected", [
    ("auto", "cpu", torch.float32), (None, "cpu", torch.float32), ("auto", "cuda", torch.bfloat16),
    ("auto", torch.device("cuda", 1), torch.bfloat16), ("auto", torch.device("cpu"), torch.float32),
    ("bfloat16", "cpu", torch.bfloat16), ("bf16", "cuda", torch.bfloat16), ("float16", "cpu", torch.float16),
    ("fp16", "cpu", torch.float16), ("float32", "cuda", torch.float32), ("fp32", "cpu", torch.float32),
    (torch.float16, "cpu", torch.float16),
])  # fmt: skip
def test_resolve_dtype(name, device, expected):
    assert resolve_dtype(name, device) is expected


def test_unknown_dtype_names_the_setting():
    with pytest.raises(LRTError, match=r"unknown --dtype 'float13': use auto, float32, bfloat16 or float16"):
        resolve_dtype("float13", "cpu", what="--dtype")


# ---------------------------------------------------------------------------------------------- base


def test_load_base_is_frozen_on_the_device_in_the_dtype(tiny_world):
    base, tok = load_base(tiny_world / "base", device="cpu", dtype=torch.bfloat16, use_safetensors=True)
    assert not base.training and not any(p.requires_grad for p in base.parameters())
    assert {p.dtype for p in base.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in base.parameters()} == {"cpu"}
    assert tok.eos_token_id is not None
    as_saved, _ = load_base(tiny_world / "base", device="cpu")  # dtype None: what the checkpoint stores
    assert next(as_saved.parameters()).dtype == getattr(torch, json.loads((tiny_world / "base" / "config.json").read_text())["dtype"])


def test_load_base_failure_is_one_lrt_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LRTError, match=r"cannot load the extractor model '.*empty'.*Pass a hub id or a model directory"):
        load_base(tmp_path / "empty", device="cpu", what="the extractor model")


# ---------------------------------------------------------------------------------------------- G_φ


def test_untrained_reasoner_from_a_config_file_or_dict(tmp_path, base):
    from conftest import backbone_config

    from lrt_bench.core.reasoner import ReasoningNetwork

    bb = json.loads(json.dumps(backbone_config()))  # as a config.json reads back
    (tmp_path / "config.json").write_text(json.dumps(bb))
    torch.manual_seed(3)
    from_file = untrained_reasoner(base, tmp_path / "config.json", num_latents=4)
    torch.manual_seed(3)
    direct = ReasoningNetwork.for_base(base, backbone_config=bb, num_latents=4)  # what the helper stands for
    assert from_file.num_latents == 4 and from_file.config.backbone_config == direct.config.backbone_config
    for (k, a), (_, b) in zip(from_file.state_dict().items(), direct.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(LRTError, match="backbone_config .* not found: pass a config.json"):
        untrained_reasoner(base, tmp_path / "nope.json")


# ---------------------------------------------------------------------------------------------- JSONL


def test_read_jsonl(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"b": "x\u2028y"}\n', encoding="utf-8")  # a blank line; U+2028 inside a string
    assert read_jsonl(path) == [{"a": 1}, {"b": "x\u2028y"}]
    assert [w for w, _ in iter_jsonl(path)] == [f"{path} line 1", f"{path} line 3"]


@pytest.mark.parametrize("text, message", [
    ('{"a": 1}\n{not json\n', "line 2: not valid JSON"),
    ('{"a": 1}\n[1, 2]\n', "line 2: expected a JSON object, got list"),
])  # fmt: skip
def test_read_jsonl_names_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "rows.jsonl"
    path.write_text(text)
    with pytest.raises(LRTError) as e:
        read_jsonl(path)
    assert str(e.value).startswith(f"{path} {message}") and "fix or remove that line" in str(e.value)


def test_read_jsonl_refuses_binary(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(LRTError, match="not UTF-8 text"):
        read_jsonl(path)


# ---------------------------------------------------------------------------------------------- generations


def test_account_dict():
    a = SimpleNamespace(reasoning_tokens=5, forced_tokens=2, answer_tokens=3, latents=0, seconds=0.5, prompt_tokens=9,
                        finish_reason="eos", route="think", first_pass_tokens=4, router_score=-0.2)  # fmt: skip
    assert account_dict(a) == {
        "reasoning_tokens": 5, "forced_tokens": 2, "answer_tokens": 3, "latents": 0, "seconds": 0.5,
        "prompt_tokens": 9, "finish_reason": "eos", "rerouted": 1.0, "first_pass_tokens": 4, "router_score": -0.2,
    }  # fmt: skip
    assert account_dict(SimpleNamespace(**{**vars(a), "route": None}))["rerouted"] == 0.0


def test_split_reasoning():
    close = 99
    # ids = reasoning (a natural </think> counted in reasoning_tokens) + answer
    assert layout.split_reasoning([1, 2, close, 7, 8], 3, close) == ([1, 2], True)
    assert layout.split_reasoning([1, 2, 3, 7], 3, close) == ([1, 2, 3], False)  # cut at the budget, then forced
    assert layout.split_reasoning([7, 8], 0, close) == ([], False)
