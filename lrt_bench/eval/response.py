"""A generated text that carries its cost account through lm-eval's plumbing.

lm-eval passes model outputs as strings from `generate_until` through filters to a task's
`process_results`. `Response` is a `str` (so every filter, cache and logger treats it as text) with one
extra attribute, `account`: the per-sample counts from `LatentLM` (reasoning, forced and answer
tokens, latents, seconds). Task utils turn those into per-sample metrics, so they land in the sample
logs and their means in the results JSON. Outputs of other backends (`--model hf`) are plain strings:
their account metrics are NaN ("not measured"), never a made-up number.
"""

from __future__ import annotations

from typing import Any

# rerouted / first_pass_tokens: hybrid mode's re-asked share and the replaced latent answers' tokens
# (0 in the other modes, which never re-ask)
ACCOUNT_FIELDS = ("reasoning_tokens", "forced_tokens", "answer_tokens", "latents", "seconds", "rerouted",
                  "first_pass_tokens")


class Response(str):
    account: dict[str, Any] | None

    def __new__(cls, text: str, account: dict[str, Any] | None = None) -> Response:
        obj = super().__new__(cls, text)
        obj.account = account
        return obj

    def __reduce__(self):  # keep the account through pickling (lm-eval's request cache, DDP gather)
        return (Response, (str(self), self.account))


def account_dict(account: Any) -> dict[str, Any]:
    """A `generation.Account` as the dict a `Response` carries (what lm-eval's sample logs keep)."""
    a = account
    return {
        "reasoning_tokens": a.reasoning_tokens,
        "forced_tokens": a.forced_tokens,
        "answer_tokens": a.answer_tokens,
        "latents": a.latents,
        "seconds": a.seconds,
        "prompt_tokens": a.prompt_tokens,
        "finish_reason": a.finish_reason,
        # hybrid: 1 when the think pass answered; the replaced latent answer's tokens
        "rerouted": float(a.route == "think"),
        "first_pass_tokens": a.first_pass_tokens,
        "router_score": a.router_score,
    }


def account_of(response: Any) -> dict[str, float]:
    """The account fields of a response, NaN for each one a backend did not measure."""
    acc = getattr(response, "account", None) or {}
    return {k: float(acc[k]) if k in acc else float("nan") for k in ACCOUNT_FIELDS}
