"""Answer extraction and grading, shared by the lm-eval tasks and the RL trainers.

Math (AMC, MATH-500, GSM8K, tiny world)
    ``grade_math(response, gold)`` takes the answer from the text after the last ``</think>``
    (``strip_reasoning``), then ``extract_math_answer``:

    1. the content of the last ``\\boxed{...}`` / ``\\boxed 5`` / ``\\fbox{...}``; when the text has a
       ``\\boxed`` whose braces never close (a truncated generation) there is **no answer**;
    2. else the last anchored answer: ``answer is X``, ``answer: X``, ``answer = X``, ``#### X``; X is
       the math environment right after the anchor (``$..$``, ``\\(..\\)``, ``\\[..\\]``) or the rest
       of the sentence;
    3. else the last number in the text (``-1,234.5`` style), unless that number sits inside a LaTeX
       construct (a neighbouring ``{ } ^ _ /``, a letter or a backslash), in which case there is no
       answer rather than a guess (so ``x = \\frac{1}{2}`` does not yield ``2``).

    The answer is lightly cleaned (``**bold**``, a sentence-final ``.``, Unicode minus, a trailing
    plain-word unit as in ``18 dollars`` or ``\\text{5 cm}``) and compared with the gold answer by a
    cheap exact fast path, then by math-verify as ``verify(parse(\\boxed{gold}), parse(\\boxed{pred}))``
    in that order (the order matters to math-verify).

Multiple choice (LSAT A-E, GPQA A-D)
    ``extract_choice``: a boxed letter first (``\\boxed{B}``, ``\\boxed{(B)}``, ``\\boxed{\\text{B}}``,
    ``\\boxed{B. 42}``), then the last anchored form (``answer is (X)``, ``Answer: X``,
    ``answer is option X``, ``correct choice is X``), then the last *standalone* option letter. A
    letter is standalone when it is written ``(X)`` / ``[X]``, or after ``option`` / ``choice``, or
    bare and followed by the end of the text, a line break or punctuation (``.,;:!?)``). A bare
    letter followed by a word is not an answer (the article in "A car ..."), and an option label at
    the start of a line followed by its text ("A. 12 apples", "(B) 15") is not one either.

Time bounds and threads (why there is a worker process)
    math-verify's own timeouts use ``signal.alarm``: they only work on the main thread and cannot
    interrupt a long C-level computation (``\\boxed{9^{9^{9^{9}}}}`` spends its time in big-integer
    arithmetic). They are disabled here (``parsing_timeout=None``, ``timeout_seconds=None``) and time
    is bounded as follows:

    * answers longer than ``_MAX_ANSWER_CHARS`` are wrong without parsing (parsing is super-linear:
      20k characters take math-verify ~15 s);
    * a fast path decides the common cases in-process in microseconds: identical answers, and plain
      numbers (integers, decimals, ``1,000`` thousands separators, ``a/b``, ``\\frac{a}{b}``) that are
      equal, or integers that differ. Everything else goes to
    * one persistent worker process per grading process (``python -c`` + JSON lines over pipes; no
      multiprocessing, so no re-import of ``__main__`` and no fork of a torch process). It is started
      lazily, pays the imports once, and serves all calls; calls from several threads are serialised
      on it with a lock. When a call exceeds its time budget, the worker is killed (SIGKILL) and a
      fresh one is started in the background, and the call returns False. A worker that dies (e.g. a
      C stack overflow on deeply nested input) is replaced the same way. After a ``fork`` the child
      starts its own worker. The worker exits by itself when its parent goes away.

    ``timeout_s`` bounds the time one ``grade_math`` call spends extracting and verifying. Waiting for
    a worker to *start* (about 1-2 s: once per process and after each kill) is not counted against it
    (it is bounded separately by ``_STARTUP_TIMEOUT_S``) so that machine load at start-up never turns
    a right answer into a wrong one. Results (including time-outs) are cached per (gold, answer,
    timeout), so a pathological answer repeated across samples costs its time once.

    ``_ensure_worker()`` starts the worker and waits for it (a warm-up for trainers and benchmarks).
    If it cannot start (math-verify missing), answers that need it grade False and an error is logged.

Aggregation
    ``pass_at_k`` is the unbiased estimator of Chen et al. (2021); ``majority_vote`` groups answers by
    ``math_equal`` (exact string, then math-verify equivalence) unless another ``equal`` is given.

The graders never raise on model output: anything that goes wrong grades as False.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from fractions import Fraction

from lrt_bench.errors import LRTError

__all__ = [
    "extract_choice",
    "extract_math_answer",
    "grade_choice",
    "grade_math",
    "last_boxed",
    "majority_vote",
    "math_equal",
    "parse_gsm8k_gold",
    "pass_at_k",
    "strip_reasoning",
]

logger = logging.getLogger(__name__)

_MAX_ANSWER_CHARS = 1000  # longer extracted answers are graded wrong without parsing
_STARTUP_TIMEOUT_S = 60.0  # waiting for a (re)starting worker, not counted in timeout_s
_KILL_MARGIN_S = 0.2  # time kept back from the budget for killing and restarting the worker
_CACHE_SIZE = 8192

_THINK_CLOSE = "</think>"

# ----------------------------------------------------------------------------------------------
# Extraction
# ----------------------------------------------------------------------------------------------


def strip_reasoning(text: str) -> str:
    """The text after the last ``</think>``, or the whole text when there is none."""
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    idx = text.rfind(_THINK_CLOSE)
    return text if idx < 0 else text[idx + len(_THINK_CLOSE) :]


_BOXED_CMD = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def _balanced_group(text: str, start: int) -> str | None:
    """Content of the brace group opening at ``text[start] == '{'``; None when it never closes.

    ``\\{`` and ``\\}`` are escaped braces and do not count.
    """
    depth = 0
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
        i += 1
    return None


def _last_boxed_match(text: str):
    last = None
    for last in _BOXED_CMD.finditer(text):  # noqa: B007 - keep the last match
        pass
    return last


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (balanced braces; ``\\boxed 5`` and ``\\fbox{...}`` too).

    None when there is no ``\\boxed``/``\\fbox`` or when the last one is malformed (its braces never
    close, or nothing follows it). The content is returned as written (``""`` for ``\\boxed{}``).
    """
    if not text:
        return None
    m = _last_boxed_match(text)
    if m is None:
        return None
    i = m.end()
    n = len(text)
    while i < n and text[i].isspace():
        i += 1
    if i >= n:
        return None
    if text[i] == "{":
        return _balanced_group(text, i)
    if i == m.end() and not text[i].isdigit():
        return None  # "\boxed(" or similar: not an argument we understand
    # "\boxed 5$": the run up to whitespace or a math delimiter.
    j = i
    while j < n and not text[j].isspace() and text[j] not in "$}":
        j += 1
    token = text[i:j]
    while token and token[-1] in ".,;:":
        token = token[:-1]
    return token or None


_ANSWER_ANCHOR = re.compile(
    r"(?:\b(?:final\s+)?answer\b\s*(?:is\b\s*:?|:|=)|####)[ \t]*",
    re.IGNORECASE,
)
_MATH_ENVS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
# where an anchored answer written in prose ends: a full stop, a line break, ", because ...", "so ..."
_SENTENCE_END = re.compile(r"\.(?=\s|$)|\n|[,;]\s+(?=[A-Za-z]{2})|\s+(?=(?:because|since|as|which|so|but)\b)")
_LAST_NUMBER = re.compile(r"-?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")


def _last_match(pattern: re.Pattern, text: str) -> re.Match | None:
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - keep the last match
        pass
    return last


def _anchored_answer(text: str) -> str | None:
    last = _last_match(_ANSWER_ANCHOR, text)
    if last is None:
        return None
    rest = text[last.end() : last.end() + 400].lstrip(" \t*_")
    for open_, close in _MATH_ENVS:
        if rest.startswith(open_):
            end = rest.find(close, len(open_))
            if end < 0:
                return None
            return rest[len(open_) : end].strip() or None
    m = _SENTENCE_END.search(rest)
    ans = rest[: m.start()] if m else rest
    ans = ans.strip().strip("*_").strip()
    return ans or None


def _last_number(text: str) -> str | None:
    last = _last_match(_LAST_NUMBER, text)
    if last is None:
        return None
    before = text[last.start() - 1] if last.start() > 0 else " "
    after = text[last.end()] if last.end() < len(text) else " "
    if before in "{^_/\\." or before.isalpha() or after in "}^_/" or after.isalpha():
        return None
    return last.group(0)


_BOLD = re.compile(r"^\*\*(.*)\*\*$", re.DOTALL)
_UNIT_WORDS = r"[A-Za-z]{2,}(?:\s+[A-Za-z]{2,})*"
_NUM_WITH_WORDS = re.compile(
    rf"^(-?[0-9][0-9,]*(?:\.[0-9]+)?)(?:\s+|\s*(?:\\,|\\;|\\ |~)\s*)({_UNIT_WORDS})$"
)
_TEXT_NUM_WITH_WORDS = re.compile(
    rf"^\\(?:text|textrm|mbox|mathrm)\{{\s*(-?[0-9][0-9,]*(?:\.[0-9]+)?)\s+({_UNIT_WORDS})\s*\}}$"
)
_NOT_UNITS = {
    "pi", "infty", "inf", "infinity", "sqrt", "and", "or", "to", "times", "cdot",
    "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "mod",
}  # fmt: skip


def _clean_answer(ans: str) -> str:
    """Light, semantics-preserving cleanup of an extracted answer (see the module docstring)."""
    ans = ans.strip().replace("\u2212", "-")
    m = _BOLD.match(ans)
    if m:
        ans = m.group(1).strip()
    if len(ans) > 1 and ans.endswith(".") and not ans.endswith("\\."):
        ans = ans[:-1].rstrip()
    for pat in (_NUM_WITH_WORDS, _TEXT_NUM_WITH_WORDS):
        m = pat.match(ans)
        if m and not (set(m.group(2).lower().split()) & _NOT_UNITS):
            ans = m.group(1)
            break
    return ans


def extract_math_answer(response: str) -> str | None:
    """The final answer of a math response, or None (rules in the module docstring)."""
    text = strip_reasoning(response)
    if not text:
        return None
    if _last_boxed_match(text) is not None:
        boxed = last_boxed(text)
        ans = _clean_answer(boxed) if boxed is not None else ""
        return ans or None
    for fallback in (_anchored_answer, _last_number):
        ans = fallback(text)
        if ans:
            ans = _clean_answer(ans)
            if ans:
                return ans
    return None


# ----------------------------------------------------------------------------------------------
# Fast path: plain numbers
# ----------------------------------------------------------------------------------------------

_NUM_RE = re.compile(r"^[+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]*)?$|^[+-]?\.[0-9]+$")
_FRAC_RE = re.compile(r"^([+-]?)\\[dt]?frac(?:\{([+-]?[0-9]+)\}\{([0-9]+)\}|([0-9])([0-9]))$")
_SLASH_RE = re.compile(r"^([+-]?[0-9]+)/([0-9]+)$")
_DECOR_RE = re.compile(r"\\%|%|\^\{?\\circ\}?|\\circ")
_SPACE_RE = re.compile(r"(?:\s|\\[,;: ]|~)+")
_SPACE_NOT_BETWEEN_DIGITS = re.compile(r"(?<![0-9]) +| +(?![0-9])")
_KNOWN_CMDS = re.compile(r"\\[dt]?frac|\\%|\\circ")


def _to_number(s: str):
    """(value, is_integer_literal, decorated) for a plain number, else None. Never raises."""
    s = _SPACE_RE.sub(" ", s.replace("\\!", "")).strip()
    s = _SPACE_NOT_BETWEEN_DIGITS.sub("", s)
    if " " in s:
        return None  # "1 2", "1\\,000": let math-verify decide
    s = s.replace("{,}", ",").replace("\\$", "").replace("$", "")
    if "\\" in _KNOWN_CMDS.sub("", s):
        return None
    decorated = False
    if _DECOR_RE.search(s):
        s = _DECOR_RE.sub("", s)
        decorated = True
    if len(s) > 60:
        return None
    if _NUM_RE.match(s):
        return Fraction(s.replace(",", "")), ("." not in s), decorated
    m = _FRAC_RE.match(s)
    if m:
        num = m.group(2) if m.group(2) is not None else m.group(4)
        den = m.group(3) if m.group(3) is not None else m.group(5)
        if int(den) == 0:
            return None
        val = Fraction(int(num), int(den))
        return (-val if m.group(1) == "-" else val), False, decorated
    m = _SLASH_RE.match(s)
    if m and int(m.group(2)) != 0:
        return Fraction(int(m.group(1)), int(m.group(2))), False, decorated
    return None


def _fast_compare(gold: str, pred: str) -> bool | None:
    """True/False when the answer is decided without sympy; None to defer to math-verify.

    Only decisions math-verify would make too: equal values are equal (math-verify also accepts
    ``50`` for ``50\\%`` and ``30`` for ``30^\\circ``), and two undecorated integer literals that
    differ are different. Differing non-integers are deferred (math-verify rounds: 1/3 ~ 0.333333).
    """
    if gold == pred:
        return True
    g = _to_number(gold)
    if g is None:
        return None
    p = _to_number(pred)
    if p is None:
        return None
    if g[0] == p[0]:
        return True
    if g[1] and p[1] and not g[2] and not p[2]:
        return False
    return None


# ----------------------------------------------------------------------------------------------
# The worker process (math-verify with its SIGALRM timeouts disabled)
# ----------------------------------------------------------------------------------------------

_WORKER_SRC = r"""
import sys
sys.path[:] = [p for p in sys.path if p not in ("", ".")]  # no shadowing by files in the cwd
import json, logging, os, threading, time
proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
os.dup2(2, 1)  # stray prints from libraries must not corrupt the protocol
sys.stdout = sys.stderr
ppid = os.getppid()

def _watchdog():
    while True:
        time.sleep(1.0)
        if os.getppid() != ppid:
            os._exit(0)

threading.Thread(target=_watchdog, daemon=True).start()
logging.disable(logging.CRITICAL)
try:
    from functools import lru_cache
    from math_verify import parse, verify

    def _parse(s):
        out = parse("\\boxed{" + s + "}", parsing_timeout=None)
        if not out:
            out = parse(s, parsing_timeout=None)
        return out

    _parse_gold = lru_cache(maxsize=4096)(_parse)

    def _verify(gold, pred):
        gp = _parse_gold(gold)
        if not gp:
            return False, "gold not parsed"
        pp = _parse(pred)
        if not pp:
            return False, None
        return bool(verify(gp, pp, timeout_seconds=None)), None

    _verify("\\frac{1}{2}", "0.5")  # pay sympy's lazy initialisation before saying ready
except BaseException as e:
    proto.write(json.dumps({"ready": False, "err": repr(e)}) + "\n")
    sys.exit(1)
proto.write(json.dumps({"ready": True}) + "\n")
for line in sys.stdin:
    req = json.loads(line)
    try:
        ok, err = _verify(req["gold"], req["pred"])
    except BaseException as e:
        ok, err = False, type(e).__name__
    proto.write(json.dumps({"id": req["id"], "ok": ok, "err": err}) + "\n")
"""


class _WorkerDied(Exception):
    pass


class _Worker:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_SRC],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C at the terminal is for the parent, not the worker
        )
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.ready = False
        self.next_id = 0
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True).start()

    @staticmethod
    def _read(stream, lines) -> None:
        try:
            for line in stream:
                lines.put(line)
        except Exception:
            pass
        lines.put(None)

    def _get(self, timeout: float) -> dict:
        line = self.lines.get(timeout=max(timeout, 0.0))  # raises queue.Empty on timeout
        if line is None:
            raise _WorkerDied("grading worker exited")
        return json.loads(line)

    def wait_ready(self) -> None:
        if self.ready:
            return
        try:
            msg = self._get(_STARTUP_TIMEOUT_S)
        except queue.Empty:
            raise _WorkerDied(f"grading worker did not start within {_STARTUP_TIMEOUT_S:.0f} s") from None
        if not msg.get("ready"):
            raise _WorkerDied(f"grading worker failed to start: {msg.get('err')}")
        self.ready = True

    def ask(self, gold: str, pred: str, budget: float) -> bool | None:
        """The verdict, or None on time-out (the caller kills the worker)."""
        self.next_id += 1
        rid = self.next_id
        deadline = time.monotonic() + budget
        data = (json.dumps({"id": rid, "gold": gold, "pred": pred}) + "\n").encode("utf-8")
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as e:
            raise _WorkerDied(f"grading worker pipe closed: {e}") from None
        while True:
            try:
                msg = self._get(deadline - time.monotonic())
            except queue.Empty:
                return None
            if msg.get("id") == rid:
                if msg.get("err") == "gold not parsed":
                    logger.warning("math-verify could not parse the gold answer %r", gold[:200])
                return bool(msg.get("ok"))

    def kill(self) -> None:
        try:
            self.proc.kill()
        except Exception:
            pass
        try:
            self.proc.wait(timeout=2.0)
        except Exception:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except Exception:
                pass


_worker: _Worker | None = None
_worker_lock = threading.Lock()
_cache: OrderedDict[tuple, bool] = OrderedDict()
_cache_lock = threading.Lock()
_start_failures = 0


def _get_worker() -> _Worker:
    """Caller holds ``_worker_lock``."""
    global _worker
    if _worker is not None and _worker.pid != os.getpid():
        _worker = None  # inherited across fork: the pipes belong to the parent's worker
    if _worker is None or _worker.proc.poll() is not None:
        _worker = _Worker()
    return _worker


def _replace_worker(old: _Worker) -> None:
    """Kill ``old`` and start its successor at once so it warms up while the caller goes on."""
    global _worker
    old.kill()
    _worker = None
    try:
        _worker = _Worker()
    except Exception:
        logger.exception("could not restart the grading worker")


def _shutdown_worker() -> None:
    global _worker
    w = _worker
    _worker = None
    if w is not None and w.pid == os.getpid():
        w.kill()


atexit.register(_shutdown_worker)


def _ensure_worker() -> bool:
    """Start the worker (if needed) and wait until it is ready; True when it is. For warm-ups."""
    with _worker_lock:
        try:
            _get_worker().wait_ready()
            return True
        except Exception as e:
            logger.error("%s", e)
            return False


def _verify_in_worker(gold: str, pred: str, budget: float) -> bool | None:
    """The verdict; False on time-out; None when no worker could answer (not cached)."""
    global _start_failures
    with _worker_lock:
        try:
            worker = _get_worker()
            worker.wait_ready()
            _start_failures = 0
        except Exception as e:
            _start_failures += 1
            if _start_failures <= 3:
                logger.error("%s; answers that need math-verify are graded wrong", e)
            if _worker is not None:
                _replace_worker(_worker)
            return None
        try:
            verdict = worker.ask(gold, pred, budget)
        except _WorkerDied as e:
            logger.warning("%s while grading; graded wrong and restarted", e)
            _replace_worker(worker)
            return None
        if verdict is None:
            logger.info("grading timed out after %.1f s; graded wrong", budget)
            _replace_worker(worker)
            return False
        return verdict


def _cache_get(key):
    with _cache_lock:
        val = _cache.get(key)
        if val is not None:
            _cache.move_to_end(key)
        return val


def _cache_put(key, val: bool) -> None:
    with _cache_lock:
        _cache[key] = val
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def _normalize_gold(gold) -> str:
    gold = str(gold).strip()
    if "\\boxed" in gold or "\\fbox" in gold:
        boxed = last_boxed(gold)
        if boxed is not None:
            gold = boxed.strip()
    if len(gold) >= 2 and gold.startswith("$") and gold.endswith("$"):
        gold = gold.strip("$").strip()
    return gold


def _equivalent(gold: str, pred: str, timeout_s: float, t0: float) -> bool:
    if not gold or not pred or len(pred) > _MAX_ANSWER_CHARS or len(gold) > _MAX_ANSWER_CHARS:
        return False
    fast = _fast_compare(gold, pred)
    if fast is not None:
        return fast
    key = (gold, pred, float(timeout_s))
    cached = _cache_get(key)
    if cached is not None:
        return cached
    budget = timeout_s - (time.monotonic() - t0) - _KILL_MARGIN_S
    if budget <= 0:
        return False
    verdict = _verify_in_worker(gold, pred, budget)
    if verdict is None:
        return False
    _cache_put(key, verdict)
    return verdict


def grade_math(response: str, gold: str, timeout_s: float = 5.0) -> bool:
    """Whether the response's final answer equals ``gold`` (math-verify; never raises)."""
    t0 = time.monotonic()
    try:
        pred = extract_math_answer(response)
        if pred is None:
            return False
        return _equivalent(_normalize_gold(gold), pred, float(timeout_s), t0)
    except Exception:
        logger.debug("grade_math failed; graded wrong", exc_info=True)
        return False


def math_equal(a: str | None, b: str | None, timeout_s: float = 2.0) -> bool:
    """Whether two extracted math answers are the same (``a`` plays the gold). Never raises."""
    t0 = time.monotonic()
    try:
        if a is None or b is None:
            return False
        a, b = _clean_answer(str(a)), _clean_answer(str(b))
        return _equivalent(_normalize_gold(a), b, float(timeout_s), t0)
    except Exception:
        logger.debug("math_equal failed", exc_info=True)
        return False


def parse_gsm8k_gold(answer_field: str) -> str:
    """The number after the last ``####`` in a GSM8K answer field, commas stripped.

    A field that is already a bare number is returned cleaned; anything else is a data error.
    """
    text = str(answer_field)
    idx = text.rfind("####")
    tail = text[idx + 4 :] if idx >= 0 else text
    tail = tail.strip().splitlines()[0].strip() if tail.strip() else ""
    tail = tail.replace(",", "").replace("$", "").strip()
    tail = tail.removesuffix(".")
    if not re.fullmatch(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", tail):
        where = "after '####'" if idx >= 0 else "(no '####' marker)"
        raise LRTError(f"GSM8K answer field has no number {where}: {text[-80:]!r}")
    return tail


# ----------------------------------------------------------------------------------------------
# Multiple choice
# ----------------------------------------------------------------------------------------------

_TEXT_WRAP = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|textit|mbox)\s*\{([^{}]*)\}")
_BOXED_LETTER = re.compile(r"^[\(\[]?\s*([A-Za-z])\s*[\)\]]?(?:$|[.:)]\s|\s)")
_MC_ANCHOR = re.compile(
    r"(?i:\b(?:final\s+)?answer\b|\bcorrect\s+(?:answer|option|choice)\b)"
    r"(?i:\s*(?:is|would\s+be|should\s+be|will\s+be|must\s+be))?"
    r"\s*[:=\-]?\s*"
    r"(?i:(?:option|choice)\s+)?"
    r"[*_]*\s*[\(\[]?\s*([A-Z])\s*[\)\]]?[*_]*"
    r"(?![A-Za-z0-9])"
)
_MC_PAREN = re.compile(r"[\(\[]\s*([A-Z])\s*[\)\]]")
_MC_KEYWORD = re.compile(r"(?i:\b(?:option|choice)\s+)([A-Z])(?![A-Za-z0-9])")
_MC_BARE = re.compile(r"(?<![A-Za-z0-9\\])([A-Z])[*_]*(?=\s*$|[ \t]*\n|[.,;:!?)])")
_MC_LABEL = re.compile(r"(?m)^[ \t]*[*_]*[\(\[]?([A-Z])[\)\]]?[.):]?[*_]*[ \t]+\S")


def _boxed_choice(content: str, letters: str) -> str | None:
    s = content
    for _ in range(3):
        s = _TEXT_WRAP.sub(r"\1", s)
    s = s.replace("$", "").strip()
    m = _BOXED_LETTER.match(s) or (re.match(r"^([A-Za-z])$", s))
    if m:
        letter = m.group(1).upper()
        if letter in letters:
            return letter
    return None


def extract_choice(response: str, letters: str = "ABCDE") -> str | None:
    """The option letter a response picks, or None (rules in the module docstring)."""
    try:
        text = strip_reasoning(response)
        if not text:
            return None
        letters = letters.upper()
        boxed = last_boxed(text)
        if boxed is not None:
            letter = _boxed_choice(boxed, letters)
            if letter:
                return letter
        anchored = [m for m in _MC_ANCHOR.finditer(text) if m.group(1) in letters]
        if anchored:
            return anchored[-1].group(1)
        label_starts = {m.start(1) for m in _MC_LABEL.finditer(text)}
        best_pos, best = -1, None
        for pat in (_MC_PAREN, _MC_KEYWORD, _MC_BARE):
            for m in pat.finditer(text):
                if m.group(1) in letters and m.start(1) not in label_starts and m.start(1) > best_pos:
                    best_pos, best = m.start(1), m.group(1)
        return best
    except Exception:
        logger.debug("extract_choice failed", exc_info=True)
        return None


def grade_choice(response: str, gold: str, letters: str = "ABCDE") -> bool:
    """Whether the response picks option ``gold`` (a letter, ``(B)`` also accepted). Never raises."""
    try:
        g = re.sub(r"[\s()\[\].]", "", str(gold)).upper()
        pred = extract_choice(response, letters)
        return pred is not None and len(g) == 1 and pred == g
    except Exception:
        return False


# ----------------------------------------------------------------------------------------------
# Aggregation
# ----------------------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k), in the stable product form."""
    try:
        n, c, k = (int(v.__index__()) for v in (n, c, k))
    except (AttributeError, TypeError):
        raise LRTError(f"pass_at_k needs integers, got n={n!r}, c={c!r}, k={k!r}") from None
    if n < 1:
        raise LRTError(f"pass_at_k: n={n} samples; need at least one sample")
    if not 1 <= k <= n:
        raise LRTError(f"pass_at_k: k={k} must be between 1 and n={n} (the number of samples)")
    if not 0 <= c <= n:
        raise LRTError(f"pass_at_k: c={c} correct samples must be between 0 and n={n}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def majority_vote(answers: list, equal: Callable[[str, str], bool] | None = None) -> str | None:
    """The most common answer; ties go to the answer seen first; None only when all are None.

    Answers are grouped with ``equal(representative, answer)`` where the representative is the
    first answer of its group. By default identical strings (after stripping) group, and then
    math-verify equivalence (``math_equal``) merges forms such as ``1/2`` and ``\\frac{1}{2}``; pass
    ``equal=operator.eq`` for exact matching. The first-seen form of the winning group is returned.
    """
    if equal is None:
        equal = math_equal
    groups: list[list] = []  # [representative, count]
    for ans in answers:
        if ans is None:
            continue
        key = ans.strip() if isinstance(ans, str) else ans
        for group in groups:
            rep = group[0]
            same = (rep.strip() if isinstance(rep, str) else rep) == key
            if not same:
                try:
                    same = bool(equal(rep, ans))
                except Exception:
                    same = False
            if same:
                group[1] += 1
                break
        else:
            groups.append([ans, 1])
    if not groups:
        return None
    best = groups[0]
    for group in groups[1:]:
        if group[1] > best[1]:
            best = group
    return best[0]
