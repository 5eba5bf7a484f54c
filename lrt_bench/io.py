"""Files: atomic writes (a killed process never leaves a half-written result, checkpoint or directory)
and JSON lines (the one reader, an atomic writer)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# A trained baseline's model dir carries this file ({"method": "ShorterBetter", "recipe": {...}}), written
# by `trainers.grpo` (policy: explicit) and read by the `lrt` backend to label its results.
METHOD_FILE = "lrt_method.json"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same directory and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """`atomic_write_bytes` of the UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """`atomic_write_text` of one JSON object per line, non-ASCII characters as they are."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def iter_jsonl(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) for each non-blank line of a JSON-lines file; `where` is "<path> line N", for
    errors about that row. A line that is not a JSON object is refused, naming the file and line."""
    from lrt_bench.errors import LRTError

    try:
        with open(path, encoding="utf-8") as f:
            lines = list(f)  # split on "\n" only: a row's text may hold U+2028 and other line breaks
    except UnicodeDecodeError:
        raise LRTError(f"{path}: not UTF-8 text: pass a JSON-lines file") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path} line {lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise LRTError(f"{where}: not valid JSON ({e.msg}): fix or remove that line") from None
        if not isinstance(row, dict):
            raise LRTError(f"{where}: expected a JSON object, got {type(row).__name__}: fix or remove that line")
        yield where, row


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows (JSON objects) of a JSON-lines file, blank lines skipped (errors as `iter_jsonl`)."""
    return [row for _, row in iter_jsonl(path)]


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temp directory beside `target`; on success it replaces `target` as a whole.

    On any exception the temp directory is removed and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        # A directory cannot be os.replace'd over a non-empty one: move the old one aside first.
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_writable_dir(path: str | Path, what: str = "--out", *, must_be_empty: bool = False) -> Path:
    """Refuse an output path before any work: a file, a dir that cannot be written, or (when
    `must_be_empty`) a non-empty dir. Creates nothing. Returns the expanded path."""
    from lrt_bench.errors import LRTError

    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise LRTError(f"{what} {path} is a file: pass a directory path")
    if must_be_empty and path.is_dir() and any(path.iterdir()):
        raise LRTError(f"{what} {path} is not empty: pass a new or empty directory")
    parent = next((q for q in [path, *path.parents] if q.exists()), Path("."))
    if not _can_create_in(parent):
        raise LRTError(f"{what} {path} cannot be written ({parent} is not writable): pick another directory")
    return path


def _can_create_in(folder: Path) -> bool:
    """Whether a file can be created in `folder`: tried, not guessed (os.access says yes to root even
    where the file system refuses, e.g. /proc or a read-only mount)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        fd, probe = tempfile.mkstemp(prefix=".lrt-write-probe-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True
