"""Start-up hook that plugs lrt-bench into lm-eval 0.4.x, which has no plugin loader.

Installed as `lrt_bench_lm_eval.pth` in site-packages, so it runs at interpreter start. It must be
cheap: it imports nothing of lm-eval or torch. (Importing it runs `lrt_bench/__init__.py`, which holds
torch to its AVX2 CPU kernels before any program of the environment runs one: lrt_bench/cpu_isa.py.)
It puts an import finder on `sys.meta_path` that waits
for lm-eval's own modules and, right after each one has run:

  lm_eval.models         -> registers `lrt` as a lazy placeholder (lrt_bench.eval.backend:LRTLM). lm-eval
                            fills its registry from this module, so ours goes in next to its own and
                            never into an empty registry (which would hide `hf` and the rest).
  lm_eval.tasks.manager  -> makes every TaskManager also index lrt-bench's task folder, so
                            `lm_eval --tasks lrt_math500` and `lm_eval ls tasks` work with no
                            --include_path. A user's own --include_path still comes after ours and wins.
  lm_eval.config.evaluate_config
                         -> with `--model lrt`, checks the model_args that need no model
                            (`LRTLM.check_args`), the --gen_kwargs values (`check_gen_kwargs`:
                            types, and a budget beyond a local base's context) and the reasoner
                            checkpoint's config, weights SHA-256 and safetensors header
                            (`verify_reasoner`) before lm-eval indexes its tasks (~13 s), so a
                            mistyped argument or a broken reasoner fails at once.

It also prints lrt-bench's own errors (LRTError) as the one line they are, without a traceback.
Set LRT_BENCH_NO_LM_EVAL_HOOK=1 to switch it off. The entry-point groups `lm_eval.models` /
`lm_eval.tasks` declared in pyproject.toml are read by no released lm-eval, so this hook is what works.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path


def tasks_dir() -> str:
    spec = importlib.util.find_spec("lrt_bench.tasks")
    return str(Path(spec.origin).parent) if spec and spec.origin else ""


def _after_models(module) -> None:
    from lm_eval.api.registry import model_registry

    if "lrt" not in model_registry:
        model_registry.register("lrt", target="lrt_bench.eval.backend:LRTLM")


def _after_task_manager(module) -> None:
    cls = module.TaskManager
    if getattr(cls.__init__, "_lrt_patched", False):
        return
    original = cls.__init__

    def __init__(self, *args, **kwargs):
        # TaskManager(verbosity=None, include_path=None, ...): normalise include_path to a list
        # and put our folder first, so that the user's own paths (indexed later) override ours.
        if len(args) >= 2:
            args = list(args)
            kwargs["include_path"] = args.pop(1)
        paths = kwargs.get("include_path")
        paths = [] if paths is None else list(paths) if isinstance(paths, (list, tuple)) else [paths]
        ours = tasks_dir()
        if ours and ours not in [str(p) for p in paths]:
            paths.insert(0, ours)
        kwargs["include_path"] = paths
        original(self, *args, **kwargs)

    __init__._lrt_patched = True  # type: ignore[attr-defined]
    cls.__init__ = __init__


def _after_evaluate_config(module) -> None:
    cls = getattr(module, "EvaluatorConfig", None)
    original = getattr(cls, "process_tasks", None)
    if original is None or getattr(original, "_lrt_patched", False):
        return

    def process_tasks(self, *args, **kwargs):
        if getattr(self, "model", None) == "lrt" and isinstance(getattr(self, "model_args", None), dict):
            from lrt_bench.core.reasoner import verify_reasoner
            from lrt_bench.errors import LRTError
            from lrt_bench.eval.backend import LRTLM

            try:
                LRTLM.check_args(**self.model_args)
                gen_kwargs = getattr(self, "gen_kwargs", None)
                if isinstance(gen_kwargs, dict):
                    LRTLM.check_gen_kwargs(gen_kwargs, self.model_args)
                if self.model_args.get("reasoner"):
                    verify_reasoner(self.model_args["reasoner"])
            except LRTError:
                raise
            except Exception:  # anything else is the backend's to report, later, as it always has
                pass
        return original(self, *args, **kwargs)

    process_tasks._lrt_patched = True  # type: ignore[attr-defined]
    cls.process_tasks = process_tasks


_AFTER = {"lm_eval.models": _after_models, "lm_eval.tasks.manager": _after_task_manager,
          "lm_eval.config.evaluate_config": _after_evaluate_config}


class _Loader(importlib.abc.Loader):
    def __init__(self, inner, after):
        self.inner, self.after = inner, after

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        self.inner.exec_module(module)
        try:
            self.after(module)
        except Exception as e:  # never break lm-eval itself because of us
            print(f"lrt-bench: could not register with lm-eval ({e})", file=sys.stderr)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        after = _AFTER.get(fullname)
        if after is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader, after)
                return spec
        return None


def _excepthook(prev):
    def hook(etype, value, tb):
        # Our errors are one line that says what to do: print that line, not a traceback through
        # lm-eval's CLI. Every other exception keeps the default treatment.
        if etype.__module__ == "lrt_bench.errors" and etype.__name__ == "LRTError":
            print(f"lrt-bench: error: {value}", file=sys.stderr)
            return
        prev(etype, value, tb)

    hook._lrt = True  # type: ignore[attr-defined]
    return hook


def install() -> None:
    if os.environ.get("LRT_BENCH_NO_LM_EVAL_HOOK"):
        return
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())
    if not getattr(sys.excepthook, "_lrt", False):
        sys.excepthook = _excepthook(sys.excepthook)
    # lm-eval imported before us (unusual): patch what is already there.
    for name, after in _AFTER.items():
        if name in sys.modules:
            after(sys.modules[name])


install()
