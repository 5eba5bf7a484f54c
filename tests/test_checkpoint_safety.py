"""A reasoner checkpoint is data: loading one never runs code, never reaches the network, and never
accepts damaged weights. Each crafted checkpoint either loads without running anything or is refused
with one line; the payload's marker file never appears."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
from conftest import backbone_config

from lrt_bench.core.reasoner import (
    CHECKPOINT_CONFIG,
    CHECKPOINT_WEIGHTS,
    ReasoningNetwork,
    load_reasoner,
    save_reasoner,
)
from lrt_bench.errors import LRTError

PAYLOAD = '''
import pathlib
pathlib.Path({marker!r}).write_text("pwned")
from transformers import Qwen3Config, Qwen3Model
class EvilConfig(Qwen3Config):
    model_type = "evil"
class EvilModel(Qwen3Model):
    config_class = EvilConfig
'''


@pytest.fixture()
def no_network(monkeypatch):
    """Every connection attempt is recorded and refused; the hub client is told it is offline."""
    attempts: list = []

    def refuse(self, address, *a, **kw):
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return attempts


@pytest.fixture()
def payload(tmp_path):
    """A folder whose Python writes a marker file when imported (what remote code would run)."""
    d = tmp_path / "payload"
    d.mkdir()
    marker = tmp_path / "MARKER"
    (d / "evilmod.py").write_text(PAYLOAD.format(marker=str(marker)))
    cfg = dict(backbone_config(), model_type="evil", auto_map={"AutoConfig": "evilmod.EvilConfig",
                                                               "AutoModel": "evilmod.EvilModel"})
    (d / "config.json").write_text(json.dumps(cfg))
    return d, marker


def _saved(base, tmp_path) -> Path:
    net = ReasoningNetwork.for_base(base, backbone_config=backbone_config(), num_latents=3)
    return save_reasoner(net, tmp_path / "ckpt", base_id="tiny")


def _edit(path: Path, fn) -> Path:
    doc = json.loads((path / CHECKPOINT_CONFIG).read_text())
    fn(doc)
    (path / CHECKPOINT_CONFIG).write_text(json.dumps(doc))
    return path


def _one_line_refusal(path, base, match):
    with pytest.raises(LRTError, match=match) as e:
        load_reasoner(path, base)
    assert "\n" not in str(e.value)


def test_local_auto_map_is_never_honoured(base, tmp_path, payload, no_network):
    d, marker = payload

    def craft(doc):
        doc["network"]["backbone_config"].update(
            auto_map={"AutoModel": "evilmod.EvilModel", "AutoConfig": "evilmod.EvilConfig"}, _name_or_path=str(d))
        doc["network"]["trust_remote_code"] = True
        doc["network"]["backbone"] = str(d)

    path = _edit(_saved(base, tmp_path), craft)
    net, meta = load_reasoner(path, base)
    assert type(net.backbone).__name__ == "Qwen3Model"  # transformers' own class, from model_type alone
    assert "auto_map" not in meta.network.backbone_config and "_name_or_path" not in meta.network.backbone_config
    assert not marker.exists() and not no_network
    # and what it loaded is written back clean
    again = save_reasoner(net, tmp_path / "again", base_id="tiny")
    network = json.loads((again / CHECKPOINT_CONFIG).read_text())["network"]
    assert "trust_remote_code" not in network
    assert not {"auto_map", "_name_or_path"} & set(network["backbone_config"])


def test_hub_style_auto_map_reaches_no_hub(base, tmp_path, no_network):
    def craft(doc):
        doc["network"]["backbone_config"]["auto_map"] = {"AutoModel": "someone/evil--evilmod.EvilModel"}

    net, _ = load_reasoner(_edit(_saved(base, tmp_path), craft), base)
    assert type(net.backbone).__name__ == "Qwen3Model" and not no_network


def test_custom_model_type_is_refused(base, tmp_path, payload, no_network):
    d, marker = payload

    def craft(doc):
        doc["network"]["backbone_config"].update(model_type="evil", auto_map={"AutoModel": "evilmod.EvilModel"},
                                                 _name_or_path=str(d))
        doc["network"]["trust_remote_code"] = True

    _one_line_refusal(_edit(_saved(base, tmp_path), craft), base, "transformers does not ship")
    assert not marker.exists() and not no_network


def test_backbone_path_outside_the_folder_is_not_read(base, tmp_path, payload, no_network):
    d, marker = payload

    def craft(doc):
        doc["network"]["backbone"] = str(d)
        doc["network"]["backbone_config"] = None
        doc["network"]["trust_remote_code"] = True

    _one_line_refusal(_edit(_saved(base, tmp_path), craft), base, "must carry its backbone config")
    assert not marker.exists() and not no_network


def test_null_backbone_config_makes_no_connection(base, tmp_path, no_network):
    def craft(doc):
        doc["network"]["backbone"] = "Qwen/Qwen3-Embedding-0.6B"
        doc["network"]["backbone_config"] = None

    _one_line_refusal(_edit(_saved(base, tmp_path), craft), base, "must carry its backbone config")
    assert not no_network


# ------------------------------------------------------------------------------- damaged weights


def test_sha256_is_recorded_and_verified(base, tmp_path):
    path = _saved(base, tmp_path)
    doc = json.loads((path / CHECKPOINT_CONFIG).read_text())
    assert len(doc["weights_sha256"]) == 64
    raw = bytearray((path / CHECKPOINT_WEIGHTS).read_bytes())
    raw[-20:-10] = bytes(10)  # flip bytes inside a tensor: the file still parses
    (path / CHECKPOINT_WEIGHTS).write_bytes(bytes(raw))
    _one_line_refusal(path, base, "does not match the SHA-256")


@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_unreadable_weights_are_one_line(base, tmp_path, damage):
    path = _saved(base, tmp_path)
    raw = (path / CHECKPOINT_WEIGHTS).read_bytes()
    bad = raw[: len(raw) // 2] if damage == "truncated" else bytes(torch.randint(0, 256, (len(raw),)).tolist())
    (path / CHECKPOINT_WEIGHTS).write_bytes(bad)
    _edit(path, lambda doc: doc.pop("weights_sha256"))  # as an older checkpoint: parsing must catch it
    _one_line_refusal(path, base, "unreadable")


def test_non_finite_weights_are_refused(base, tmp_path):
    net = ReasoningNetwork.for_base(base, backbone_config=backbone_config(), num_latents=3)
    with torch.no_grad():
        net.latents[0, 0] = float("nan")
    path = save_reasoner(net, tmp_path / "nan", base_id="tiny")
    _one_line_refusal(path, base, "non-finite")


@pytest.mark.parametrize("craft, match", [
    (lambda d: d["network"].pop("base_hidden_size"), "missing base_hidden_size"),
    (lambda d: d["network"].update(num_latents="16"), "num_latents must be an integer"),
    (lambda d: d.pop("network"), "no 'network' mapping"),
    (lambda d: d["network"].update(colour="red"), "unknown reasoner config keys"),
    (lambda d: d["network"].update(latent_rms="big"), "latent_rms must be a number"),
    (lambda d: d["network"].update(base_hidden_size="64"), "base_hidden_size must be an integer"),
    (lambda d: d["network"].update(num_latents=5), "size mismatch"),
])
def test_malformed_config_is_one_line(base, tmp_path, craft, match):
    _one_line_refusal(_edit(_saved(base, tmp_path), craft), base, match)


def test_invalid_json_is_one_line(base, tmp_path):
    path = _saved(base, tmp_path)
    (path / CHECKPOINT_CONFIG).write_text("{not json")
    _one_line_refusal(path, base, "not valid JSON")


def test_non_finite_logits_stop_generation(base, tokenizer):
    from lrt_bench.core.generation import DecodeConfig, LatentLM

    with torch.no_grad():
        base.model.norm.weight[0] = float("nan")
    lm = LatentLM(base, tokenizer)
    for temperature in (0.0, 1.0):
        with pytest.raises(LRTError, match="non-finite logits") as e:
            lm.generate(["1+1"], DecodeConfig(mode="nothink", max_gen_toks=4, temperature=temperature))
        assert "\n" not in str(e.value)
