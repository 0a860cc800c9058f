"""Downloading Pascal VOC 2007: mirrors, resumable transfers, MD5 checks and safe extraction.

:func:`download_voc` fetches the tar archives (:data:`VOC2007_TRAINVAL`, :data:`VOC2007_TEST`)
from a list of mirrors (:data:`DEFAULT_MIRRORS` last) with :func:`fetch_archive`, which resumes a
cut transfer with an HTTP Range request and accepts a file only when its MD5 (:func:`md5sum`) is
the archive's. Every transfer has an overall deadline (a server that trickles bytes is abandoned)
and a byte cap (the archive's size plus a margin: a stream longer than the archive is cut and
its mirror skipped); a malformed mirror URL is skipped with a message. :func:`safe_extract` then
unpacks it, refusing the whole archive, before writing anything, if any member could land
outside the target folder (absolute or ``..`` names, links pointing out, link chains, devices),
whether or not this Python's tarfile has the ``data`` filter. A marker file per extracted archive
makes a second call return at once, without any request.

Reference: Everingham, Van Gool, Williams, Winn, Zisserman (2010), "The PASCAL Visual Object
Classes (VOC) Challenge", IJCV 88(2); the archives and MD5s are those of the VOC2007 development
kit page (torchvision's VOC datasets check the same MD5s).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from tqdm.auto import tqdm

from .atomic import read_json, write_json_atomic  # read_json re-exported

__all__ = [
    "Archive", "VOC2007_TRAINVAL", "VOC2007_TEST", "DEFAULT_MIRRORS", "TransferCut",
    "DeadlinePassed", "byte_cap", "md5sum", "read_json", "fetch_archive", "safe_extract",
    "download_voc",
]


@dataclass(frozen=True)
class Archive:
    """One tar archive: its file name on the mirrors, its MD5 and, when known, its size in bytes."""
    filename: str
    md5: str
    size: int | None = None


VOC2007_TRAINVAL = Archive("VOCtrainval_06-Nov-2007.tar", "c52e279531787c972589f7e41ab4ae64",
                           460_032_000)
VOC2007_TEST = Archive("VOCtest_06-Nov-2007.tar", "b6e924de25625d8de591ea690078ad9f",
                       451_020_800)
# Tried in order after any mirrors the caller gives.
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/",   # the long-term official host
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/",    # the former host (now redirects)
)


class TransferCut(OSError):
    """The server closed the connection before it sent every byte (the partial file is kept)."""


class DeadlinePassed(TransferCut):
    """The overall deadline passed mid-transfer (the partial file is kept for the next call)."""


class _TooLong(OSError):
    """The server sent more bytes than the archive can have (the partial file is deleted)."""


_UNKNOWN_SIZE_CAP = 2 << 30      # bytes accepted from an archive whose size is not known


def byte_cap(archive: Archive) -> int:
    """The most bytes accepted for ``archive``: its size plus 1% and 1 MiB, or 2 GiB unknown."""
    return archive.size + archive.size // 100 + (1 << 20) if archive.size else _UNKNOWN_SIZE_CAP


def _mirror_problem(mirror: object) -> str | None:
    """Why ``mirror`` is not a usable base URL (``None``: it is)."""
    if not isinstance(mirror, str):
        return f"{mirror!r} is not a URL"
    try:
        parts = urllib.parse.urlsplit(mirror)
        parts.port                                  # raises for a port that is not a number
    except ValueError as exc:
        return f"{mirror!r} is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{mirror!r} is not an http:// or https:// URL"
    return None


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The MD5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, partial: Path, *, size: int | None, progress: bool, timeout: float,
           cap: int, deadline: float) -> None:
    """Append what ``partial`` lacks of ``url`` to it, asking for the missing bytes with Range.

    ``deadline`` is a ``time.monotonic()`` value: the transfer stops there (:class:`DeadlinePassed`,
    the partial file kept); more than ``cap`` bytes in all raise :class:`_TooLong`.
    """
    have = partial.stat().st_size if partial.exists() else 0
    if size is not None and have >= size:
        return                                   # every byte is here already; the MD5 decides
    headers = {"User-Agent": "zfkit"}
    if have:
        headers["Range"] = f"bytes={have}-"
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlinePassed(f"{url}: the deadline passed before the request")
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=min(timeout, left))
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:             # "range not satisfiable": nothing is missing
            return
        raise
    with response:
        content_range = response.headers.get("Content-Range", "")
        if have and not (response.status == 206 and content_range.startswith(f"bytes {have}-")):
            have = 0                             # the server ignored Range: start again
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None and length.isdigit() else size
        if expected is not None and expected > cap:
            raise _TooLong(f"{url}: the server announces {expected:,} bytes, more than the "
                           f"{cap:,} this archive can have")
        got = have
        with open(partial, "ab" if have else "wb") as f, \
                tqdm(total=expected, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=partial.name.removesuffix(".partial"), disable=not progress) as bar:
            try:                                 # read1: whatever has arrived, so the clock
                while block := response.read1(1 << 16):   # is checked however slow the server
                    f.write(block)
                    got += len(block)
                    bar.update(len(block))
                    if got > cap:
                        raise _TooLong(f"{url}: the server sent more than {cap:,} bytes, more "
                                       "than this archive can have; cut")
                    if time.monotonic() > deadline:
                        of = f" of {expected:,}" if expected else ""
                        raise DeadlinePassed(f"{url}: the deadline passed after {got:,}{of} "
                                             "bytes (a slow or stalled server)")
            except http.client.IncompleteRead as exc:
                f.write(exc.partial)
                got += len(exc.partial)
    if expected is not None and got < expected:
        raise TransferCut(f"{url}: connection closed after {got:,} of {expected:,} bytes")


def fetch_archive(archive: Archive, folder: str | os.PathLike, mirrors: Sequence[str], *,
                  progress: bool = True, attempts: int = 3, timeout: float = 60.0,
                  deadline: float = 3600.0, max_bytes: int | None = None) -> Path:
    """Download ``archive`` into ``folder`` from the first mirror that serves the right bytes.

    A copy already in ``folder`` whose MD5 matches is reused without any request. Otherwise the
    archive is streamed to ``<filename>.partial``; a cut transfer is resumed with an HTTP Range
    request (up to ``attempts`` times per mirror, and across mirrors); a file whose MD5 differs is
    deleted and the next mirror tried, and so is a stream longer than ``max_bytes`` (cut there).
    A malformed mirror URL is skipped with a message. After ``deadline`` seconds the transfer is
    abandoned, however slowly bytes still arrive; the partial file is kept for the next call.

    Args:
        archive: file name, MD5 and (optionally) size.
        folder: where the archive is kept.
        mirrors: base URLs, tried in order; the file's URL is ``mirror + archive.filename``.
        progress: show a tqdm progress bar.
        attempts: tries per mirror when the connection is cut.
        timeout: seconds to wait for a server before giving up on it.
        deadline: seconds for the whole download, every mirror included.
        max_bytes: the most bytes accepted (default :func:`byte_cap`: the size plus a margin).
    Returns:
        The path of the verified archive.
    Raises:
        RuntimeError: no mirror gave a file with the right MD5 in time (the message lists every
            attempt, with the expected and actual checksums).
    """
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / archive.filename
    problems: list[str] = []
    if final.exists():
        actual = md5sum(final)
        if actual == archive.md5:
            return final
        final.unlink()
        problems.append(f"{final}: MD5 {actual}, expected {archive.md5} (deleted)")
    partial = folder / f"{archive.filename}.partial"
    cap = byte_cap(archive) if max_bytes is None else max_bytes
    until = time.monotonic() + deadline
    for mirror in mirrors:
        bad_url = _mirror_problem(mirror)
        if bad_url is not None:
            print(f"zfkit: mirror skipped: {bad_url}", file=sys.stderr, flush=True)
            problems.append(f"{bad_url} (skipped)")
            continue
        url = mirror.rstrip("/") + "/" + archive.filename
        for _ in range(attempts):
            try:
                _fetch(url, partial, size=archive.size, progress=progress, timeout=timeout,
                       cap=cap, deadline=until)
            except DeadlinePassed as exc:
                problems.append(f"{exc}; gave up after the {deadline:g} s deadline (the partial "
                                f"file {partial.name} is kept: run again to resume)")
                raise _give_up(archive, folder, problems) from None
            except TransferCut as exc:
                problems.append(str(exc))
                continue                          # resume from the same mirror
            except _TooLong as exc:
                partial.unlink(missing_ok=True)
                problems.append(f"{exc} (deleted; mirror skipped)")
                break
            except (urllib.error.URLError, http.client.HTTPException, OSError,
                    ValueError) as exc:           # ValueError: a URL urllib cannot use
                problems.append(f"{url}: {exc}")
                break                             # this mirror is dead or refuses: next one
            actual = md5sum(partial)
            if actual == archive.md5:
                os.replace(partial, final)
                return final
            partial.unlink()
            problems.append(f"{url}: MD5 {actual}, expected {archive.md5} (deleted)")
            break
    raise _give_up(archive, folder, problems)


def _give_up(archive: Archive, folder: Path, problems: list[str]) -> RuntimeError:
    return RuntimeError(
        f"could not get a verified {archive.filename} (expected MD5 {archive.md5}). Tried:\n  "
        + "\n  ".join(problems or ["no mirrors were given"])
        + f"\nAdd a working mirror (mirrors=[...] or --mirror URL), copy the archive into {folder} "
        "by hand, or set ZFKIT_VOC_ROOT to an existing VOCdevkit/VOC2007 folder.")


def _member_problem(member: tarfile.TarInfo, links: set[PurePosixPath],
                    files: set[PurePosixPath]) -> str | None:
    """Why ``member`` could write outside the target (``None``: it cannot)."""
    name = PurePosixPath(member.name)
    if not member.name or member.name.startswith("/") or "\x00" in member.name:
        return "an absolute or empty name"
    if ".." in name.parts:
        return "a '..' in its name"
    if any(parent in links for parent in name.parents):
        return "a path through a link of the archive (a link chain)"
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        if not member.linkname or member.linkname.startswith("/") or ".." in target.parts:
            return f"a link to {member.linkname!r}, which is absolute or climbs with '..'"
        if member.issym() and (name.parent / target) in links | {name}:
            return "a link to another link (a link chain)"
        if member.islnk() and target not in files:
            return f"a hard link to {member.linkname!r}, which is not an earlier file of it"
        return None
    if not (member.isfile() or member.isdir()):
        return "a device, FIFO or other special file"
    return None


def safe_extract(tar_path: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Extract a tar archive into ``dest``, refusing the whole archive, before writing anything,
    if a member could land outside ``dest``.

    Refused: absolute names, ``..`` in a name, symbolic or hard links whose target is absolute or
    uses ``..``, a member reached through a link of the archive and a link to a link (chains such
    as ``s1 -> .`` then ``s1/s2 -> ..``), hard links to anything but an earlier file, devices and
    FIFOs, and a name that resolves outside ``dest`` through a link already on disk. These checks
    do not depend on tarfile's ``data`` filter, which is used as well where this Python has it.

    Raises:
        RuntimeError: naming the offending member; nothing was extracted.
    """
    tar_path, dest = Path(tar_path), Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    refuse = (f"refusing to extract {tar_path.name}: nothing was extracted. It is not a genuine "
              "VOC archive (those hold only files and folders): delete it and download it again")

    def inside(path: Path) -> bool:
        resolved = path.resolve()
        return resolved == dest or dest in resolved.parents

    try:
        tar = tarfile.open(tar_path)
    except (tarfile.TarError, OSError) as exc:
        raise RuntimeError(f"{tar_path} is not a readable tar archive ({exc}): delete it and "
                           "download it again") from exc
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise RuntimeError(f"{tar_path} is a damaged tar archive ({exc}): delete it and "
                               "download it again") from exc
        links = {PurePosixPath(m.name) for m in members if m.issym() or m.islnk()}
        files: set[PurePosixPath] = set()
        for member in members:
            problem = _member_problem(member, links, files)
            if problem is None and not inside(dest / member.name):
                problem = f"a path that resolves outside {dest}"
            if problem is not None:
                raise RuntimeError(f"{refuse}; member {member.name!r} has {problem}")
            if member.isfile():
                files.add(PurePosixPath(member.name))
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        try:
            tar.extractall(dest, members=members, **safe)
        except tarfile.TarError as exc:           # the data filter found what the checks missed
            raise RuntimeError(f"{refuse}; tarfile's filter refused it: {exc}") from exc


def download_voc(root: str | os.PathLike, *, test: bool = False,
                 mirrors: Sequence[str] | None = None, progress: bool = True,
                 archives: Sequence[Archive] | None = None, default_mirrors: bool = True,
                 timeout: float = 60.0, deadline: float = 3600.0) -> Path:
    """Download, verify and extract Pascal VOC 2007 into ``root/VOCdevkit/VOC2007``.

    Each archive is extracted once; a marker file then makes later calls return at once, without
    any request. Already have the data (e.g. on a mounted Google Drive)? Skip this and point
    :func:`build_crops` (or ``ZFKIT_VOC_ROOT``) at your ``VOCdevkit/VOC2007`` instead.

    Args:
        root: folder that receives the archives and ``VOCdevkit/``.
        test: also the test archive (``VOCtest_06-Nov-2007.tar``, with annotations).
        mirrors: base URLs tried first, in order.
        progress: show download progress bars.
        archives: the archive table (default: VOC 2007 trainval, plus test if ``test``); tests
            inject their own small archives here.
        default_mirrors: also try :data:`DEFAULT_MIRRORS` after ``mirrors``.
        timeout: seconds to wait for a server.
        deadline: seconds allowed for each archive's download (a stalled or trickling server
            is abandoned then; the partial file is kept, so the next call resumes).
    Returns:
        ``root/VOCdevkit/VOC2007``.
    """
    root = Path(root).expanduser()
    voc_root = root / "VOCdevkit" / "VOC2007"
    if archives is None:
        archives = (VOC2007_TRAINVAL, VOC2007_TEST) if test else (VOC2007_TRAINVAL,)
    urls = [*(mirrors or ()), *(DEFAULT_MIRRORS if default_mirrors else ())]
    if not urls:
        raise ValueError("no mirrors to try: pass mirrors=[...] or keep default_mirrors=True")
    for archive in archives:
        marker = voc_root / f".zfkit-extracted-{archive.filename}.json"
        if read_json(marker).get("md5") == archive.md5:
            continue
        tar_path = fetch_archive(archive, root, urls, progress=progress, timeout=timeout,
                                 deadline=deadline)
        safe_extract(tar_path, root)
        if not voc_root.is_dir():
            raise RuntimeError(f"{tar_path.name} held no VOCdevkit/VOC2007 folder: is it really a "
                               "VOC 2007 archive?")
        write_json_atomic(marker, {"archive": archive.filename, "md5": archive.md5})
    return voc_root
