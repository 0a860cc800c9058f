"""Atomic file writes, and the lock that keeps two writers out of one folder.

:func:`write_atomic` writes a temporary file beside the target, then renames it over the target:
a reader, or a process killed mid-write, sees the old file or the new one, never half of one.
Every file zfkit writes that something later trusts (checkpoints, caches, manifests, recorded
results) goes through it. A killed writer leaves its temporary ``.<name>.<pid>.<random>.partial``
behind; the next successful write of the same target removes it (:func:`remove_stale_partials`),
as does a resumed run. :func:`folder_lock` lets one process at a time build a folder (the crop
builder), and :func:`check_writable` finds an unwritable output folder before any work is done.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator

__all__ = ["read_json", "write_atomic", "write_json_atomic", "remove_stale_partials",
           "check_writable", "folder_lock", "LOCK_NAME", "FolderBusy"]

LOCK_NAME = ".zfkit-lock"
_STALE_AGE_S = 3600.0  # a temporary file untouched for an hour is stale whoever wrote it


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # someone else's live process
        return True
    except OSError:
        return False
    return True


def remove_stale_partials(path: str | Path) -> list[Path]:
    """Delete the temporary files that killed writers of ``path`` left beside it.

    A temporary file is stale when the process named in it (``.<name>.<pid>.<random>.partial``)
    is gone, or when it has not changed for an hour (which also covers the names older zfkit
    versions used, without a pid). Files of live writers are kept.

    Returns:
        The files deleted.
    """
    path = Path(path)
    prefix, removed = f".{path.name}.", []
    try:
        candidates = [p for p in path.parent.iterdir()
                      if p.name.startswith(prefix) and p.name.endswith(".partial")]
    except OSError:
        return removed
    for partial in candidates:
        middle = partial.name[len(prefix):-len(".partial")]
        pid_text = middle.split(".", 1)[0]
        try:
            old = time.time() - partial.stat().st_mtime > _STALE_AGE_S
            if pid_text.isdigit() and "." in middle and int(pid_text) != os.getpid():
                stale = old or not _pid_alive(int(pid_text))
            else:                    # our own pid (reused after a restart?) or no pid: by age
                stale = old
            if stale:
                partial.unlink()
                removed.append(partial)
        except OSError:
            continue                 # gone already, or not ours to delete
    return removed


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], Any], *,
                 before_replace: Callable[[Path], Any] | None = None) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``: a
    reader (or a run killed mid-write) sees the old file or the new one, never half of one.

    Args:
        path: the target.
        write: writes the content into the binary file object it is given.
        before_replace: called with the temporary file's path once it is complete and on disk,
            just before the rename (e.g. to record its digest first, see :mod:`zfkit.integrity`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".partial")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    remove_stale_partials(path)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON through :func:`write_atomic`."""
    text = json.dumps(data, indent=1, sort_keys=True)
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def check_writable(folder: str | Path, *, what: str = "the output folder") -> Path:
    """Make ``folder`` (and its parents) and prove a file can be written in it, before any work.

    Raises:
        ValueError: ``folder`` is a file.
        RuntimeError: it cannot be made or written to (the message names it and the reason).
    """
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{what} {folder} is a file, not a folder: give a folder (it is made "
                         "when it does not exist)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".zfkit-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise RuntimeError(f"cannot write to {what} {folder} ({exc.strerror or exc}): choose a "
                           "folder you can write to, or fix its permissions") from exc
    return folder


class FolderBusy(RuntimeError):
    """Another process holds a folder's lock for longer than the caller would wait."""


def _holder(lock: Path) -> str:
    try:
        text = lock.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "another process"


@contextmanager
def folder_lock(folder: str | Path, *, what: str, wait: float = 3600.0,
                poll: float = 0.2) -> Iterator[Path]:
    """Hold ``folder/.zfkit-lock`` (an ``fcntl`` lock holding the pid) while the body runs.

    A second process waits for the first (saying so once on stderr) up to ``wait`` seconds, then
    gets a :class:`FolderBusy` naming the holder's pid. The lock goes with the process that holds
    it, so a killed builder never leaves a stale lock.

    Args:
        folder: the folder to lock (made when missing).
        what: what is being done, for the messages (e.g. ``"building crops"``).
        wait: seconds to wait for another holder.
        poll: seconds between tries.
    """
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline, told = time.monotonic() + wait, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise FolderBusy(
                        f"{folder} is locked by {_holder(lock)}, which is {what} there (lock "
                        f"file {lock}); waited {wait:g} s. Let it finish and run again, or stop "
                        "that process first.") from None
                if not told:
                    print(f"zfkit: waiting for {_holder(lock)}, which is {what} in {folder}",
                          file=sys.stderr, flush=True)
                    told = True
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock
    finally:
        os.close(fd)                 # releases the lock


def read_json(path: str | Path) -> dict:
    """The JSON object in ``path``, or ``{}`` when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
