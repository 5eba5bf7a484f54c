"""Answer extraction and grading, shared by the lm-eval tasks and the RL trainers.

Math (AMC, MATH-500, GSM8K, tiny world)
    ``grade_math(response, gold)`` takes the answer from the text after the last ``</think>``
    (``strip_reasoning``), then ``extract_math_answer``:

    1. the content of the last ``\\boxed{...}`` / ``\\boxed 5`` / ``\\fbox{...}``; when the text has a
       ``\\boxed`` whose braces never close (a truncated generation) there is **no answer**;
    2. else the last anchored answer: ``answer is X``, ``answer: X``, ``answer = X``, ``#### X``; X is
       the math environment right after the anchor (``$..$``, ``\\(..\\)``, ``\\[..\\]``) or the rest
       of the sentence. When that sentence is prose (two plain words in a row: "Final Answer: She
       makes 18 dollars.", "The answer is: Janet makes $18 every day.") X is what it states: its last
       inline math or its last number, whichever comes last (18; "The largest $n$ is 34" gives 34);
    3. else the last number in the text (``-1,234.5`` style), unless that number sits inside a LaTeX
       construct (a neighbouring ``{ } ^ _ /``, a letter or a backslash), in which case there is no
       answer rather than a guess (so ``x = \\frac{1}{2}`` does not yield ``2``).

    The answer is lightly cleaned (``**bold**``, a sentence-final ``.``, Unicode minus, ``74°`` ->
    ``74^{\\circ}``, digit groups joined: ``1\\,234`` / ``12\\,345\\,678`` / ``1 000`` -> plain digits,
    a trailing plain-word unit as in ``18 dollars`` or ``\\text{5 cm}``) and compared with the gold
    answer by a cheap exact fast path, then by math-verify as
    ``verify(parse(\\boxed{gold}), parse(\\boxed{pred}))`` in that order (the order matters to
    math-verify).

    Commas: ``1,000`` and ``12,345`` (exact 3-digit groups, no space) are thousands; a comma followed
    by a space makes a list (``32, 349`` is the pair {32, 349}, not 32349; ``1, 100`` is not 1100);
    ``1,0`` is a pair too (no 3-digit group). A space or a LaTeX space (``\\,`` ``\\;`` ``~``) between
    exact 3-digit groups is a thousands separator (LaTeX ignores it in math mode; math-verify alone
    would read ``1\\,234`` as 1 + 234); a plain space only when the whole answer is that number.

Multiple choice (LSAT A-E, GPQA A-D)
    ``extract_choice``: a boxed letter first (``\\boxed{B}``, ``\\boxed{(B)}``, ``\\boxed{\\text{B}}``,
    ``\\boxed{B. 42}``), then the last anchored form (``answer is (X)``, ``Answer: X``,
    ``answer is option X``, ``correct choice is X``), then the last *standalone* option letter. A
    letter is standalone when it is written ``(X)`` / ``[X]``, or after ``option`` / ``choice``, or
    bare and followed by the end of the text, a line break or punctuation (``.,;:!?)``). A bare
    letter followed by a word is not an answer (the article in "A car ..."), and an option label at
    the start of a line followed by its text ("A. 12 apples", "(B) 15") is not one either. Nor is a
    letter ruled out: after ``not``, ``can't be``, ``cannot be``, ``except``, ``rule out``,
    ``eliminate``, ``rather than``... with the letters listed after it ("The answer is for sure D,
    it can't be A or B" picks D, "clearly (C), not A or B" picks C). The anchor may carry an adverb
    (``answer is for sure / clearly / definitely / probably D``).

Policies (where public graders differ; cases marked ``policy`` in the external conformance file,
tests/test_external_grading.py)
    * only the last box counts (``\\boxed{1} and \\boxed{2}`` answers 2, not the set {1, 2});
    * lists are compared as math-verify compares them (``4, 10, -2`` equals ``10, 4, -2``);
    * a decimal comma is not read (``1000,99`` is not 1000.99); ``%`` as math-verify reads it
      (``50\\%`` equals 50); words such as ``percent`` / ``pct`` are units, dropped (``33.5 percent`` is
      33.5, not 0.335); a number glued to a unit (``1,000.99m²``) is no answer;
    * an anchor needs ``is`` / ``:`` / ``=``: in ``Answer \\( (9+1) \\)`` the last-number fallback reads 1,
      in ``Answer $ 9 $`` it reads 9; text is never evaluated (``__import__('os')... or 0`` reads 0);
    * multiple choice: a lower-case bare letter (``b``) is not an answer; a line that starts with a
      letter and text ("D. it can't be A or B", "A. Because ...") is an option label, not an answer.
      Ruling letters out (above) changed one policy case: the derived negative of "D. it can't be A
      or B" against B was read as B (graded right) and now has no answer (graded wrong, as the source
      says); its positive against D stays unanswered.

Time bounds and threads (why there are worker processes)
    math-verify's own timeouts use ``signal.alarm``: they only work on the main thread and cannot
    interrupt a long C-level computation (``\\boxed{9^{9^{9^{9}}}}`` spends its time in big-integer
    arithmetic). They are disabled here (``parsing_timeout=None``, ``timeout_seconds=None``) and time
    is bounded as follows:

    * answers longer than ``_MAX_ANSWER_CHARS`` are wrong without parsing (parsing is super-linear:
      20k characters take math-verify ~15 s);
    * a fast path decides the common cases in-process in microseconds: identical answers, and plain
      numbers (integers, decimals, ``1,000`` thousands separators, ``a/b``, ``\\frac{a}{b}``) that are
      equal, or integers that differ. Everything else goes to
    * a small pool of persistent worker processes, up to ``_POOL_SIZE`` (4) per grading process
      (``python -c`` + JSON lines over pipes; no multiprocessing, so no re-import of ``__main__`` and
      no fork of a torch process). Each worker serves one call at a time. A worker is started lazily,
      only when every started one is busy (one thread grading keeps one worker), and pays the imports
      once. When a call exceeds its time budget, its worker is killed (SIGKILL) and a fresh one is
      started in the background, and the call returns False. A worker that dies (e.g. a C stack
      overflow on deeply nested input) is replaced the same way. After a ``fork`` the child starts
      its own workers. A worker exits by itself when its parent goes away.

    ``timeout_s`` bounds the time one ``grade_math`` call spends extracting, **waiting for a free
    worker** and verifying: the deadline is fixed when the call starts, so a call queued behind
    pathological answers from other threads gives up (False, not cached) when its time is spent
    instead of waiting for them (it waited 21 s with ``timeout_s=5`` when one worker served every
    thread behind a lock). Waiting for a worker to *start* (about 0.5-2 s: once per worker and after
    each kill) is not counted (it is bounded separately by ``_STARTUP_TIMEOUT_S``) so that machine
    load at start-up never turns a right answer into a wrong one; a call with less than
    ``_MIN_START_BUDGET_S`` left does not wait for a start-up at all. So a call returns within
    ``timeout_s`` plus at most one start-up, and, with the pool warm, within ``timeout_s`` plus the
    time to kill a worker.

    ``grade_math_many(responses, gold)`` grades one document's samples: identical answers once, and
    the ones that need math-verify side by side on the pool, so a document of four pathological
    samples takes about one ``timeout_s`` (it took 33 s at ``timeout_s=5`` graded one by one). The
    lm-eval tasks use it (``task_utils.process_math``). Results (including time-outs) are cached per
    (gold, answer, timeout), so a pathological answer repeated across samples costs its time once,
    and an answer that ran out of time is remembered as slow: ``math_equal`` (the majority vote)
    then compares it as text only, so the vote over pathological samples adds no time-outs.

    ``_ensure_worker(workers=1)`` starts that many workers and waits for them (a warm-up for trainers
    and benchmarks). If none can start (math-verify missing), answers that need one grade False and
    an error is logged.

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
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

from lrt_bench.core.layout import THINK_CLOSE
from lrt_bench.errors import LRTError

__all__ = [
    "extract_choice",
    "extract_math_answer",
    "grade_choice",
    "grade_math",
    "grade_math_many",
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
_POOL_SIZE = 4  # workers per grading process: a document's 4 samples are verified side by side
_MIN_START_BUDGET_S = 0.25  # a call with less time left does not wait for a worker to start


# ----------------------------------------------------------------------------------------------
# Extraction
# ----------------------------------------------------------------------------------------------


def strip_reasoning(text: str) -> str:
    """The text after the last ``</think>``, or the whole text when there is none."""
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    idx = text.rfind(THINK_CLOSE)
    return text if idx < 0 else text[idx + len(THINK_CLOSE) :]


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
_LAST_NUMBER = re.compile(r"-?(?:[0-9]{1,3}(?:(?:,|\\,)[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
# inline math inside a sentence of prose: "$5h = 20$", "\(n\)"
_INLINE_MATH = re.compile(r"\$([^$]+)\$|\\\((.+?)\\\)")
# two plain words in a row, outside LaTeX commands: "She makes", "The largest" (not "x = 5", "18 dollars")
_TWO_WORDS = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}\s+[A-Za-z]{2,}(?![A-Za-z])")


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
    if _is_prose(ans):
        return _answer_in_prose(ans) or ans
    return ans or None


def _is_prose(sentence: str) -> bool:
    """A sentence of words ("She makes 18 dollars") rather than an answer ("18 dollars", "x = 5")."""
    return bool(_TWO_WORDS.search(_INLINE_MATH.sub(" ", sentence)))


def _answer_in_prose(sentence: str) -> str | None:
    """The answer a sentence states: its last inline math or its last number, whichever comes last.

    "Final Answer: The largest $n$ is 34." states 34 (the number comes after ``$n$``);
    "The answer is: the probability is $\\frac{1}{2}$." states ``\\frac{1}{2}``.
    """
    env = _last_match(_INLINE_MATH, sentence)
    num = _last_number(sentence[env.end() :] if env else sentence)
    if num:
        return num
    if env:
        return (env.group(1) or env.group(2)).strip() or None
    return None


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
_LATEX_SPACE = re.compile(r"\\[,;: ]|~")
_LATEX_SPACED_GROUPS = re.compile(r"(?<![0-9.,])[0-9]{1,3}(?:(?:\\[,;: ]|~)[0-9]{3})+(?![0-9])")
_SPACED_NUMBER = re.compile(r"^[+-]?[0-9]{1,3}(?: [0-9]{3})+(?:\.[0-9]+)?$")
_DEGREE_SIGN = re.compile(r"\s*\u00b0")
_NOT_UNITS = {
    "pi", "infty", "inf", "infinity", "sqrt", "and", "or", "to", "times", "cdot",
    "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "mod",
}  # fmt: skip


def _join_digit_groups(ans: str) -> str:
    """Thousands written with a space or a LaTeX space become plain digits: ``1\\,234`` -> ``1234``.

    A LaTeX space (``\\,`` ``\\;`` ``\\:`` ``\\ `` ``~``) between exact 3-digit groups is joined
    anywhere (LaTeX ignores it in math mode; math-verify would read ``1\\,234`` as 1 + 234); a plain
    space only when the whole answer is one such number (``1 000``), so ``x = 2 3`` stays as it is.
    A comma followed by a space is never joined: ``32, 349`` is a list.
    """
    if _SPACED_NUMBER.match(ans):
        return re.sub(r"\s+", "", ans)
    return _LATEX_SPACED_GROUPS.sub(lambda m: _LATEX_SPACE.sub("", m.group(0)), ans)


def _clean_answer(ans: str) -> str:
    """Light, semantics-preserving cleanup of an extracted answer (see the module docstring)."""
    ans = ans.strip().replace("\u2212", "-")
    m = _BOLD.match(ans)
    if m:
        ans = m.group(1).strip()
    if len(ans) > 1 and ans.endswith(".") and not ans.endswith("\\."):
        ans = ans[:-1].rstrip()
    ans = _DEGREE_SIGN.sub(lambda _: "^{\\circ}", ans)  # math-verify does not parse "74°"
    ans = _join_digit_groups(ans)
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
    if ", " in s:
        return None  # "32, 349" and "1, 100" are lists, not thousands: let math-verify decide
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


class _Pool:
    """Up to ``_POOL_SIZE`` workers of this process; each serves one call at a time.

    A worker is started only when every started one is in use, so a process that grades from one
    thread keeps one worker. ``acquire`` waits (on a condition, up to the caller's deadline) while
    all of them are busy.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.idle: list[_Worker] = []  # started (ready or still starting) and free
        self.live: set[_Worker] = set()  # every worker of this process, idle or in use

    def _prune(self) -> None:
        """Forget workers of another process (inherited across fork) and idle ones that died."""
        mine = os.getpid()
        self.live = {w for w in self.live if w.pid == mine}
        keep = []
        for w in self.idle:
            if w.pid != mine:
                continue  # the parent's: its pipes are not ours to use or close
            if w.proc.poll() is not None:
                w.kill()  # died while idle (killed from outside, out of memory)
                self.live.discard(w)
                continue
            keep.append(w)
        self.idle = keep

    def acquire(self, deadline: float | None) -> _Worker | None:
        """A free worker, started if the pool has room; None when ``deadline`` passes first."""
        with self.cond:
            while True:
                self._prune()
                if self.idle:
                    return self.idle.pop()  # the last released: the most likely to be ready
                if len(self.live) < _POOL_SIZE:
                    worker = _Worker()
                    self.live.add(worker)
                    return worker
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    return None
                self.cond.wait(wait)

    def release(self, worker: _Worker) -> None:
        with self.cond:
            if worker in self.live:
                self.idle.append(worker)
            self.cond.notify()

    def discard(self, worker: _Worker) -> None:
        """Kill ``worker`` and free its place (the next call that needs one starts a new one)."""
        worker.kill()
        with self.cond:
            self.live.discard(worker)
            self.cond.notify()

    def replace(self, worker: _Worker) -> None:
        """Kill ``worker`` and start its successor at once, so it warms up while callers go on."""
        self.discard(worker)
        with self.cond:
            if len(self.live) >= _POOL_SIZE:
                return
            try:
                successor = _Worker()
            except Exception:
                logger.exception("could not restart the grading worker")
                return
            self.live.add(successor)
            self.idle.append(successor)
            self.cond.notify()

    def shutdown(self) -> None:
        with self.cond:
            workers = [w for w in self.live if w.pid == os.getpid()]
            self.live.clear()
            self.idle.clear()
        for w in workers:
            w.kill()


_pool = _Pool()
_cache: OrderedDict[tuple, bool] = OrderedDict()
_slow: OrderedDict[str, None] = OrderedDict()  # answers whose verification ran out of time
_cache_lock = threading.Lock()
_start_failures = 0


def _reset_after_fork() -> None:
    """A forked child starts its own workers; the parent's lock may have been held at the fork."""
    global _pool, _cache_lock
    _pool = _Pool()
    _cache_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(lambda: _pool.shutdown())


def _ensure_worker(workers: int = 1) -> bool:
    """Start ``workers`` workers (at most the pool's size) and wait until they are ready; True when
    they all are. For warm-ups: a trainer or benchmark pays the start-up before its first grade."""
    taken: list[_Worker] = []
    ok = True
    try:
        for _ in range(max(1, min(workers, _POOL_SIZE))):
            taken.append(_pool.acquire(None))
        for w in taken:
            try:
                w.wait_ready()
            except _WorkerDied as e:
                logger.error("%s", e)
                ok = False
    except Exception as e:
        logger.error("could not start the grading worker: %s", e)
        ok = False
    finally:
        for w in taken:
            (_pool.release if w.ready else _pool.discard)(w)
    return ok


def _start(worker: _Worker, deadline: float) -> float | None:
    """Wait for ``worker`` to be ready; the deadline moved by the wait (not counted), or None."""
    global _start_failures
    if worker.ready:
        return deadline
    if deadline - time.monotonic() < _MIN_START_BUDGET_S:
        _pool.release(worker)  # too little time left to be worth a start-up; another call uses it
        return None
    began = time.monotonic()
    try:
        worker.wait_ready()
    except _WorkerDied as e:
        _start_failures += 1
        if _start_failures <= 3:
            logger.error("%s; answers that need math-verify are graded wrong", e)
        _pool.discard(worker)
        return None
    _start_failures = 0
    return deadline + (time.monotonic() - began)


def _verify_in_worker(gold: str, pred: str, deadline: float) -> bool | None:
    """The verdict; False on time-out; None when there is none (no free worker before the deadline,
    no worker could start, the worker died): not cached."""
    try:
        worker = _pool.acquire(deadline)
    except Exception as e:
        logger.error("could not start the grading worker: %s", e)
        return None
    if worker is None:
        logger.info("no grading worker came free within the time budget; graded wrong")
        return None
    deadline = _start(worker, deadline)
    if deadline is None:
        return None
    budget = deadline - time.monotonic()
    if budget <= 0:
        _pool.release(worker)
        return None
    try:
        verdict = worker.ask(gold, pred, budget)
    except _WorkerDied as e:
        logger.warning("%s while grading; graded wrong and restarted", e)
        _pool.replace(worker)
        return None
    except BaseException:
        _pool.replace(worker)  # interrupted mid-request (Ctrl-C): its reply would confuse the next call
        raise
    if verdict is None:
        logger.info("grading timed out after %.1f s; graded wrong", budget)
        _remember_slow(pred)
        _pool.replace(worker)
        return False
    _pool.release(worker)
    return verdict


def _cache_get(key):
    with _cache_lock:
        val = _cache.get(key)
        if val is not None:
            _cache.move_to_end(key)
        return val


def _lru_put(lru: OrderedDict, key, val) -> None:
    """Insert into one of the bounded LRU dicts (under the cache lock), dropping the oldest."""
    with _cache_lock:
        lru[key] = val
        lru.move_to_end(key)
        while len(lru) > _CACHE_SIZE:
            lru.popitem(last=False)


def _cache_put(key, val: bool) -> None:
    _lru_put(_cache, key, val)


def _remember_slow(answer: str) -> None:
    _lru_put(_slow, answer, None)


def _is_slow(answer: str) -> bool:
    with _cache_lock:
        return answer in _slow


def _normalize_gold(gold) -> str:
    gold = str(gold).strip()
    if "\\boxed" in gold or "\\fbox" in gold:
        boxed = last_boxed(gold)
        if boxed is not None:
            gold = boxed.strip()
    if len(gold) >= 2 and gold.startswith("$") and gold.endswith("$"):
        gold = gold.strip("$").strip()
    return gold


def _decide_in_process(gold: str, pred: str, timeout_s: float) -> bool | None:
    """The verdict without a worker (limits, fast path, cache), or None when math-verify must run."""
    if not gold or not pred or len(pred) > _MAX_ANSWER_CHARS or len(gold) > _MAX_ANSWER_CHARS:
        return False
    fast = _fast_compare(gold, pred)
    if fast is not None:
        return fast
    return _cache_get((gold, pred, float(timeout_s)))


def _verify(gold: str, pred: str, timeout_s: float, t0: float) -> bool:
    """math-verify's verdict within ``timeout_s`` counted from ``t0`` (waits for a worker included)."""
    try:
        deadline = t0 + timeout_s - _KILL_MARGIN_S
        if deadline <= time.monotonic():
            return False
        verdict = _verify_in_worker(gold, pred, deadline)
        if verdict is None:
            return False
        _cache_put((gold, pred, float(timeout_s)), verdict)
        return verdict
    except Exception:
        logger.debug("verification failed; graded wrong", exc_info=True)
        return False


def _equivalent(gold: str, pred: str, timeout_s: float, t0: float) -> bool:
    decided = _decide_in_process(gold, pred, timeout_s)
    return decided if decided is not None else _verify(gold, pred, timeout_s, t0)


def _extract_or_none(response) -> str | None:
    try:
        return extract_math_answer(response)
    except Exception:
        logger.debug("extraction failed; graded wrong", exc_info=True)
        return None


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


def grade_math_many(responses, gold: str, timeout_s: float = 5.0) -> list[bool]:
    """``grade_math`` of each response against one ``gold`` (a document's samples); never raises.

    Each answer gets ``timeout_s``. The answers that need math-verify are verified side by side on
    the pool's workers, and identical answers once, so a document whose samples are all
    pathological takes about one ``timeout_s``, not one per sample.
    """
    t0 = time.monotonic()
    answers = [_extract_or_none(r) for r in responses]
    try:
        g = _normalize_gold(gold)
    except Exception:
        return [False] * len(answers)
    timeout_s = float(timeout_s)
    verdicts: dict[str, bool] = {}
    pending: list[str] = []
    for a in dict.fromkeys(a for a in answers if a is not None):
        decided = _decide_in_process(g, a, timeout_s)
        if decided is None:
            pending.append(a)
        else:
            verdicts[a] = decided
    if len(pending) == 1:
        verdicts[pending[0]] = _verify(g, pending[0], timeout_s, t0)
    elif pending:
        with ThreadPoolExecutor(max_workers=min(len(pending), _POOL_SIZE), thread_name_prefix="grade") as ex:
            # each answer's clock starts when a thread takes it up
            results = ex.map(lambda a: _verify(g, a, timeout_s, time.monotonic()), pending)
            verdicts.update(zip(pending, results))
    return [a is not None and verdicts.get(a, False) for a in answers]


def math_equal(a: str | None, b: str | None, timeout_s: float = 2.0) -> bool:
    """Whether two extracted math answers are the same (``a`` plays the gold). Never raises.

    An answer whose verification once ran out of time is equal only to itself (as text): a
    majority vote over pathological answers then costs no further time-outs.
    """
    t0 = time.monotonic()
    try:
        if a is None or b is None:
            return False
        g, b = _normalize_gold(_clean_answer(str(a))), _clean_answer(str(b))
        decided = _decide_in_process(g, b, float(timeout_s))
        if decided is not None:
            return decided
        if _is_slow(g) or _is_slow(b):
            return False
        return _verify(g, b, float(timeout_s), t0)
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
    r"(?i:,?\s+(?:for\s+sure|clearly|definitely|certainly|surely|obviously|undoubtedly|indeed"
    r"|most\s+likely|likely|probably|therefore|thus),?)?"
    r"\s*[:=\-]?\s*"
    r"(?i:(?:option|choice)\s+)?"
    r"[*_]*\s*[\(\[]?\s*([A-Z])\s*[\)\]]?[*_]*"
    r"(?![A-Za-z0-9])"
)
_MC_PAREN = re.compile(r"[\(\[]\s*([A-Z])\s*[\)\]]")
_MC_KEYWORD = re.compile(r"(?i:\b(?:option|choice)\s+)([A-Z])(?![A-Za-z0-9])")
_MC_BARE = re.compile(r"(?<![A-Za-z0-9\\])([A-Z])[*_]*(?=\s*$|[ \t]*\n|[.,;:!?)])")
# a letter ruled out: "it can't be A or B", "not (A), (B) or (C)", "rules out option D"
_MC_LETTER_REF = r"(?i:(?:option|choice)\s+)?[\(\[]?[A-Z][\)\]]?(?![A-Za-z0-9])"
_MC_RULED_OUT = re.compile(
    r"(?i:\bnot|n't(?:\s+be)?|\bcannot\s+be|\bnor|\bexcept|\bexcluding|\brules?\s+out|\bruled\s+out"
    r"|\beliminates?|\beliminated|\brather\s+than|\binstead\s+of)\s+"
    rf"({_MC_LETTER_REF}(?:\s*(?:,|/|(?i:or|and|nor)\b)\s*{_MC_LETTER_REF})*)"
)
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
        return _last_standalone_letter(text, letters)
    except Exception:
        logger.debug("extract_choice failed", exc_info=True)
        return None


def _ruled_out_spans(text: str) -> list[tuple[int, int]]:
    """Where the text rules letters out ("not A or B"): a letter there is no answer."""
    return [m.span(1) for m in _MC_RULED_OUT.finditer(text)]


def _last_standalone_letter(text: str, letters: str) -> str | None:
    """The last option letter written as an answer: not an option label, not a letter ruled out."""
    skip = {m.start(1) for m in _MC_LABEL.finditer(text)}
    skip.update(pos for a, b in _ruled_out_spans(text) for pos in range(a, b))
    best_pos, best = -1, None
    for pat in (_MC_PAREN, _MC_KEYWORD, _MC_BARE):
        for m in pat.finditer(text):
            pos = m.start(1)
            if m.group(1) in letters and pos not in skip and pos > best_pos:
                best_pos, best = pos, m.group(1)
    return best


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
