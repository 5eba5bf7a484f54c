"""Typed, validated trainer configs, loaded from a recipe YAML plus `--key value` overrides.

A recipe holds every hyperparameter (docs/design.md §4.7: none live in code). Field names follow TRL where TRL
has one (`learning_rate`, `per_device_train_batch_size`, `num_generations`, `beta`, `epsilon`,
`max_completion_length`, `num_iterations`, ...). Unknown keys are rejected with the closest valid key.

Paths in a recipe may use `tiny:` to mean the tiny world built by `lrt-bench tiny build`
($LRT_TINY_DIR, default ~/.cache/lrt-bench/tiny): `base: tiny:base`, `dataset: tiny:data/train.jsonl`,
`backbone_config: tiny:backbone/config.json`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lrt_bench.errors import LRTError
from trainers.grpo_core import LOSS_TYPES

TINY_PREFIX = "tiny:"


def resolve_path(value: str | None) -> str | None:
    """`tiny:REL` -> the tiny world's folder / REL; anything else unchanged (hub id or path)."""
    if value is None or not value.startswith(TINY_PREFIX):
        return value
    from lrt_bench.eval.data import tiny_dir

    world = tiny_dir()
    if not (world / "world.json").is_file():
        raise LRTError(f"no tiny world at {world} (needed by {value!r}): run `lrt-bench tiny build` first")
    return str(world / value[len(TINY_PREFIX) :])


@dataclass
class TrainConfig:
    """What SFT and GRPO share: the base, G_φ's shape, data, optimisation, logging, checkpoints."""

    # -- the frozen base
    base: str = ""  # hub id, local dir, or tiny:base
    base_revision: str | None = None
    dtype: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16
    trust_remote_code: bool = False
    # -- G_φ (ignored when `reasoner` names a checkpoint, whose own config wins)
    reasoner: str | None = None  # initial checkpoint (SFT: warm start; GRPO: start + KL reference)
    backbone: str = "Qwen/Qwen3-Embedding-0.6B"
    backbone_config: str | None = None  # a config.json to build the backbone from (random init)
    load_backbone_weights: bool = True  # pretrained backbone weights when `backbone` is a hub id / dir
    init_backbone_from_base: bool = False  # copy the base's first decoder layers into the backbone
    num_latents: int = 256
    fusion: str = "concat"
    # -- data
    dataset: str = ""  # tiny:data/train.jsonl, a local .jsonl, or a hub id
    dataset_config: str | None = None
    dataset_split: str = "train"
    problem_field: str = "problem"
    answer_field: str = "answer"
    max_samples: int = 0  # 0 = all rows
    # Keep only rows whose field takes one of the listed values, e.g. {steps: [1, 2]} (a curriculum)
    dataset_where: dict[str, Any] | None = None
    max_prompt_length: int = 1024  # prompts longer than this (tokens) are skipped, with a count
    # -- periodic greedy evaluation during training (0 = off), on held-out rows
    eval_dataset: str | None = None  # e.g. tiny:data/eval.jsonl
    eval_steps: int = 0
    eval_samples: int = 64
    eval_max_gen_toks: int = 64
    # -- optimisation
    seed: int = 0
    max_steps: int = 100
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    lr_scheduler_type: str = "cosine"  # cosine | linear | constant
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0
    bf16: bool | None = None  # None: autocast bf16 on GPU, off on CPU
    gradient_checkpointing: bool = False  # in G_φ's backbone
    torch_threads: int = 0  # CPU only: 0 = torch's default
    # -- output
    output_dir: str = ""
    overwrite: bool = False
    resume: bool = False
    logging_steps: int = 1
    save_steps: int = 0  # 0 = only the final reasoner
    save_total_limit: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not self.base:
            raise LRTError("no base model: set `base:` in the recipe or pass --base <hub id | dir | tiny:base>")
        if not self.dataset:
            raise LRTError("no dataset: set `dataset:` in the recipe or pass --dataset <file.jsonl | hub id>")
        if not self.output_dir:
            raise LRTError("no output directory: set `output_dir:` in the recipe or pass --output_dir DIR")
        from lrt_bench.core.models import resolve_dtype

        resolve_dtype(self.dtype, "cpu")  # refuses an unknown name now, not when the base loads
        if self.fusion not in ("concat", "hadamard"):
            raise LRTError(f"fusion {self.fusion!r} is not one of concat, hadamard")
        if self.lr_scheduler_type not in ("cosine", "linear", "constant"):
            raise LRTError(f"lr_scheduler_type {self.lr_scheduler_type!r} is not one of cosine, linear, constant")
        for name in ("max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "num_latents",
                     "logging_steps"):
            if getattr(self, name) < 1:
                raise LRTError(f"{name} must be >= 1, got {getattr(self, name)}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise LRTError(f"{f.name} must be a finite number, got {v}")
        if self.learning_rate <= 0:
            raise LRTError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise LRTError(f"weight_decay must be >= 0, got {self.weight_decay}")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise LRTError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.max_grad_norm < 0:
            raise LRTError(f"max_grad_norm must be >= 0 (0 = no clipping), got {self.max_grad_norm}")
        if self.max_samples < 0 or self.max_prompt_length < 1 or self.torch_threads < 0 or self.seed < 0:
            raise LRTError("max_samples and torch_threads must be >= 0, seed >= 0, max_prompt_length >= 1")
        if self.dataset_where is not None:
            ok = isinstance(self.dataset_where, dict) and all(isinstance(k, str) for k in self.dataset_where)
            if not ok:
                raise LRTError(
                    f"dataset_where must map a field to the values to keep, e.g. '{{steps: [1, 2]}}', got "
                    f"{self.dataset_where!r}"
                )
        if self.warmup_steps < 0 or self.warmup_steps >= self.max_steps:
            raise LRTError(f"warmup_steps ({self.warmup_steps}) must be in [0, max_steps={self.max_steps})")
        if not 0 <= self.min_lr_ratio <= 1:
            raise LRTError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.eval_steps < 0 or (self.eval_steps and not self.eval_dataset):
            raise LRTError("eval_steps > 0 needs eval_dataset (e.g. tiny:data/eval.jsonl); eval_steps must be >= 0")
        if self.eval_steps and (self.eval_samples < 1 or self.eval_max_gen_toks < 1):
            raise LRTError(f"eval_steps > 0 needs eval_samples >= 1 and eval_max_gen_toks >= 1 (got "
                           f"{self.eval_samples}, {self.eval_max_gen_toks}); set eval_steps: 0 to turn evaluation off")
        if self.save_steps < 0 or self.save_total_limit < 1:
            raise LRTError("save_steps must be >= 0 and save_total_limit >= 1")
        if self.resume and self.overwrite:
            raise LRTError("--resume and --overwrite contradict each other: pick one")

    # Keys a `--resume` may change: they do not alter what is trained (max_steps only to extend).
    RESUMABLE_KEYS = ("resume", "overwrite", "output_dir", "logging_steps", "max_steps", "save_steps",
                      "save_total_limit", "progress", "eval_dataset", "eval_steps", "eval_samples",
                      "eval_max_gen_toks", "torch_threads")

    # ------------------------------------------------------------------------------ loading

    @classmethod
    def load(cls, recipe: str | Path | None, overrides: dict[str, Any] | None = None):
        """Recipe YAML (may be None) + overrides -> a validated config."""
        raw: dict[str, Any] = {}
        if recipe is not None:
            path = Path(recipe)
            if not path.is_file():
                raise LRTError(f"recipe {str(path)!r} not found: pass --config trainers/recipes/<name>.yaml")
            try:
                raw = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as e:
                raise LRTError(f"recipe {path} is not valid YAML: {str(e).splitlines()[0]}") from None
            if not isinstance(raw, dict):
                raise LRTError(f"recipe {path} must be a mapping of key: value")
        raw.update(overrides or {})
        return cls.from_dict(raw, where=str(recipe) if recipe else "overrides")

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "config"):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in raw.items():
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(fields))}"
                raise LRTError(f"unknown key {key!r} in {where}{hint}")
            kwargs[key] = _coerce(key, value, hints[key])
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise LRTError(f"bad {where}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def dump(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Turn YAML / command-line values into the field's type, or say what was expected."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    optional = origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and type(None) in args
    if optional:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        inner = [a for a in args if a is not type(None)]
        hint = inner[0] if len(inner) == 1 else hint
        origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if hint is int:
            if isinstance(value, bool):
                raise ValueError
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if hint is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
        if origin in (list, tuple) or hint in (list, dict) or origin is dict:
            if isinstance(value, str):
                value = yaml.safe_load(value)
            return value
        return value
    except (TypeError, ValueError):
        name = getattr(hint, "__name__", str(hint))
        raise LRTError(f"{key}={value!r} is not a valid {name}") from None


@dataclass
class SFTConfig(TrainConfig):
    """SFT (docs/design.md §4.7): loss = −log P_θ(Y | [X, G_φ(H_X)]) on answer tokens; θ frozen, φ trains."""

    # Where Y comes from: `target_field` names a text field whose part after the last </think> is Y
    # (a reasoning trace, e.g. the tiny world's `target`), or `openr1` takes the first generation of an
    # OpenR1-Math-220k row that math-verify marked correct. Empty: Y = "\\boxed{<answer>}".
    target_field: str = ""
    max_answer_length: int = 512  # answers longer than this (tokens) are skipped, with a count
    num_train_epochs: float = 0.0  # > 0: max_steps is derived from the epochs and the dataset size


@dataclass
class GRPOConfig(TrainConfig):
    """GRPO (docs/design.md §4.7). `per_device_train_batch_size` counts completions (prompts × K), as in TRL."""

    policy: str = "latent"  # latent: train G_φ (LRT) | explicit: train the base itself (baselines)
    num_generations: int = 8  # K samples per prompt
    max_completion_length: int = 512  # the token budget (max_gen_toks) of each rollout
    # Completions generated together (TRL's name): rollouts are sampled in chunks of this many, which
    # bounds the KV cache, then scored and trained on in micro-batches. A multiple of num_generations
    # that divides one step's completions per process (per_device_train_batch_size x
    # gradient_accumulation_steps). None = all of them at once.
    generation_batch_size: int | None = None
    # explicit policy: answer tokens after </think> (natural or forced); None = the budget, as nothink
    # and latent mode get (the rule `lm_eval --model lrt` evaluates with)
    answer_allowance: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off; sampling only (log-probs are of the full distribution at `temperature`, as in TRL)
    beta: float = 2e-3  # KL to the reference (the starting reasoner / base), k3 estimator
    epsilon: float = 0.2  # clip range of the ratio
    epsilon_high: float | None = None  # asymmetric upper clip (DAPO); None = epsilon
    num_iterations: int = 1  # optimisation passes per rollout batch (TRL's μ)
    # TRL's names (trainers/grpo_core.py): grpo (per-sequence mean first) | bnpo (token mean per
    # micro-batch) | dr_grpo (sum / (rows x max_completion_length)) | dapo (token mean over the whole step)
    loss_type: str = "bnpo"
    scale_rewards: bool = True  # divide advantages by the group's reward std
    rewards: list[Any] = field(default_factory=lambda: [{"name": "correctness"}])
    extractor: dict[str, Any] | None = None  # lcr1: {type: rule} or {type: llm, model: <id>}
    # policy: explicit: the label leaderboards show for the trained model (written to
    # OUTPUT/model/lrt_method.json); empty = derived from the rewards (ShorterBetter, LC-R1)
    method: str = ""

    def validate(self) -> None:
        super().validate()
        if self.policy not in ("latent", "explicit"):
            raise LRTError(f"policy {self.policy!r} is not one of latent, explicit")
        if self.policy == "explicit" and self.reasoner:
            raise LRTError(
                "policy: explicit trains the base itself and takes no reasoner: drop --reasoner "
                "(or use policy: latent to train G_φ)"
            )
        if self.policy == "latent" and self.init_backbone_from_base and self.reasoner:
            raise LRTError("init_backbone_from_base applies to a new G_φ only; a --reasoner checkpoint was given")
        if self.num_generations < 2:
            raise LRTError(f"num_generations must be >= 2 (group advantages need a group), got {self.num_generations}")
        if self.per_device_train_batch_size % self.num_generations:
            raise LRTError(
                f"per_device_train_batch_size ({self.per_device_train_batch_size}) counts completions and "
                f"must be a multiple of num_generations ({self.num_generations}): e.g. "
                f"{self.num_generations * max(1, self.per_device_train_batch_size // self.num_generations)}"
            )
        if self.max_completion_length < 1 or (self.answer_allowance is not None and self.answer_allowance < 1):
            raise LRTError("max_completion_length and answer_allowance must be >= 1")
        if self.temperature <= 0:
            raise LRTError(f"GRPO samples its rollouts: temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise LRTError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise LRTError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if self.beta < 0 or not 0 < self.epsilon < 1:
            raise LRTError(f"need beta >= 0 and 0 < epsilon < 1 (got beta={self.beta}, epsilon={self.epsilon})")
        if self.epsilon_high is not None and self.epsilon_high <= 0:
            raise LRTError(f"epsilon_high must be > 0, got {self.epsilon_high}")
        if self.num_iterations < 1:
            raise LRTError(f"num_iterations must be >= 1, got {self.num_iterations}")
        renamed = {"token": "bnpo", "sequence": "grpo"}
        if self.loss_type in renamed:
            raise LRTError(f"loss_type {self.loss_type!r} is now called {renamed[self.loss_type]!r} (TRL's name): "
                           f"set loss_type: {renamed[self.loss_type]}")
        if self.loss_type not in LOSS_TYPES:
            raise LRTError(f"loss_type {self.loss_type!r} is not one of {', '.join(LOSS_TYPES)}")
        per_rank = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if self.generation_batch_size is not None:
            g = self.generation_batch_size
            if g < 1 or g % self.num_generations or per_rank % g:
                raise LRTError(
                    f"generation_batch_size ({g}) must be a multiple of num_generations ({self.num_generations}) "
                    f"that divides the completions each process generates per step ({per_rank} = "
                    f"per_device_train_batch_size x gradient_accumulation_steps), e.g. {self.num_generations}; "
                    "or unset it (all at once)"
                )
        from trainers.rewards import parse_specs

        # Checked once, here (names, weights, each reward's params): the trainer uses these as they are.
        self.rewards = parse_specs(self.rewards)
        if not self.rewards:
            raise LRTError("rewards is empty: list at least one, e.g. rewards: [{name: correctness}]")
        if any(s.name == "lcr1" for s in self.rewards):
            if self.extractor is None:
                raise LRTError(
                    "the lcr1 reward needs an extractor: set extractor: {type: rule} (tiny world) or "
                    "extractor: {type: llm, model: <causal LM id>}"
                )
            if self.policy != "explicit":
                raise LRTError("the lcr1 reward compresses explicit reasoning: use it with policy: explicit")

    @property
    def prompts_per_step(self) -> int:
        """Prompts per micro-batch (per_device_train_batch_size counts completions)."""
        return self.per_device_train_batch_size // self.num_generations

    @property
    def prompts_per_generation(self) -> int:
        """Prompts rolled out together (generation_batch_size; all of a step's by default)."""
        g = self.generation_batch_size or self.per_device_train_batch_size * self.gradient_accumulation_steps
        return g // self.num_generations


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """`--key value` / `--key=value` / bare `--flag` (true) pairs -> a dict (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--") or len(tok) == 2:
            raise LRTError(f"unexpected argument {tok!r}: overrides are --key value")
        key = tok[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value = argv[i + 1]
            i += 2
        else:
            value = "true"
            i += 1
        key = key.replace("-", "_")
        try:
            out[key] = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            out[key] = value
    return out
