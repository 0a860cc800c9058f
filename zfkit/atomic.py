"""Atomic file writes: a temporary file beside the target, then a rename.

A reader, or a process killed mid-write, sees the old file or the new one, never half of one. Every
file zfkit writes that something later trusts (checkpoints, caches, manifests, recorded results)
goes through :func:`write_atomic`.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["write_atomic", "write_json_atomic"]


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``: a
    reader (or a run killed mid-write) sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON through :func:`write_atomic`."""
    text = json.dumps(data, indent=1, sort_keys=True)
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))
