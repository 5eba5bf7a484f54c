"""The toolkit's user-facing error, and the parsers of user values that raise it."""

from __future__ import annotations

import math
from typing import Any


class LRTError(ValueError):
    """Bad input or configuration. The message is a single line meant for the user."""


def as_bool(name: str, v: Any) -> bool:
    """A flag from a command line / model_args string: true/false/1/0/yes/no."""
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes"):
        return True
    if s in ("0", "false", "no"):
        return False
    raise LRTError(f"{name}={v!r} is not a boolean: use true or false")


def as_number(name: str, v: Any, kind: type = float, minimum: float | None = None) -> Any:
    """A finite number (`kind` int: a whole one) from user input: "abc", 2.7 for an int and nan are
    errors, never silently 0, 2 or nan."""
    what = "a whole number" if kind is int else "a number"
    if isinstance(v, bool):
        raise LRTError(f"{name}={v!r} must be {what}")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise LRTError(f"{name}={v!r} must be {what}") from None
    if not math.isfinite(f):
        raise LRTError(f"{name}={v!r} must be finite")
    if kind is int and f != int(f):
        raise LRTError(f"{name}={v!r} must be {what}")
    out = int(f) if kind is int else f
    if minimum is not None and out < minimum:
        raise LRTError(f"{name} must be >= {minimum}, got {v!r}")
    return out


def nonneg_int(v: str, minimum: int = 0) -> int:
    """An argparse `type=` for counts and seeds: a whole number >= `minimum` (0), else argparse's one-line
    error."""
    import argparse

    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a whole number") from None
    if n < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {n}")
    return n


def positive_int(v: str) -> int:
    """An argparse `type=` for a count that must be >= 1 (workers, jobs)."""
    return nonneg_int(v, minimum=1)
