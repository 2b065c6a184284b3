"""The ground floor of the import graph: atomic file writes and the cache root.

Everything lsllm writes for a user (run files, configs, caches, benchmark results) goes through
these helpers: a temporary file in the same folder, flushed and fsynced, then renamed over the
final name, so a killed process never leaves a half-written file under that name. This module
imports nothing from lsllm, so any module may use it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    """`$LSLLM_CACHE` (``~`` expanded; unset or empty means the default ``~/.cache/lsllm``)."""
    return Path(os.environ.get("LSLLM_CACHE") or Path.home() / ".cache" / "lsllm").expanduser()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: Path, records: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def atomic_save_figure(figure: Any, path: Path, **savefig: Any) -> None:
    """A matplotlib figure saved under ``path`` atomically (format from the suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        figure.savefig(tmp, **{"dpi": 110, "bbox_inches": "tight", **savefig})
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_replace_dir(staging: Path, target: Path) -> None:
    """Move a fully written ``staging`` folder to ``target``, replacing what is there.

    A folder cannot be renamed over a non-empty one, so the old one is first moved aside
    (``.<name>.old-<pid>``) and deleted after the swap. A kill between the two renames leaves
    the complete old or new folder under a hidden name; `remove_stale` clears those.
    """
    staging, target = Path(staging), Path(target)
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)


def staging_dir(target: Path) -> Path:
    """A fresh hidden folder beside ``target`` to write it into before `atomic_replace_dir`."""
    target = Path(target)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    return staging


def remove_stale(target: Path) -> list[Path]:
    """Delete staging/old copies of ``target`` left by a killed process; returns what was removed."""
    target = Path(target)
    removed = []
    for pattern in (f".{target.name}.tmp-*", f".{target.name}.old-*"):
        for path in target.parent.glob(pattern):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    return removed
