"""Integrity: a SHA-256 recorded beside every large file zfkit writes and later trusts.

``torch.load`` does not check a zip's CRCs and a cached tensor has no checksum at all, so a
flipped byte in ``last.pt`` or in the ``uint8`` cache would be used without a word. Checkpoints
(``last.pt``, ``best.pt``) and caches are therefore written with :func:`write_verified`, which
hashes the bytes as they are written and keeps ``<file>.sha256`` (JSON: size and SHA-256) beside
the file; :func:`verify_file` checks a file against it before it is loaded. (Crops are covered
the same way by the per-file digests in their manifest, see :mod:`zfkit.crops`.)

The record is written *before* the rename that publishes the new file, listing the new digest and
the one of the file it replaces, and is reduced to the new digest after the rename: a process
killed at any moment leaves a file that matches its record, so exact resume after a kill still
works.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import IO, Any, Callable

from .atomic import write_atomic, write_json_atomic

__all__ = ["SUFFIX", "IntegrityError", "sidecar", "sha256_file", "write_verified",
           "verify_file"]

SUFFIX = ".sha256"
_FORMAT = "zfkit-sha256/1"


class IntegrityError(RuntimeError):
    """A file no longer has the size and SHA-256 recorded when zfkit wrote it."""


def sidecar(path: str | Path) -> Path:
    """Where the digest of ``path`` is kept: ``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class _Hashing:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, f: IO[bytes]):
        self._f, self.digest, self.size = f, hashlib.sha256(), 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.size += view.nbytes
        return self._f.write(view)

    def flush(self) -> None:
        self._f.flush()


def _entries(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (size, digest) a record accepts: the current one first."""
    out = [{"size": record.get("size"), "sha256": record.get("sha256")}]
    out += [e for e in record.get("also", []) if isinstance(e, dict)]
    return [e for e in out if isinstance(e.get("sha256"), str) and isinstance(e.get("size"), int)]


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(sidecar(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"the digest file {sidecar(path)} is unreadable ({exc})") from exc
    if not isinstance(record, dict) or record.get("format") != _FORMAT or not _entries(record):
        raise IntegrityError(f"the digest file {sidecar(path)} is not one zfkit wrote")
    return record


def write_verified(path: str | Path, write: Callable[[IO[bytes]], Any]) -> str:
    """Write ``path`` atomically (:func:`zfkit.atomic.write_atomic`) and record its SHA-256.

    Args:
        path: the target.
        write: writes the content into the (write-only) file object it is given.
    Returns:
        The SHA-256 of what was written.
    """
    path = Path(path)
    try:
        old = _entries(_read_record(path) or {})
    except IntegrityError:
        old = []                     # a broken record protects nothing; the new one replaces it
    hashing: list[_Hashing] = []

    def counted(f: IO[bytes]) -> None:
        hashing.append(_Hashing(f))
        write(hashing[0])  # type: ignore[arg-type]

    def record(_tmp: Path) -> None:  # before the rename: the old file and the new both match
        h = hashing[0]
        write_json_atomic(sidecar(path), {"format": _FORMAT, "file": path.name, "size": h.size,
                                          "sha256": h.digest.hexdigest(), "also": old})

    write_atomic(path, counted, before_replace=record)
    h = hashing[0]
    write_json_atomic(sidecar(path), {"format": _FORMAT, "file": path.name, "size": h.size,
                                      "sha256": h.digest.hexdigest(), "also": []})
    return h.digest.hexdigest()


def verify_file(path: str | Path, *, what: str, remedy: str) -> bool:
    """Check ``path`` against its ``.sha256`` record before it is trusted.

    Args:
        path: the file.
        what: what it is, for the message (e.g. ``"checkpoint"``).
        remedy: what the reader should do when it does not match (the command that rebuilds it).
    Returns:
        ``True`` when the file matches its record; ``False`` when there is no record (a file
        written by an older zfkit: the caller decides whether to trust it).
    Raises:
        IntegrityError: the size or the SHA-256 differs, or the record is unreadable; the message
            names the file, both digests and ``remedy``.
    """
    path = Path(path)
    try:
        record = _read_record(path)
    except IntegrityError as exc:
        raise IntegrityError(f"{what} {path} cannot be verified: {exc}. {remedy}") from None
    if record is None:
        return False
    entries = _entries(record)
    size = os.stat(path).st_size
    if any(e["size"] == size for e in entries):
        actual = sha256_file(path)
        if any(e["size"] == size and e["sha256"] == actual for e in entries):
            return True
        found = f"SHA-256 {actual}"
    else:
        found = f"{size:,} bytes"
    expected = f"{entries[0]['size']:,} bytes, SHA-256 {entries[0]['sha256']}"
    raise IntegrityError(f"{what} {path} is corrupt: it has {found}, but zfkit wrote "
                         f"{expected} (recorded in {sidecar(path)}). {remedy}")
