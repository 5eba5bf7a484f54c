"""The `lrt` lm-eval backend: lm-eval's HF backend, generating through `LatentLM`.

    lm_eval --model lrt \\
        --model_args pretrained=Qwen/Qwen3-1.7B,reasoner=ckpt/,mode=latent --tasks lrt_math500

It subclasses `HFLM` and overrides only what it must:
  * `generate_until`: requests go through `LatentLM.generate` in the chosen mode, `max_gen_toks` is the
    token budget, and each output is a `Response` that carries its cost account to the task's
    `process_results` (-> per-sample metrics in the sample logs, means in the results JSON);
  * `loglikelihood*`: inherited in think / nothink; refused in latent mode (z has no text to score);
  * `apply_chat_template`: notes that lm-eval already rendered the prompt, so the backend does not
    wrap it twice. With or without `--apply_chat_template` the base sees the same tokens.
  * `get_model_info`: adds the LRT settings, so results files say which mode and budget produced them.
Everything else (model loading, dtype, device, accelerate data parallelism, batching) is HFLM's.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from typing import Any

import torch
from lm_eval.api.registry import model_registry
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

from lrt_bench.core import layout
from lrt_bench.core.generation import DecodeConfig, Generation, LatentLM, check_engine
from lrt_bench.core.reasoner import load_reasoner, read_reasoner_meta
from lrt_bench.core.sampling import SAMPLING_KEYS, given_sampling, resolve_sampling
from lrt_bench.errors import LRTError, as_bool, as_number
from lrt_bench.eval import router
from lrt_bench.eval.response import Response, account_dict
from lrt_bench.io import METHOD_FILE

log = logging.getLogger(__name__)

LRT_ARGS = ("reasoner", "mode", "nothink_style", "answer_allowance", "allowance_in_budget", "method",
            "router_threshold", "router_score", "cache_implementation", "compile", "sync_every")
MODES = ("think", "nothink", "latent", "hybrid")  # hybrid: latent first, think where the router is unsure

_HFLM_ARGS = tuple(p for p in inspect.signature(HFLM.__init__).parameters if p not in ("self", "kwargs"))


def _as_int(name: str, v: Any, minimum: int = 1) -> int:
    return as_number(name, v, int, minimum)


def _refuse_unsupported(gen_kwargs: dict[str, Any]) -> None:
    for ignored in ("max_length", "num_beams"):
        if ignored in gen_kwargs:
            raise LRTError(f"generation kwarg {ignored!r} is not supported by --model lrt: use max_gen_toks")


def _allowance_args(answer_allowance: Any, allowance_in_budget: Any) -> tuple[int | None, bool]:
    """model_args answer_allowance / allowance_in_budget -> (int or None, bool); bad values raise."""
    allowance = (None if answer_allowance in (None, "", "none", "None")
                 else _as_int("model_arg answer_allowance", answer_allowance))
    return allowance, as_bool("model_arg allowance_in_budget", allowance_in_budget)


def local_context_length(pretrained: Any) -> int | None:
    """max_position_embeddings from the config.json of a local model directory (None: a hub id, or not
    stated). Read as JSON, so it costs no model load and no network."""
    import json
    from pathlib import Path

    if not isinstance(pretrained, str) or not (Path(pretrained) / "config.json").is_file():
        return None
    try:
        cfg = json.loads((Path(pretrained) / "config.json").read_text())
    except (OSError, ValueError):
        return None  # the backend's load reports a damaged config
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    n = text.get("max_position_embeddings")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


class LRTLM(HFLM):
    def __init__(
        self,
        pretrained: str,
        reasoner: str | None = None,
        mode: str = "think",
        nothink_style: str = "prefill",
        answer_allowance: int | None = None,
        allowance_in_budget: bool = False,
        method: str | None = None,
        router_threshold: Any = None,
        router_score: str | None = None,
        cache_implementation: str = "static",
        compile: Any = False,
        sync_every: Any = None,
        **kwargs: Any,
    ) -> None:
        meta, allowance, in_budget = self.check_args(reasoner=reasoner, mode=mode, nothink_style=nothink_style,
                                                     answer_allowance=answer_allowance,
                                                     allowance_in_budget=allowance_in_budget,
                                                     router_threshold=router_threshold, router_score=router_score,
                                                     cache_implementation=cache_implementation, compile=compile,
                                                     sync_every=sync_every, **kwargs)
        engine = self.engine_args(cache_implementation, compile, sync_every)
        if "max_gen_toks" in kwargs:
            kwargs["max_gen_toks"] = _as_int("model_arg max_gen_toks", kwargs["max_gen_toks"])
        super().__init__(pretrained=pretrained, **kwargs)
        self.mode = mode
        self.router_score = router_score or "mean_logprob"
        self.router_threshold = None if router_threshold is None else float(router_threshold)
        self.nothink_style = nothink_style
        self.answer_allowance = allowance
        self.allowance_in_budget = in_budget
        self.reasoner_path = reasoner
        self.reasoner_meta = meta
        self.method = method or self._recorded_method(pretrained, meta)
        net = None
        if reasoner:
            net, _ = load_reasoner(reasoner, self.model, device=self.device)
            net.to(dtype=self.model.dtype)
        self.lrt = LatentLM(self.model, self.tokenizer, net, **engine)
        for m in ("latent", "think") if mode == "hybrid" else (mode,):
            self.lrt.check_mode(m)  # e.g. a tokenizer without </think> in think/latent: say so now
        self._templated = False
        self._used: dict[str, dict] = {}
        # validate the decode settings once, with the defaults a task would use
        self._decode_config({"max_gen_toks": self.max_gen_toks})

    @staticmethod
    def check_args(reasoner: str | None = None, mode: str = "think", nothink_style: str = "prefill",
                   answer_allowance: Any = None, allowance_in_budget: Any = False, pretrained: Any = None,
                   method: Any = None, router_threshold: Any = None, router_score: Any = None,
                   cache_implementation: Any = "static", compile: Any = False, sync_every: Any = None, **kwargs: Any):
        """The model_args checks that need no model: -> (reasoner meta, answer_allowance, allowance_in_budget).

        Run by `__init__` before the base loads, and by the lm-eval start-up hook before lm-eval indexes
        its tasks (~13 s), so a mistyped model_arg fails at once.
        """
        unknown = sorted(set(kwargs) - set(_HFLM_ARGS))
        if unknown:
            raise LRTError(
                f"unknown model_arg(s) {', '.join(unknown)} for --model lrt: use {', '.join(LRT_ARGS)} or an "
                "argument of lm-eval's hf backend (pretrained, revision, dtype, device, batch_size, "
                "trust_remote_code, ...)"
            )
        if mode not in MODES:
            raise LRTError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        layout.check_mode("latent" if mode == "hybrid" else mode, nothink_style)
        if mode in ("latent", "hybrid") and not reasoner:
            raise LRTError(f"mode={mode} needs a reasoner: add reasoner=<checkpoint dir> to --model_args")
        if mode == "hybrid":
            if router_threshold is None:
                raise LRTError("mode=hybrid needs router_threshold=<τ> (answers scoring below it are re-asked in "
                               "think mode; `lrt-bench router-sweep` measures the curve over τ)")
            router.check_threshold(router_threshold, router.check_score(str(router_score or "mean_logprob"), 2))
        elif router_threshold is not None or router_score is not None:
            raise LRTError(f"router_threshold / router_score apply to mode=hybrid only, not mode={mode}")
        LRTLM.engine_args(cache_implementation, compile, sync_every)
        meta = read_reasoner_meta(reasoner) if reasoner else None
        allowance, in_budget = _allowance_args(answer_allowance, allowance_in_budget)
        if "max_gen_toks" in kwargs:
            _as_int("model_arg max_gen_toks", kwargs["max_gen_toks"])
        bs = kwargs.get("batch_size", 1)
        if isinstance(bs, str) and bs.startswith("auto"):
            raise LRTError("batch_size=auto is not supported by --model lrt: pass an integer batch size")
        return meta, allowance, in_budget

    @staticmethod
    def engine_args(cache_implementation: Any, compile: Any, sync_every: Any) -> dict:
        """How the decode loop runs (never what it outputs): model_args -> LatentLM keyword arguments."""
        comp = as_bool("model_arg compile", compile)
        every = None if sync_every in (None, "", "none", "None") else _as_int("model_arg sync_every", sync_every)
        try:
            check_engine(cache_implementation, comp, every)
        except LRTError as e:
            raise LRTError(f"model_arg {e}") from None
        return {"cache_implementation": cache_implementation, "compile": comp, "sync_every": every}

    # ----------------------------------------------------------------------------------------- config

    @staticmethod
    def check_gen_kwargs(gen_kwargs: dict[str, Any], model_args: dict[str, Any]) -> None:
        """The --gen_kwargs checks that need no model (run by the lm-eval start-up hook before lm-eval
        indexes its tasks; `_decode_config` checks every request again with the model): the values'
        types, and a budget that no prompt could fit in the context of a local base's config.json."""
        kw = dict(gen_kwargs)
        # Without max_gen_toks here, each task's own value applies, which only the tasks know.
        budget = _as_int("generation kwarg max_gen_toks", kw.pop("max_gen_toks")) if "max_gen_toks" in kw else None
        given_sampling(kw)
        if kw.get("seed") is not None:
            _as_int("generation kwarg seed", kw["seed"], minimum=0)
        _refuse_unsupported(kw)
        ctx = local_context_length(model_args.get("pretrained"))
        if budget is None or ctx is None:
            return
        mode = str(model_args.get("mode", "think"))
        allowance, in_budget = _allowance_args(model_args.get("answer_allowance"),
                                               model_args.get("allowance_in_budget", False))
        # The most tokens a row may generate, the forced close left out (the tokenizer is not loaded):
        # a prompt of one token with them must fit. Under allowance_in_budget that is the budget itself.
        most = budget if in_budget else DecodeConfig(mode="latent" if mode == "hybrid" else mode, max_gen_toks=budget,
                                                     answer_allowance=allowance).max_new_tokens
        if 1 + most > ctx:
            raise LRTError(
                f"the budget max_gen_toks={budget} in mode={mode} can generate {most} tokens or more, which "
                f"exceeds the base's context of {ctx} with any prompt: lower max_gen_toks (or set "
                "answer_allowance / allowance_in_budget=true in think mode)"
            )

    def _decode_config(self, gen_kwargs: dict[str, Any], until: list[str] | None = None) -> DecodeConfig:
        """A request's gen_kwargs -> the DecodeConfig it runs with (sampling resolved as transformers does)."""
        kw = dict(gen_kwargs)
        budget = _as_int("generation kwarg max_gen_toks", kw.pop("max_gen_toks", self.max_gen_toks))
        sampling = resolve_sampling(self.model, {k: kw.pop(k, None) for k in SAMPLING_KEYS})
        seed = kw.pop("seed", None)
        kw.pop("until", None)
        _refuse_unsupported(kw)
        if kw:
            log.warning("lrt backend ignores generation kwargs %s", sorted(kw))
        cfg = DecodeConfig(
            mode="latent" if self.mode == "hybrid" else self.mode,
            nothink_style=self.nothink_style,
            max_gen_toks=budget,
            answer_allowance=self.answer_allowance,
            allowance_in_budget=self.allowance_in_budget,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            min_p=sampling.min_p,
            seed=None if seed is None else _as_int("generation kwarg seed", seed, minimum=0),
            stop=tuple(until or ()),
            forced_tokens=self.lrt.forced_tokens if hasattr(self, "lrt") else 0,
        )
        self._used[repr(sorted(gen_kwargs.items()))] = {
            "max_gen_toks": budget, "budget_rule": cfg.budget_rule, **sampling.to_dict()}
        return cfg

    def _check_context(self, cfg: DecodeConfig, longest_prompt: int) -> None:
        """A budget the base's context cannot hold is an error, not silently truncated generations."""
        ctx = self.lrt.max_context
        if ctx is None:
            return
        most = cfg.max_new_tokens
        if longest_prompt + most > ctx:
            raise LRTError(
                f"the budget max_gen_toks={cfg.max_gen_toks} in mode={cfg.mode} can generate up to {most} tokens, "
                f"which with a {longest_prompt}-token prompt exceeds the base's context of {ctx}: lower "
                "max_gen_toks (or set answer_allowance / allowance_in_budget=true in think mode)"
            )

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        self._templated = True  # lm-eval renders the chat itself: do not render it again
        return super().apply_chat_template(chat_history, add_generation_prompt)

    def _recorded_method(self, pretrained: Any, meta) -> str | None:
        """The leaderboard's method label: a trained baseline's own record, or the reasoner's stage."""
        import json
        from pathlib import Path

        if isinstance(pretrained, str) and (Path(pretrained) / METHOD_FILE).is_file():
            try:
                return str(json.loads((Path(pretrained) / METHOD_FILE).read_text())["method"])
            except (ValueError, KeyError, OSError):
                log.warning("ignoring unreadable %s in %s", METHOD_FILE, pretrained)
        if self.mode == "latent" and meta is not None:
            trainer = (meta.recipe or {}).get("trainer")
            return {"sft": "LRT (SFT)", "grpo": "LRT", "untrained": "LRT (untrained)"}.get(trainer)
        return None

    def get_model_info(self) -> dict:
        info = super().get_model_info()
        info["lrt"] = {
            "method": self.method,
            "mode": self.mode,
            "nothink_style": self.nothink_style if self.mode == "nothink" else None,
            "answer_allowance": self.answer_allowance,
            "allowance_in_budget": self.allowance_in_budget,
            "router_threshold": self.router_threshold if self.mode == "hybrid" else None,
            "router_score": self.router_score if self.mode == "hybrid" else None,
            "cache_implementation": self.lrt.cache_implementation,
            "compile": self.lrt.compile,
            # per distinct gen_kwargs of the run: the budget rule and the sampling settings actually used
            "decode_settings": list(self._used.values()),
            "reasoner": self.reasoner_path,
            "num_latents": self.reasoner_meta.network.num_latents if self.reasoner_meta else 0,
            "fusion": self.reasoner_meta.network.fusion if self.reasoner_meta else None,
            "reasoner_step": self.reasoner_meta.step if self.reasoner_meta else None,
            "reasoner_base": self.reasoner_meta.base.id if self.reasoner_meta else None,
        }
        return info

    # ------------------------------------------------------------------------------------ loglikelihood

    def _refuse_latent(self, what: str) -> None:
        if self.mode in ("latent", "hybrid"):
            raise LRTError(
                f"{what} requests cannot run in mode=latent (latents have no text to score): use a "
                "generative task, or mode=think / mode=nothink for loglikelihood tasks"
            )

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        self._refuse_latent("loglikelihood")
        return super().loglikelihood(requests, disable_tqdm=disable_tqdm)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        self._refuse_latent("loglikelihood_rolling")
        return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)

    # ------------------------------------------------------------------------------------- generation

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[Response]:
        """Generate for lm-eval requests, batching unique prompts.

        lm-eval sends each document `repeats` times. Identical (context, gen_kwargs) requests are
        collapsed first: greedy decoding generates each once, sampling generates the k repeats of a
        prompt from one prefill (and one z) with `LatentLM.generate(..., repeats=k)`. Batches hold
        `batch_size` rows, longest prompts first.
        """
        self.lrt.chat_template = not self._templated
        eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        # (gen_kwargs key) -> context -> positions in `requests`
        groups: dict[str, dict[str, list[int]]] = {}
        kwargs_of: dict[str, dict] = {}
        for i, r in enumerate(requests):
            context, gen_kwargs = r.args
            key = repr(sorted(gen_kwargs.items()))
            kwargs_of[key] = gen_kwargs
            groups.setdefault(key, {}).setdefault(context, []).append(i)
        res: list[Response | None] = [None] * len(requests)
        pbar = tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc=f"lrt[{self.mode}]")
        bs = max(1, int(self.batch_size))
        for key, by_context in groups.items():
            gen_kwargs = dict(kwargs_of[key])
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            until = [u for u in until if u != eos]  # EOS is handled as a token, not as text
            cfg = self._decode_config(gen_kwargs, until)
            contexts = sorted(by_context, key=lambda c: (-len(c), c))  # long first: OOM early, less padding
            for c in [cfg, dataclasses.replace(cfg, mode="think")] if self.mode == "hybrid" else [cfg]:
                self._check_context(c, self.lrt.longest_prompt(contexts, c))
            counts = {len(by_context[c]) for c in contexts}
            if cfg.temperature == 0:
                k = 1  # greedy: every repeat is the same text, generate it once
            elif len(counts) == 1:
                k = counts.pop()  # k samples per prompt from one prefill
            else:
                k = 0  # uneven repeats: expand and sample each request on its own
            if k == 0:
                rows = [(c, pos) for c in contexts for pos in by_context[c]]
                for b in range(0, len(rows), bs):
                    chunk = rows[b : b + bs]
                    gens = self._generate([c for c, _ in chunk], self._seeded(cfg))
                    for (_, pos), g in zip(chunk, gens):
                        res[pos] = Response(g.text, account_dict(g.account))
                    pbar.update(len(chunk))
                continue
            per_batch = max(1, bs // k) if cfg.temperature > 0 else bs
            for b in range(0, len(contexts), per_batch):
                chunk = contexts[b : b + per_batch]
                reps = 1 if cfg.temperature == 0 else k
                gens = self._generate(chunk, cfg if reps == 1 and cfg.temperature == 0 else self._seeded(cfg),
                                      repeats=reps)
                for ci, c in enumerate(chunk):
                    for r_i, pos in enumerate(by_context[c]):
                        g = gens[ci * reps + (r_i if reps > 1 else 0)]
                        res[pos] = Response(g.text, account_dict(g.account))
                    pbar.update(len(by_context[c]))
        pbar.close()
        return res  # type: ignore[return-value]

    def _generate(self, prompts: list[str], cfg: DecodeConfig, repeats: int = 1) -> list[Generation]:
        if self.mode == "hybrid":
            if self.router_score == "agreement" and repeats < 2:
                raise LRTError("router_score=agreement needs sampled repeats (a task with repeats >= 2 and "
                               "temperature > 0); use mean_logprob or min_logprob")
            return router.generate_hybrid(self.lrt, prompts, cfg, repeats=repeats, threshold=self.router_threshold,
                                          score=self.router_score)
        return self.lrt.generate(prompts, cfg, repeats=repeats)

    @staticmethod
    def _seeded(cfg: DecodeConfig) -> DecodeConfig:
        # lm-eval seeds torch's global RNG (--seed); draw each batch's sampling seed from it so a run
        # is reproducible without every batch reusing one seed.
        if cfg.seed is not None:
            return cfg
        seed = int(torch.randint(0, 2**62, (1,)).item())
        return dataclasses.replace(cfg, seed=seed)


def register() -> None:
    """Register `lrt` in lm-eval's model registry. Importing lm_eval.models.huggingface above has already
    registered lm-eval's own models, so this never leaves a registry that holds only ours."""
    if "lrt" not in model_registry:
        model_registry.register("lrt", target=LRTLM)


register()
