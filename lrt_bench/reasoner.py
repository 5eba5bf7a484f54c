"""The reasoning network G_φ (DESIGN §4.2) and its checkpoint format.

G_φ reads the frozen base's final-layer hidden states H_X of the prompt (after the final norm) and
emits N latent vectors z in one forward pass:

    concat   : [f_in(H_X); r_1..r_N] -> backbone -> outputs at the N latent positions -> f_out
    hadamard : pool(f_in(H_X)) ⊙ r_i for i=1..N -> backbone -> f_out   (the paper's literal Eq. 5)

z is RMS-normalised per vector to the RMS of the base's input-embedding table (times a learnable gain
that starts at 1), so the frozen base never sees inputs off the scale it was trained on.

The backbone is any HF transformer body (`AutoModel`). Its token-embedding table is dropped: inputs
are projected hidden states, so the table would be dead weight in memory and in checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lrt_bench import __version__
from lrt_bench.errors import LRTError
from lrt_bench.io import atomic_dir

FUSIONS = ("concat", "hadamard")
CHECKPOINT_WEIGHTS = "model.safetensors"
CHECKPOINT_CONFIG = "reasoner_config.json"
CHECKPOINT_FORMAT = "lrt-reasoner"
DEFAULT_BACKBONE = "Qwen/Qwen3-Embedding-0.6B"


@dataclass
class ReasonerConfig:
    """Everything needed to rebuild G_φ. `base_hidden_size` and `latent_rms` come from the base."""

    base_hidden_size: int
    latent_rms: float
    backbone: str = DEFAULT_BACKBONE
    # A full backbone config dict (with "model_type"). When set, the backbone is built from it with
    # random weights (tests, tiny world, real-size benchmarks) and `backbone` is only a label.
    backbone_config: dict[str, Any] | None = None
    backbone_revision: str | None = None
    num_latents: int = 256
    fusion: str = "concat"
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise LRTError(f"unknown fusion {self.fusion!r}: use one of {', '.join(FUSIONS)}")
        if self.num_latents < 1:
            raise LRTError(f"num_latents must be >= 1, got {self.num_latents}")
        if self.base_hidden_size < 1:
            raise LRTError(f"base_hidden_size must be >= 1, got {self.base_hidden_size}")
        if not self.latent_rms > 0:
            raise LRTError(f"latent_rms must be > 0, got {self.latent_rms}")
        if self.backbone_config is not None and "model_type" not in self.backbone_config:
            raise LRTError("backbone_config has no 'model_type': pass a full config dict (config.to_dict())")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReasonerConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise LRTError(f"unknown reasoner config keys {unknown}: this checkpoint needs a newer lrt-bench")
        return cls(**d)


def embedding_rms(base: nn.Module) -> float:
    """RMS of the base's input-embedding table: the scale z must match."""
    w = base.get_input_embeddings().weight.detach()
    return float(w.float().pow(2).mean().sqrt())


def _backbone_config(cfg: ReasonerConfig):
    from transformers import AutoConfig

    if cfg.backbone_config is not None:
        d = dict(cfg.backbone_config)
        try:
            return AutoConfig.for_model(d.pop("model_type"), **d)
        except (ValueError, KeyError, TypeError) as e:
            raise LRTError(f"cannot build the backbone from backbone_config: {e}") from None
    try:
        return AutoConfig.from_pretrained(
            cfg.backbone, revision=cfg.backbone_revision, trust_remote_code=cfg.trust_remote_code
        )
    except Exception as e:  # OSError, ValueError, hub errors: all mean "could not read it"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LRTError(
            f"cannot read the backbone config {cfg.backbone!r} ({first}); pass a hub id, a local "
            "directory with config.json, or backbone_config"
        ) from None


class ReasoningNetwork(nn.Module):
    """G_φ: H_X [B, L, d_base] (+ mask [B, L]) -> z [B, N, d_base]."""

    def __init__(self, config: ReasonerConfig, *, load_backbone_weights: bool = False):
        super().__init__()
        from transformers import AutoModel

        self.config = config
        bb_config = _backbone_config(config)
        if load_backbone_weights and config.backbone_config is None:
            backbone = AutoModel.from_pretrained(
                config.backbone,
                revision=config.backbone_revision,
                trust_remote_code=config.trust_remote_code,
            )
        else:
            backbone = AutoModel.from_config(bb_config, trust_remote_code=config.trust_remote_code)
        # Inputs are projected hidden states: the token table is never used, so drop it (memory, ckpt).
        if hasattr(backbone, "embed_tokens"):
            backbone.embed_tokens = None
        self.backbone = backbone
        # Freeze the resolved config so a checkpoint rebuilds exactly this architecture offline.
        if config.backbone_config is None:
            config.backbone_config = backbone.config.to_dict()
        d_bb = backbone.config.hidden_size
        d_base = config.base_hidden_size
        self.f_in = nn.Linear(d_base, d_bb)
        self.f_out = nn.Linear(d_bb, d_base)
        self.latents = nn.Parameter(torch.randn(config.num_latents, d_bb) * 0.02)  # r_1..r_N
        self.gain = nn.Parameter(torch.ones(d_base))  # learnable scale on top of the fixed RMS target

    @property
    def num_latents(self) -> int:
        return self.config.num_latents

    @classmethod
    def for_base(cls, base: nn.Module, **kwargs: Any) -> ReasoningNetwork:
        """Build a network sized for `base` (hidden size and embedding RMS read off the base)."""
        load = kwargs.pop("load_backbone_weights", False)
        cfg = ReasonerConfig(
            base_hidden_size=base.config.get_text_config().hidden_size,
            latent_rms=embedding_rms(base),
            **kwargs,
        )
        return cls(cfg, load_backbone_weights=load)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """hidden: [B, L, d_base] final-norm hidden states of X; mask: [B, L] (1 = token, left pad ok)."""
        B, L, _ = hidden.shape
        N = self.config.num_latents
        dtype = self.f_in.weight.dtype
        if mask is None:
            mask = torch.ones(B, L, dtype=torch.long, device=hidden.device)
        x = self.f_in(hidden.to(dtype))  # [B, L, d_bb]
        r = self.latents.unsqueeze(0).expand(B, N, -1)  # [B, N, d_bb]
        if self.config.fusion == "concat":
            inp = torch.cat([x, r], dim=1)  # [B, L+N, d_bb]
            m = torch.cat([mask.to(torch.long), mask.new_ones(B, N, dtype=torch.long)], dim=1)  # [B, L+N]
            pos = (m.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens start at position 0
            out = self.backbone(inputs_embeds=inp, attention_mask=m, position_ids=pos).last_hidden_state
            out = out[:, L:]  # [B, N, d_bb]: the latent positions, which have seen all of X
        else:
            # Pool at the last real token (works for left and right padding).
            last = (mask.to(torch.long) * torch.arange(L, device=mask.device)).argmax(-1)  # [B]
            pooled = x[torch.arange(B, device=x.device), last]  # [B, d_bb]
            inp = pooled.unsqueeze(1) * r  # [B, N, d_bb]
            out = self.backbone(inputs_embeds=inp).last_hidden_state  # [B, N, d_bb]
        z = self.f_out(out).float()  # [B, N, d_base]
        # Per-vector RMS normalisation to the base embedding scale, in fp32 for stability.
        z = z * torch.rsqrt(z.pow(2).mean(-1, keepdim=True) + 1e-6) * self.config.latent_rms
        return (z * self.gain.float()).to(hidden.dtype)


# --------------------------------------------------------------------------------------------- ckpt


def _code_version() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


@dataclass
class BaseInfo:
    """What a reasoner was trained for. Loading checks `hidden_size`; id/revision are informative."""

    id: str
    hidden_size: int
    revision: str | None = None


@dataclass
class ReasonerMeta:
    network: ReasonerConfig
    base: BaseInfo
    recipe: dict[str, Any] | None = None
    step: int | None = None
    code_version: str = field(default_factory=_code_version)


def save_reasoner(
    net: ReasoningNetwork,
    path: str | Path,
    *,
    base_id: str,
    base_revision: str | None = None,
    recipe: dict[str, Any] | None = None,
    step: int | None = None,
) -> Path:
    """Write φ (never the base) and its JSON config to `path`, atomically."""
    path = Path(path)
    meta = ReasonerMeta(
        network=net.config,
        base=BaseInfo(id=base_id, hidden_size=net.config.base_hidden_size, revision=base_revision),
        recipe=recipe,
        step=step,
    )
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    doc = {"format": CHECKPOINT_FORMAT, "format_version": 1, **dataclasses.asdict(meta)}
    with atomic_dir(path) as tmp:
        save_file(state, str(tmp / CHECKPOINT_WEIGHTS), metadata={"format": "pt"})
        (tmp / CHECKPOINT_CONFIG).write_text(json.dumps(doc, indent=2) + "\n")
    return path


def read_reasoner_meta(path: str | Path) -> ReasonerMeta:
    path = Path(path)
    cfg_file = path / CHECKPOINT_CONFIG
    if not path.is_dir() or not cfg_file.is_file() or not (path / CHECKPOINT_WEIGHTS).is_file():
        raise LRTError(
            f"no reasoner checkpoint at {str(path)!r}: expected a directory with {CHECKPOINT_WEIGHTS} "
            f"and {CHECKPOINT_CONFIG} (as written by save_reasoner / the trainers)"
        )
    doc = json.loads(cfg_file.read_text())
    if doc.get("format") != CHECKPOINT_FORMAT:
        raise LRTError(f"{cfg_file} is not an lrt-bench reasoner config (format={doc.get('format')!r})")
    return ReasonerMeta(
        network=ReasonerConfig.from_dict(doc["network"]),
        base=BaseInfo(**doc["base"]),
        recipe=doc.get("recipe"),
        step=doc.get("step"),
        code_version=doc.get("code_version", "unknown"),
    )


def check_base_matches(meta: ReasonerMeta, base: nn.Module, where: str = "") -> None:
    """One-line error when the reasoner was trained for a base of another hidden size."""
    got = base.config.get_text_config().hidden_size
    if meta.base.hidden_size != got:
        name = getattr(base.config, "_name_or_path", "") or "the given base"
        raise LRTError(
            f"reasoner {where or ''} was trained for base {meta.base.id!r} with hidden size "
            f"{meta.base.hidden_size}, but {name!r} has hidden size {got}: use a reasoner trained for "
            "this base".replace("  ", " ")
        )


def load_reasoner(
    path: str | Path, base: nn.Module | None = None, *, device: str | torch.device | None = None
) -> tuple[ReasoningNetwork, ReasonerMeta]:
    """Load a reasoner written by `save_reasoner` (safetensors only; no pickle, no hub access)."""
    meta = read_reasoner_meta(path)
    if base is not None:
        check_base_matches(meta, base, where=str(path))
    net = ReasoningNetwork(meta.network)
    state = load_file(str(Path(path) / CHECKPOINT_WEIGHTS), device="cpu")
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise LRTError(
            f"reasoner weights in {path} do not match its config (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}): the checkpoint is damaged or from another version"
        )
    if device is not None:
        net.to(device)
    return net.eval(), meta
