"""Names read from data, and the files they point to, checked before they are used.

Image ids (``ImageSets/Main/*.txt``), file names and class names (VOC XML), and the fields of a
crops manifest (``source``, ``classes``, split names) all end up in a path zfkit reads or writes,
e.g. ``Annotations/<id>.xml`` or ``crops/<split>/<class>/<id>_<k>.jpg``. :func:`check_name` is the
one gate they pass: a plain file name, or a :class:`BadName` (a ``ValueError``) that names the
file, the line and what to do. Without it an id ``../../x`` or ``/etc/x`` would read and write
outside the folders given. :func:`check_regular_file` refuses, before opening it, a "file" that
is a FIFO, a device or a folder (opening a FIFO named ``.jpg`` would wait forever).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["MAX_NAME_BYTES", "BadName", "name_problem", "check_name", "check_regular_file"]

# The longest name accepted, in UTF-8 bytes: file systems allow 255 per path component, and a
# crop's file name adds "_<k>.jpg" to an image id.
MAX_NAME_BYTES = 200


class BadName(ValueError):
    """A name read from data that cannot safely be part of a path."""


def name_problem(name: object) -> str | None:
    """What makes ``name`` unsafe as one path component, or ``None`` when it is a plain name.

    Refused: anything but a non-empty ``str``; ``.`` and ``..``; a ``/`` or ``\\`` (so also an
    absolute path); NUL and other control characters; more than :data:`MAX_NAME_BYTES` bytes.
    """
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not text"
    if not name:
        return "is empty"
    if name in (".", ".."):
        return "is '.' or '..'"
    if "/" in name or "\\" in name:
        return "contains a path separator (it would point into another folder)"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a NUL or another control character"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    return None


def check_name(name: object, *, what: str, source: object, line: int | None = None,
               fix: str = "correct or remove it") -> str:
    """``name`` when it is a plain file name; otherwise a :class:`BadName` that says where it was.

    Args:
        name: the name as read from data.
        what: what the name is, e.g. ``"image id"`` or ``"class name"``.
        source: the file it was read from (named in the error).
        line: its line in ``source`` (1-based), when it has one.
        fix: what the reader should do, appended to the error.
    Returns:
        ``name``, unchanged.
    Raises:
        BadName: for an empty name, ``.``/``..``, a separator, NUL, or an over-long name.
    """
    problem = name_problem(name)
    if problem is None:
        return name  # type: ignore[return-value]
    shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
    where = f"{source}, line {line}" if line is not None else f"{source}"
    raise BadName(f"{where}: the {what} {shown} {problem}; a {what} must be a plain file name "
                  f"(no '/', '\\', '..', NUL, at most {MAX_NAME_BYTES} bytes). The file is not "
                  f"as zfkit wrote it or as VOC ships it: {fix}.")


def check_regular_file(path: str | os.PathLike, *, what: str = "file") -> Path:
    """``path`` when it is a regular file (or a link to one), checked without opening it.

    Raises:
        FileNotFoundError: it does not exist.
        ValueError: it is a folder, a FIFO, a socket or a device.
    """
    path = Path(path)
    mode = os.stat(path).st_mode               # follows links; FileNotFoundError when missing
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device")
        raise ValueError(f"{what} {path} is {kind}, not a regular file; it is not read")
    return path
