"""Benchmark data for the lm-eval tasks, normalised to one doc schema per kind.

Where the data comes from
    By default each benchmark is read from the Hugging Face hub with `datasets.load_dataset`. With
    ``LRT_DATA_DIR`` set, it is read from local copies under that folder instead (the layout of the
    project's ``shared/data``; see ``BENCHMARKS`` for each file). The tiny world's eval split is read
    from ``$LRT_TINY_DIR/data/eval.jsonl`` (default ``~/.cache/lrt-bench/tiny``, where
    ``lrt-bench tiny build`` writes it).

    ============  =============================================  ================================
    benchmark     hub (path, config, split)                      under LRT_DATA_DIR
    ============  =============================================  ================================
    math500       HuggingFaceH4/MATH-500, -, test                math500/test.jsonl
    gsm8k         openai/gsm8k, main, test                       gsm8k/test.jsonl
    amc23         math-ai/amc23, -, test                         amc23/test.jsonl
    amc83         AI-MO/aimo-validation-amc, -, train            amc83/amc.jsonl
    lsat_ar/lr/rc hails/agieval-lsat-{ar,lr,rc}, -, test         lsat/lsat-{ar,lr,rc}.jsonl
    gpqa_diamond  Idavidrein/gpqa, gpqa_diamond, train (gated)   gpqa/dataset.zip (encrypted)
    ============  =============================================  ================================

Doc schema (what the tasks see)
    math   (MATH-500, GSM8K, AMC, tiny): ``{"id", "problem", "answer"}``; ``answer`` is the gold as a
           string (GSM8K: the number after ``####``; AMC: ``27.0`` becomes ``"27"``).
    choice (LSAT, GPQA): ``{"id", "passage", "question", "options", "answer"}``; ``options`` are the
           option texts without their letters, ``answer`` is the gold letter, ``passage`` may be "".

GPQA
    The local copy is the official ``dataset.zip`` (ZipCrypto, password published in GPQA's README).
    Python's ``zipfile`` decrypts it; the CSV is parsed from memory and never written anywhere. The
    four options are shuffled with a seed derived from the question text (sha256), so every run, on
    every machine, sees the same order; the gold letter follows the shuffle.

Errors
    A row without a needed field, a missing file or an unreachable hub raise a one-line `LRTError`
    that names the file (and line or row) or the hub id. Nothing here writes files.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import os
import random
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrt_bench.errors import LRTError
from lrt_bench.eval.grading import parse_gsm8k_gold
from lrt_bench.io import iter_jsonl

ENV_DATA_DIR = "LRT_DATA_DIR"
ENV_TINY_DIR = "LRT_TINY_DIR"
DEFAULT_TINY_DIR = "~/.cache/lrt-bench/tiny"
TINY_EVAL_FILE = "data/eval.jsonl"

# Published by the GPQA authors in their README ("password-protected with this password: ...").
GPQA_PASSWORD = b"deserted-untie-orchid"
GPQA_SHUFFLE_SALT = "lrt-bench/gpqa-options/v1"

LETTERS = "ABCDEFGHIJ"

Row = dict[str, Any]


@dataclass(frozen=True)
class Benchmark:
    name: str  # key used by the tasks, e.g. "math500"
    title: str  # for messages, e.g. "MATH-500"
    kind: str  # "math" | "choice"
    hub_path: str
    hub_config: str | None
    hub_split: str
    local: str  # path under LRT_DATA_DIR
    normalise: Callable[[Row, str, int], Row]  # (raw row, where, index) -> doc
    gated: bool = False


# ------------------------------------------------------------------------------------------------
# Row helpers
# ------------------------------------------------------------------------------------------------


def _field(row: Row, where: str, *names: str) -> Any:
    """The first of `names` present in the row (not None); a one-line LRTError naming the row if none."""
    for name in names:
        value = row.get(name)
        if value is not None:
            return value
    alt = f" (or {', '.join(repr(n) for n in names[1:])})" if len(names) > 1 else ""
    raise LRTError(f"{where}: missing field {names[0]!r}{alt}")


def _text(row: Row, where: str, *names: str) -> str:
    value = _field(row, where, *names)
    text = str(value).strip()
    if not text:
        raise LRTError(f"{where}: field {names[0]!r} is empty")
    return text


def _answer_text(row: Row, where: str, *names: str) -> str:
    """A gold answer as text: integral floats (AMC's ``27.0``) lose their ``.0``."""
    value = _field(row, where, *names)
    if isinstance(value, bool):
        raise LRTError(f"{where}: field {names[0]!r} is a boolean, not an answer")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    if not text:
        raise LRTError(f"{where}: field {names[0]!r} is empty")
    return text


def _doc_id(row: Row, prefix: str, index: int, *names: str) -> str:
    for name in names:
        value = row.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return f"{prefix}-{index}"


# ------------------------------------------------------------------------------------------------
# Normalisers: raw row (local copy or hub) -> doc
# ------------------------------------------------------------------------------------------------


def _norm_math500(row: Row, where: str, index: int) -> Row:
    return {
        "id": _doc_id(row, "math500", index, "unique_id"),
        "problem": _text(row, where, "problem"),
        "answer": _answer_text(row, where, "answer"),
    }


def _norm_gsm8k(row: Row, where: str, index: int) -> Row:
    field = _text(row, where, "answer")
    try:
        gold = parse_gsm8k_gold(field)
    except LRTError as e:
        raise LRTError(f"{where}: {e}") from None
    return {"id": _doc_id(row, "gsm8k", index, "id"), "problem": _text(row, where, "question"), "answer": gold}


def _norm_amc(prefix: str) -> Callable[[Row, str, int], Row]:
    def norm(row: Row, where: str, index: int) -> Row:
        return {
            "id": _doc_id(row, prefix, index, "id"),
            "problem": _text(row, where, "problem", "question"),
            "answer": _answer_text(row, where, "answer"),
        }

    return norm


_OPTION_LABEL = re.compile(r"^\s*\(\s*([A-Z])\s*\)\s*")


def _strip_label(option: str, position: int) -> str:
    """``"(B)text"`` at position 1 -> ``"text"``; a label that does not match its position stays."""
    m = _OPTION_LABEL.match(option)
    if m and m.group(1) == LETTERS[position]:
        return option[m.end() :].strip()
    return option.strip()


def _split_agieval_query(query: str) -> tuple[str, str]:
    """(passage, question) from the hub's AGIEval ``query`` ("[passage ]Q: question Answer Choices: ...")."""
    head = query
    cut = head.rfind(" Answer Choices:")
    if cut < 0:
        cut = head.rfind("Answer Choices:")
    if cut >= 0:
        head = head[:cut]
    q = head.rfind("Q: ")
    if q < 0:
        return "", head.strip()
    return head[:q].strip(), head[q + 3 :].strip()


def _norm_lsat(section: str) -> Callable[[Row, str, int], Row]:
    prefix = f"lsat-{section}"

    def norm(row: Row, where: str, index: int) -> Row:
        if "query" in row and "options" not in row:  # hub copy (hails/agieval-lsat-*): query/choices/gold
            passage, question = _split_agieval_query(_text(row, where, "query"))
            raw_options = _field(row, where, "choices")
            gold = _field(row, where, "gold")
            gold = gold[0] if isinstance(gold, (list, tuple)) and gold else gold
            if not isinstance(gold, int) or isinstance(gold, bool):
                raise LRTError(f"{where}: field 'gold' must be an option index, got {gold!r}")
            label = LETTERS[gold] if 0 <= gold < len(LETTERS) else "?"
        else:  # AGIEval's own jsonl: passage/question/options/label
            passage = str(row.get("passage") or "").strip()
            question = _text(row, where, "question")
            raw_options = _field(row, where, "options")
            label = _text(row, where, "label").strip("() ").upper()
        if not isinstance(raw_options, (list, tuple)) or len(raw_options) < 2:
            raise LRTError(f"{where}: field 'options' must be a list of at least 2 options")
        options = [_strip_label(str(o), i) for i, o in enumerate(raw_options)]
        if label not in LETTERS[: len(options)]:
            raise LRTError(f"{where}: gold label {label!r} is not one of {LETTERS[: len(options)]}")
        return {"id": f"{prefix}-{index}", "passage": passage, "question": question,
                "options": options, "answer": label}

    return norm


def shuffle_options(question: str, correct: str, incorrect: list[str]) -> tuple[list[str], str]:
    """(options in a fixed per-question order, gold letter). The order depends on the question only."""
    digest = hashlib.sha256(f"{GPQA_SHUFFLE_SALT}\n{question}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    original = [correct, *incorrect]
    order = list(range(len(original)))
    rng.shuffle(order)
    return [original[i] for i in order], LETTERS[order.index(0)]


def _norm_gpqa(row: Row, where: str, index: int) -> Row:
    question = _text(row, where, "Question")
    correct = _text(row, where, "Correct Answer")
    incorrect = [_text(row, where, f"Incorrect Answer {i}") for i in (1, 2, 3)]
    options, gold = shuffle_options(question, correct, incorrect)
    return {"id": _doc_id(row, "gpqa", index, "Record ID"), "passage": "", "question": question,
            "options": options, "answer": gold}


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("math500", "MATH-500", "math", "HuggingFaceH4/MATH-500", None, "test",
                  "math500/test.jsonl", _norm_math500),
        Benchmark("gsm8k", "GSM8K", "math", "openai/gsm8k", "main", "test", "gsm8k/test.jsonl", _norm_gsm8k),
        Benchmark("amc23", "AMC 2023", "math", "math-ai/amc23", None, "test", "amc23/test.jsonl",
                  _norm_amc("amc23")),
        Benchmark("amc83", "AMC 2022-23 (83)", "math", "AI-MO/aimo-validation-amc", None, "train",
                  "amc83/amc.jsonl", _norm_amc("amc83")),
        *(
            Benchmark(f"lsat_{s}", f"LSAT-{s.upper()}", "choice", f"hails/agieval-lsat-{s}", None, "test",
                      f"lsat/lsat-{s}.jsonl", _norm_lsat(s))
            for s in ("ar", "lr", "rc")
        ),
        Benchmark("gpqa_diamond", "GPQA-diamond", "choice", "Idavidrein/gpqa", "gpqa_diamond", "train",
                  "gpqa/dataset.zip", _norm_gpqa, gated=True),
    )
}


# ------------------------------------------------------------------------------------------------
# Readers (all in memory)
# ------------------------------------------------------------------------------------------------


def read_gpqa_zip(path: Path, subset: str = "diamond") -> Iterator[tuple[str, Row]]:
    """(where, row) for each row of ``dataset/gpqa_<subset>.csv``, decrypted and parsed in memory."""
    member = f"dataset/gpqa_{subset}.csv"
    try:
        with zipfile.ZipFile(path) as zf:
            raw = zf.read(member, pwd=GPQA_PASSWORD)
    except zipfile.BadZipFile:
        raise LRTError(f"{path}: not a zip archive (expected GPQA's dataset.zip)") from None
    except KeyError:
        raise LRTError(f"{path}: has no {member} (expected GPQA's dataset.zip)") from None
    except RuntimeError as e:  # wrong password, unsupported encryption
        raise LRTError(f"{path}: cannot decrypt {member} ({' '.join(str(e).split())})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LRTError(f"{path}:{member}: not UTF-8 text") from None
    del raw
    for i, row in enumerate(csv.DictReader(io.StringIO(text, newline="")), 1):
        yield f"{path}:{member} row {i}", row


def _read_hub(bench: Benchmark) -> Iterator[tuple[str, Row]]:
    hub = bench.hub_path + (f" ({bench.hub_config})" if bench.hub_config else "")
    try:
        import datasets

        ds = datasets.load_dataset(bench.hub_path, bench.hub_config, split=bench.hub_split)
    except Exception as e:  # noqa: BLE001 -- network, gating, missing dataset: one actionable line
        detail = " ".join(str(e).split())[:300] or type(e).__name__
        gated = " It is gated: accept its terms on the hub and log in (`hf auth login`)." if bench.gated else ""
        raise LRTError(
            f"could not load {bench.title} from the Hugging Face hub ({hub}): {type(e).__name__}: {detail}."
            f"{gated} For offline use set {ENV_DATA_DIR} to a folder with {bench.local}"
        ) from None
    for i, row in enumerate(ds):
        yield f"{hub} {bench.hub_split} row {i}", dict(row)


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------


def data_dir() -> Path | None:
    """``$LRT_DATA_DIR`` as an absolute path, or None when unset (read from the hub)."""
    value = os.environ.get(ENV_DATA_DIR, "").strip()
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise LRTError(f"{ENV_DATA_DIR}={value} is not a directory")
    return path


def tiny_dir() -> Path:
    """``$LRT_TINY_DIR`` (default ``~/.cache/lrt-bench/tiny``) as an absolute path."""
    value = os.environ.get(ENV_TINY_DIR, "").strip() or DEFAULT_TINY_DIR
    return Path(value).expanduser().resolve()


_cache: dict[tuple, list[Row]] = {}  # local sources only: (name, path, mtime, size) -> docs


def _normalise_all(bench: Benchmark, rows: Iterator[tuple[str, Row]], source: str) -> list[Row]:
    docs = [bench.normalise(row, where, i) for i, (where, row) in enumerate(rows)]
    if not docs:
        raise LRTError(f"{source}: no rows")
    return docs


def load_docs(name: str) -> list[Row]:
    """The normalised docs of benchmark `name` (a key of `BENCHMARKS`), from LRT_DATA_DIR or the hub."""
    if name not in BENCHMARKS:
        raise LRTError(f"unknown benchmark {name!r}: use one of {', '.join(BENCHMARKS)}")
    bench = BENCHMARKS[name]
    root = data_dir()
    if root is None:
        return _normalise_all(bench, _read_hub(bench), bench.hub_path)
    path = root / bench.local
    if not path.is_file():
        raise LRTError(
            f"{ENV_DATA_DIR}={root} has no {bench.local} for {bench.title} (expected the file {path})"
        )
    stat = path.stat()
    key = (name, str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _cache:
        rows = read_gpqa_zip(path) if path.suffix == ".zip" else iter_jsonl(path)
        _cache[key] = _normalise_all(bench, rows, str(path))
    return copy.deepcopy(_cache[key])


def load_tiny_docs(root: str | Path | None = None) -> list[Row]:
    """The tiny world's eval split as math docs; `root` defaults to `tiny_dir()`."""
    base = Path(root).expanduser().resolve() if root is not None else tiny_dir()
    path = base / TINY_EVAL_FILE
    if not path.is_file():
        raise LRTError(
            f"tiny world eval data not found at {path}: run `lrt-bench tiny build` or set {ENV_TINY_DIR}"
        )
    docs = []
    for i, (where, row) in enumerate(iter_jsonl(path)):
        doc = {"id": _doc_id(row, "tiny", i, "id"), "problem": _text(row, where, "problem"),
               "answer": _answer_text(row, where, "answer")}
        # The number of operations, when the world says it: the demo's findings break accuracy down by it.
        if isinstance(row.get("steps"), int) and not isinstance(row["steps"], bool):
            doc["steps"] = row["steps"]
        docs.append(doc)
    if not docs:
        raise LRTError(f"{path}: no rows")
    return docs


def as_dataset(docs: list[Row]):
    """An in-memory ``DatasetDict({"test": ...})``, the shape lm-eval's ``custom_dataset`` returns."""
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def lm_eval_dataset(name: str, **_metadata: Any):
    """lm-eval ``custom_dataset`` for benchmark `name`; lm-eval passes task metadata as kwargs (ignored)."""
    return as_dataset(load_docs(name))


def lm_eval_tiny_dataset(**_metadata: Any):
    return as_dataset(load_tiny_docs())
