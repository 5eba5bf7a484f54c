"""Shared fixtures: a byte-level tokenizer, small random bases built from configs, the quick tiny world."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def small_qwen3_config(vocab_size: int, hidden: int = 64, layers: int = 2, **kw):
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
        max_position_embeddings=kw.pop("max_position_embeddings", 512),
        tie_word_embeddings=True,
        **kw,
    )


@pytest.fixture(scope="session")
def tokenizer():
    from lrt_bench.tiny.tokenizer import build_tokenizer

    return build_tokenizer()


def make_base(tokenizer, seed: int = 0, **kw):
    from transformers import Qwen3ForCausalLM

    torch.manual_seed(seed)
    cfg = small_qwen3_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id, **kw)
    model = Qwen3ForCausalLM(cfg).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


@pytest.fixture()
def base(tokenizer):
    return make_base(tokenizer)


def backbone_config(hidden: int = 32, layers: int = 2) -> dict:
    return small_qwen3_config(16, hidden=hidden, layers=layers).to_dict()


def pytest_collection_modifyitems(config, items):
    """`-m "not slow"` is the quick developer run. Tests marked slow run real entry points in
    subprocesses, train, or take more than a few seconds. Without LRT_TEST_TINY_WORLD the `tiny_world`
    fixture builds the quick world first (~2 min on 2 cores: 106 s here), so every test that needs the world
    counts as slow too; point LRT_TEST_TINY_WORLD at a built quick world (`lrt-bench tiny build
    --quick --out DIR`) and the quick run includes them."""
    if os.environ.get("LRT_TEST_TINY_WORLD"):
        return
    for item in items:
        if "tiny_world" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """The quick tiny world, built once per test session (trained base + data + backbone config)."""
    from lrt_bench.tiny.build import build_tiny_world

    if os.environ.get("LRT_TEST_TINY_WORLD"):  # developers: reuse a world you already built
        return Path(os.environ["LRT_TEST_TINY_WORLD"])
    out = tmp_path_factory.mktemp("tiny") / "world"
    build_tiny_world(out, quick=True, seed=0, progress=False)
    return out


DATA_DIR = Path(os.environ.get("LRT_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The offline benchmark copies ($LRT_DATA_DIR, else ../shared/data beside the checkout)."""
    if not (DATA_DIR / "math500" / "test.jsonl").is_file():
        pytest.skip(f"offline benchmark copies not found at {DATA_DIR}: set LRT_DATA_DIR")
    return DATA_DIR


@pytest.fixture(scope="session")
def world_reasoner(tiny_world, tmp_path_factory):
    """An (untrained) reasoner saved for the tiny base: enough to exercise every latent code path."""
    import json

    from transformers import AutoModelForCausalLM

    from lrt_bench.core.reasoner import ReasoningNetwork, save_reasoner

    base = AutoModelForCausalLM.from_pretrained(tiny_world / "base")
    bb = json.loads((tiny_world / "backbone" / "config.json").read_text())
    torch.manual_seed(0)
    net = ReasoningNetwork.for_base(base, backbone_config=bb, num_latents=4)
    path = tmp_path_factory.mktemp("reasoner") / "r"
    save_reasoner(net, path, base_id=str(tiny_world / "base"))
    return path
