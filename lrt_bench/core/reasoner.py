"""The reasoning network G_φ (docs/design.md §4.2) and its checkpoint format.

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
import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from lrt_bench import __version__
from lrt_bench.errors import LRTError
from lrt_bench.io import atomic_dir

log = logging.getLogger(__name__)

FUSIONS = ("concat", "hadamard")
CHECKPOINT_WEIGHTS = "model.safetensors"
CHECKPOINT_CONFIG = "reasoner_config.json"
CHECKPOINT_FORMAT = "lrt-reasoner"
DEFAULT_BACKBONE = "Qwen/Qwen3-Embedding-0.6B"


# Keys of a backbone config that make transformers import code or fetch files: a checkpoint never
# carries them (stripped on save and on load), so loading one runs no code and reaches no network.
_UNTRUSTED_BACKBONE_KEYS = ("auto_map", "_name_or_path", "name_or_path", "trust_remote_code", "custom_pipelines")


def _shipped_model_types() -> frozenset[str]:
    """The `model_type`s whose code ships with transformers (the only ones a checkpoint may name)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return frozenset(CONFIG_MAPPING_NAMES)


def sanitize_backbone_config(d: Any, where: str = "backbone_config") -> dict[str, Any]:
    """A backbone config dict with nothing that could run code: untrusted keys dropped, `model_type`
    checked against transformers' own architectures. Raises a one-line LRTError otherwise."""
    if not isinstance(d, dict):
        raise LRTError(f"{where} must be a config dict (config.to_dict()), got {type(d).__name__}")
    mt = d.get("model_type")
    if not isinstance(mt, str) or not mt:
        raise LRTError(f"{where} has no 'model_type': pass a full config dict (config.to_dict())")
    if mt not in _shipped_model_types():
        raise LRTError(
            f"{where} names model_type {mt!r}, which transformers does not ship: a reasoner's backbone must "
            "be one of transformers' own architectures (checkpoints never load remote code)"
        )
    return {k: v for k, v in d.items() if k not in _UNTRUSTED_BACKBONE_KEYS}


# field -> (accepted types, what to say). bool is excluded from numbers on purpose (True is an int).
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "base_hidden_size": ((int,), "an integer"),
    "latent_rms": ((int, float), "a number"),
    "backbone": ((str,), "a string"),
    "backbone_config": ((dict, type(None)), "a config dict or null"),
    "backbone_revision": ((str, type(None)), "a string or null"),
    "num_latents": ((int,), "an integer"),
    "fusion": ((str,), "a string"),
}


@dataclass
class ReasonerConfig:
    """Everything needed to rebuild G_φ. `base_hidden_size` and `latent_rms` come from the base."""

    base_hidden_size: int
    latent_rms: float
    backbone: str = DEFAULT_BACKBONE
    # A full backbone config dict (with "model_type"). When set, the backbone is built from it with
    # random weights (tests, tiny world, real-size benchmarks) and `backbone` is only a label. Every
    # saved checkpoint has it: loading builds the backbone from it alone, never from `backbone`.
    backbone_config: dict[str, Any] | None = None
    backbone_revision: str | None = None
    num_latents: int = 256
    fusion: str = "concat"

    def __post_init__(self) -> None:
        for name, (types, what) in _FIELD_TYPES.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, types):
                raise LRTError(f"reasoner config: {name} must be {what}, got {v!r}")
        if self.fusion not in FUSIONS:
            raise LRTError(f"unknown fusion {self.fusion!r}: use one of {', '.join(FUSIONS)}")
        if self.num_latents < 1:
            raise LRTError(f"num_latents must be >= 1, got {self.num_latents}")
        if self.base_hidden_size < 1:
            raise LRTError(f"base_hidden_size must be >= 1, got {self.base_hidden_size}")
        if not (self.latent_rms > 0 and math.isfinite(self.latent_rms)):
            raise LRTError(f"latent_rms must be a finite number > 0, got {self.latent_rms}")
        if self.backbone_config is not None:
            self.backbone_config = sanitize_backbone_config(self.backbone_config)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> ReasonerConfig:
        if not isinstance(d, dict):
            raise LRTError(f"reasoner config: 'network' must be a mapping, got {type(d).__name__}")
        d = dict(d)
        # Written by lrt-bench < 0.2. Never honoured: remote code is the user's choice, not a checkpoint's.
        if d.pop("trust_remote_code", False):
            log.warning("ignoring trust_remote_code in a reasoner checkpoint: checkpoints never run remote code")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise LRTError(f"unknown reasoner config keys {unknown}: this checkpoint needs a newer lrt-bench")
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.name not in d and f.default is dataclasses.MISSING)
        if missing:
            raise LRTError(f"reasoner config is missing {', '.join(missing)}: the checkpoint is damaged")
        return cls(**d)


def embedding_rms(base: nn.Module) -> float:
    """RMS of the base's input-embedding table: the scale z must match."""
    w = base.get_input_embeddings().weight.detach()
    return float(w.float().pow(2).mean().sqrt())


def _backbone_config(cfg: ReasonerConfig, trust_remote_code: bool = False):
    from transformers import AutoConfig

    if cfg.backbone_config is not None:
        d = sanitize_backbone_config(cfg.backbone_config)
        try:
            return AutoConfig.for_model(d.pop("model_type"), **d)
        except (ValueError, KeyError, TypeError) as e:
            raise LRTError(f"cannot build the backbone from backbone_config: {e}") from None
    try:
        return AutoConfig.from_pretrained(cfg.backbone, revision=cfg.backbone_revision, trust_remote_code=trust_remote_code)
    except Exception as e:  # OSError, ValueError, hub errors: all mean "could not read it"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LRTError(
            f"cannot read the backbone config {cfg.backbone!r} ({first}); pass a hub id, a local "
            "directory with config.json, or backbone_config"
        ) from None


class ReasoningNetwork(nn.Module):
    """G_φ: H_X [B, L, d_base] (+ mask [B, L]) -> z [B, N, d_base]."""

    def __init__(
        self, config: ReasonerConfig, *, load_backbone_weights: bool = False, trust_remote_code: bool = False
    ):
        """`trust_remote_code` (the user's choice, never a checkpoint's) applies only to a new network
        whose backbone is read from a hub id / directory; with `backbone_config` nothing is fetched."""
        super().__init__()
        from transformers import AutoModel

        self.config = config
        bb_config = _backbone_config(config, trust_remote_code)
        if config.backbone_config is None:
            # Read from a hub id / directory: it must still be an architecture transformers ships, so
            # that the checkpoint we write rebuilds offline without code.
            sanitize_backbone_config(bb_config.to_dict(), where=f"backbone {config.backbone!r}")
        if load_backbone_weights and config.backbone_config is None:
            backbone = AutoModel.from_pretrained(
                config.backbone, revision=config.backbone_revision, trust_remote_code=trust_remote_code,
                use_safetensors=True,
            )
        else:
            backbone = AutoModel.from_config(bb_config, trust_remote_code=False)
        # Inputs are projected hidden states: the token table is never used, so drop it (memory, ckpt).
        if hasattr(backbone, "embed_tokens"):
            backbone.embed_tokens = None
        self.backbone = backbone
        # Freeze the resolved config so a checkpoint rebuilds exactly this architecture offline.
        if config.backbone_config is None:
            config.backbone_config = sanitize_backbone_config(backbone.config.to_dict())
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
        trust = kwargs.pop("trust_remote_code", False)
        cfg = ReasonerConfig(
            base_hidden_size=base.config.get_text_config().hidden_size,
            latent_rms=embedding_rms(base),
            **kwargs,
        )
        return cls(cfg, load_backbone_weights=load, trust_remote_code=trust)

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
    from lrt_bench.provenance import git_commit

    sha = git_commit()
    return f"{__version__}+{sha[:12]}{'+dirty' if sha.endswith('+dirty') else ''}" if sha else __version__


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
    weights_sha256: str | None = None  # as recorded in the config (None: written before it was recorded)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_reasoner(
    net: ReasoningNetwork,
    path: str | Path,
    *,
    base_id: str,
    base_revision: str | None = None,
    recipe: dict[str, Any] | None = None,
    step: int | None = None,
) -> Path:
    """Write φ (never the base) and its JSON config to `path`, atomically.

    The config records the SHA-256 of the weights file, which `load_reasoner` verifies.
    """
    path = Path(path)
    meta = ReasonerMeta(
        network=net.config,
        base=BaseInfo(id=base_id, hidden_size=net.config.base_hidden_size, revision=base_revision),
        recipe=recipe,
        step=step,
    )
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    with atomic_dir(path) as tmp:
        save_file(state, str(tmp / CHECKPOINT_WEIGHTS), metadata={"format": "pt"})
        meta.weights_sha256 = sha256_file(tmp / CHECKPOINT_WEIGHTS)
        doc = {"format": CHECKPOINT_FORMAT, "format_version": 2, **dataclasses.asdict(meta)}
        (tmp / CHECKPOINT_CONFIG).write_text(json.dumps(doc, indent=2) + "\n")
    return path


def _read_config_doc(path: Path) -> dict[str, Any]:
    cfg_file = path / CHECKPOINT_CONFIG
    if not path.is_dir() or not cfg_file.is_file() or not (path / CHECKPOINT_WEIGHTS).is_file():
        raise LRTError(
            f"no reasoner checkpoint at {str(path)!r}: expected a directory with {CHECKPOINT_WEIGHTS} "
            f"and {CHECKPOINT_CONFIG} (as written by save_reasoner / the trainers)"
        )
    try:
        doc = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise LRTError(f"{cfg_file} is not valid JSON ({str(e).splitlines()[0]}): the checkpoint is damaged; "
                       "re-save it or retrain") from None
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise LRTError(f"{cfg_file} is not an lrt-bench reasoner config (format={got!r})")
    for key in ("network", "base"):
        if not isinstance(doc.get(key), dict):
            raise LRTError(f"{cfg_file} has no '{key}' mapping: the checkpoint is damaged; re-save it or retrain")
    return doc


def read_reasoner_meta(path: str | Path) -> ReasonerMeta:
    """The checkpoint's config, validated (types, keys, backbone). Reads no weights, runs no code."""
    path = Path(path)
    doc = _read_config_doc(path)
    where = path / CHECKPOINT_CONFIG
    try:
        network = ReasonerConfig.from_dict(doc["network"])
        if network.backbone_config is None:
            raise LRTError("network.backbone_config is null, so the backbone could only be fetched from "
                           f"{network.backbone!r}: a checkpoint must carry its backbone config; re-save it")
        base = doc["base"]
        if set(base) - {"id", "hidden_size", "revision"} or not isinstance(base.get("id"), str) \
                or isinstance(base.get("hidden_size"), bool) or not isinstance(base.get("hidden_size"), int):
            raise LRTError(f"'base' must be {{id: str, hidden_size: int, revision: str|null}}, got {base!r}")
        if base["hidden_size"] != network.base_hidden_size:
            raise LRTError(f"base.hidden_size {base['hidden_size']} disagrees with network.base_hidden_size "
                           f"{network.base_hidden_size}: the checkpoint is damaged")
        step = doc.get("step")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise LRTError(f"'step' must be an integer or null, got {step!r}")
    except LRTError as e:
        raise LRTError(f"bad reasoner checkpoint {where}: {e}") from None
    return ReasonerMeta(
        network=network,
        base=BaseInfo(**base),
        recipe=doc.get("recipe") if isinstance(doc.get("recipe"), dict) else None,
        step=step,
        code_version=str(doc.get("code_version", "unknown")),
        weights_sha256=doc.get("weights_sha256"),
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


def _unreadable(e: Exception, what: str, path: str | Path, hint: str) -> LRTError:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return LRTError(f"{what} {path} is unreadable ({first}): {hint}")


_SAFETENSORS_ERRORS = (SafetensorError, OSError, ValueError, RuntimeError)


def load_safetensors(path: str | Path, what: str = "weights file", hint: str = "it is truncated or damaged"
                     ) -> dict[str, torch.Tensor]:
    """safetensors -> tensors, with a truncated or garbled file as a one-line LRTError."""
    try:
        return load_file(str(path), device="cpu")
    except _SAFETENSORS_ERRORS as e:
        raise _unreadable(e, what, path, hint) from None


def check_finite(tensors: dict[str, torch.Tensor], where: str) -> None:
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise LRTError(f"{where} has non-finite values (NaN/inf) in {bad[:3]}: the weights are damaged; retrain "
                       "or restore them")


def _check_sha(meta: ReasonerMeta, weights: Path, data: bytes | None = None) -> None:
    """The weights against the SHA-256 the config recorded (of `data` when the bytes are in hand)."""
    if meta.weights_sha256 is None:
        log.warning("%s records no weights_sha256 (written by an older lrt-bench): weights not verified", weights)
        return
    got = hashlib.sha256(data).hexdigest() if data is not None else sha256_file(weights)
    if got != meta.weights_sha256:
        raise LRTError(
            f"{weights} does not match the SHA-256 recorded in {CHECKPOINT_CONFIG} (got {got[:12]}..., "
            f"expected {str(meta.weights_sha256)[:12]}...): the file is damaged or was replaced; restore it or retrain"
        )


def verify_reasoner(path: str | Path) -> ReasonerMeta:
    """Check a checkpoint without building it: its config, the weights' SHA-256 (when recorded) and
    the safetensors header. Lets a command refuse a damaged reasoner before it creates any output."""
    from safetensors import safe_open

    path = Path(path)
    meta = read_reasoner_meta(path)
    weights = path / CHECKPOINT_WEIGHTS
    _check_sha(meta, weights)
    try:
        with safe_open(str(weights), framework="pt") as f:
            f.keys()
    except _SAFETENSORS_ERRORS as e:
        raise _unreadable(e, "reasoner weights file", weights, "it is truncated or damaged") from None
    return meta


def load_reasoner(
    path: str | Path, base: nn.Module | None = None, *, device: str | torch.device | None = None
) -> tuple[ReasoningNetwork, ReasonerMeta]:
    """Load a reasoner written by `save_reasoner`.

    Safe by construction: safetensors only (no pickle), the backbone built from the saved config with
    transformers' own classes (no remote code, no hub access), the weights' SHA-256 verified when the
    config records it, and non-finite weights refused.
    """
    from safetensors.torch import load as load_bytes

    path = Path(path)
    meta = read_reasoner_meta(path)
    if base is not None:
        check_base_matches(meta, base, where=str(path))
    weights = path / CHECKPOINT_WEIGHTS
    data = weights.read_bytes()  # read once: hashed, then parsed
    _check_sha(meta, weights, data)
    try:
        state = load_bytes(data)
    except _SAFETENSORS_ERRORS as e:
        raise _unreadable(e, "reasoner weights file", weights, "it is truncated or damaged") from None
    del data
    check_finite(state, f"reasoner {weights}")
    net = ReasoningNetwork(meta.network)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatch, e.g. num_latents disagrees with the latents tensor
        first = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e).splitlines()[0])
        raise LRTError(f"reasoner weights in {path} do not match its config ({first}): the checkpoint is "
                       "damaged or its config was edited") from None
    if missing or unexpected:
        raise LRTError(
            f"reasoner weights in {path} do not match its config (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}): the checkpoint is damaged or from another version"
        )
    if device is not None:
        net.to(device)
    return net.eval(), meta
