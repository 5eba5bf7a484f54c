import pytest
import torch
from conftest import backbone_config

from lrt_bench.core.reasoner import (
    ReasonerConfig,
    ReasoningNetwork,
    embedding_rms,
    load_reasoner,
    save_reasoner,
)
from lrt_bench.errors import LRTError


@pytest.mark.parametrize("fusion", ["concat", "hadamard"])
def test_shapes_and_rms_at_init(base, fusion):
    torch.manual_seed(0)
    net = ReasoningNetwork.for_base(base, backbone_config=backbone_config(), num_latents=6, fusion=fusion)
    h = torch.randn(3, 5, base.config.hidden_size)
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    z = net(h, mask)
    assert z.shape == (3, 6, base.config.hidden_size)
    target = embedding_rms(base)
    assert z.pow(2).mean().sqrt().item() == pytest.approx(target, rel=1e-4)
    # per vector too: each latent sits at the base's embedding scale
    assert torch.allclose(z.pow(2).mean(-1).sqrt(), torch.full((3, 6), target), rtol=1e-3)


def test_embedding_table_not_kept(base):
    net = ReasoningNetwork.for_base(base, backbone_config=backbone_config(), num_latents=4)
    assert net.backbone.embed_tokens is None
    assert not any("embed_tokens" in k for k in net.state_dict())


def test_left_padding_does_not_change_concat_latents(base):
    torch.manual_seed(0)
    net = ReasoningNetwork.for_base(base, backbone_config=backbone_config(), num_latents=4).eval()
    h = torch.randn(1, 4, base.config.hidden_size)
    padded = torch.cat([torch.randn(1, 3, base.config.hidden_size), h], dim=1)
    z1 = net(h, torch.ones(1, 4, dtype=torch.long))
    z2 = net(padded, torch.tensor([[0, 0, 0, 1, 1, 1, 1]]))
    assert torch.allclose(z1, z2, atol=1e-5)


def test_checkpoint_round_trip_bit_exact(base, tmp_path):
    torch.manual_seed(1)
    net = ReasoningNetwork.for_base(base, backbone_config=backbone_config(), num_latents=5, fusion="hadamard")
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    save_reasoner(net, tmp_path / "r", base_id="tiny-base", recipe={"lr": 1e-3}, step=7)
    files = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert files == ["model.safetensors", "reasoner_config.json"]
    net2, meta = load_reasoner(tmp_path / "r", base)
    sd1, sd2 = net.state_dict(), net2.state_dict()
    assert sd1.keys() == sd2.keys()
    for k in sd1:
        assert torch.equal(sd1[k], sd2[k]), k
    assert meta.step == 7 and meta.recipe == {"lr": 1e-3} and meta.base.id == "tiny-base"
    assert meta.network.fusion == "hadamard" and meta.base.hidden_size == base.config.hidden_size
    h = torch.randn(2, 3, base.config.hidden_size)
    assert torch.equal(net.eval()(h), net2(h))
    # no temp directories left beside it
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_hidden_size_mismatch_is_one_line(base, tokenizer, tmp_path):
    from conftest import make_base

    net = ReasoningNetwork.for_base(base, backbone_config=backbone_config(), num_latents=2)
    save_reasoner(net, tmp_path / "r", base_id="base-64")
    other = make_base(tokenizer, hidden=32)
    with pytest.raises(LRTError) as e:
        load_reasoner(tmp_path / "r", other)
    msg = str(e.value)
    assert "\n" not in msg and "64" in msg and "32" in msg


def test_missing_checkpoint(tmp_path):
    with pytest.raises(LRTError, match="no reasoner checkpoint"):
        load_reasoner(tmp_path / "nope")


def test_unreadable_backbone_config(tmp_path):
    with pytest.raises(LRTError, match="cannot read the backbone config") as e:
        ReasoningNetwork(ReasonerConfig(base_hidden_size=8, latent_rms=1.0, backbone=str(tmp_path / "missing")))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "kw, match",
    [({"fusion": "sum"}, "unknown fusion"), ({"num_latents": 0}, "num_latents"), ({"latent_rms": 0.0}, "latent_rms")],
)
def test_config_validation(kw, match):
    args = {"base_hidden_size": 8, "latent_rms": 1.0, **kw}
    with pytest.raises(LRTError, match=match):
        ReasonerConfig(**args)
