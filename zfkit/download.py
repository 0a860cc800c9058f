"""Downloading Pascal VOC 2007: mirrors, resumable transfers, MD5 checks and safe extraction.

:func:`download_voc` fetches the tar archives (:data:`VOC2007_TRAINVAL`, :data:`VOC2007_TEST`)
from a list of mirrors (:data:`DEFAULT_MIRRORS` last) with :func:`fetch_archive`, which resumes a
cut transfer with an HTTP Range request and accepts a file only when its MD5 (:func:`md5sum`) is
the archive's; :func:`safe_extract` then unpacks it, refusing the whole archive if any member
would land outside the target folder. A marker file per extracted archive makes a second call
return at once, without any request.

Reference: Everingham, Van Gool, Williams, Winn, Zisserman (2010), "The PASCAL Visual Object
Classes (VOC) Challenge", IJCV 88(2); the archives and MD5s are those of the VOC2007 development
kit page (torchvision's VOC datasets check the same MD5s).
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from .atomic import write_json_atomic

__all__ = [
    "Archive", "VOC2007_TRAINVAL", "VOC2007_TEST", "DEFAULT_MIRRORS", "TransferCut", "md5sum",
    "read_json", "fetch_archive", "safe_extract", "download_voc",
]


@dataclass(frozen=True)
class Archive:
    """One tar archive: its file name on the mirrors, its MD5 and, when known, its size in bytes."""
    filename: str
    md5: str
    size: int | None = None


VOC2007_TRAINVAL = Archive("VOCtrainval_06-Nov-2007.tar", "c52e279531787c972589f7e41ab4ae64",
                           460_032_000)
VOC2007_TEST = Archive("VOCtest_06-Nov-2007.tar", "b6e924de25625d8de591ea690078ad9f")
# Tried in order after any mirrors the caller gives.
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/",   # the long-term official host
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/",    # the former host (now redirects)
)


class TransferCut(OSError):
    """The server closed the connection before it sent every byte (the partial file is kept)."""


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The MD5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: Path) -> dict:
    """The JSON object in ``path``, or ``{}`` when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _fetch(url: str, partial: Path, *, size: int | None, progress: bool, timeout: float) -> None:
    """Append what ``partial`` lacks of ``url`` to it, asking for the missing bytes with Range."""
    have = partial.stat().st_size if partial.exists() else 0
    if size is not None and have >= size:
        return                                   # every byte is here already; the MD5 decides
    headers = {"User-Agent": "zfkit"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:             # "range not satisfiable": nothing is missing
            return
        raise
    with response:
        content_range = response.headers.get("Content-Range", "")
        if have and not (response.status == 206 and content_range.startswith(f"bytes {have}-")):
            have = 0                             # the server ignored Range: start again
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None else size
        got = have
        with open(partial, "ab" if have else "wb") as f, \
                tqdm(total=expected, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=partial.name.removesuffix(".partial"), disable=not progress) as bar:
            try:
                while block := response.read(1 << 16):
                    f.write(block)
                    got += len(block)
                    bar.update(len(block))
            except http.client.IncompleteRead as exc:
                f.write(exc.partial)
                got += len(exc.partial)
    if expected is not None and got < expected:
        raise TransferCut(f"{url}: connection closed after {got:,} of {expected:,} bytes")


def fetch_archive(archive: Archive, folder: str | os.PathLike, mirrors: Sequence[str], *,
                  progress: bool = True, attempts: int = 3, timeout: float = 60.0) -> Path:
    """Download ``archive`` into ``folder`` from the first mirror that serves the right bytes.

    A copy already in ``folder`` whose MD5 matches is reused without any request. Otherwise the
    archive is streamed to ``<filename>.partial``; a cut transfer is resumed with an HTTP Range
    request (up to ``attempts`` times per mirror, and across mirrors); a file whose MD5 differs is
    deleted and the next mirror tried.

    Args:
        archive: file name, MD5 and (optionally) size.
        folder: where the archive is kept.
        mirrors: base URLs, tried in order; the file's URL is ``mirror + archive.filename``.
        progress: show a tqdm progress bar.
        attempts: tries per mirror when the connection is cut.
        timeout: seconds to wait for a server before giving up on it.
    Returns:
        The path of the verified archive.
    Raises:
        RuntimeError: no mirror gave a file with the right MD5 (the message lists every attempt,
            with the expected and actual checksums).
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
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + archive.filename
        for _ in range(attempts):
            try:
                _fetch(url, partial, size=archive.size, progress=progress, timeout=timeout)
            except TransferCut as exc:
                problems.append(str(exc))
                continue                          # resume from the same mirror
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                problems.append(f"{url}: {exc}")
                break                             # this mirror is dead or refuses: next one
            actual = md5sum(partial)
            if actual == archive.md5:
                os.replace(partial, final)
                return final
            partial.unlink()
            problems.append(f"{url}: MD5 {actual}, expected {archive.md5} (deleted)")
            break
    raise RuntimeError(
        f"could not get a verified {archive.filename} (expected MD5 {archive.md5}). Tried:\n  "
        + "\n  ".join(problems or ["no mirrors were given"])
        + f"\nAdd a working mirror (mirrors=[...] or --mirror URL), copy the archive into {folder} "
        "by hand, or set ZFKIT_VOC_ROOT to an existing VOCdevkit/VOC2007 folder.")


def safe_extract(tar_path: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Extract a tar archive into ``dest``, refusing the whole archive (before writing anything) if
    a member would land outside ``dest``: absolute paths, ``..``, links pointing out, devices.

    Raises:
        RuntimeError: naming the offending member.
    """
    tar_path, dest = Path(tar_path), Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()

    def inside(path: Path) -> bool:
        resolved = path.resolve()
        return resolved == dest or dest in resolved.parents

    with tarfile.open(tar_path) as tar:
        members = tar.getmembers()
        for member in members:
            target = dest / member.name
            if member.issym():
                link_ok = inside(target.parent / member.linkname)
            elif member.islnk():
                link_ok = inside(dest / member.linkname)
            else:
                link_ok = member.isfile() or member.isdir()
            if not inside(target) or not link_ok:
                raise RuntimeError(f"refusing to extract {tar_path.name}: member {member.name!r} "
                                   f"would land outside {dest} (or is a device); the archive is "
                                   "not a genuine VOC archive, delete it and download it again")
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(dest, members=members, **safe)


def download_voc(root: str | os.PathLike, *, test: bool = False,
                 mirrors: Sequence[str] | None = None, progress: bool = True,
                 archives: Sequence[Archive] | None = None, default_mirrors: bool = True,
                 timeout: float = 60.0) -> Path:
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
        tar_path = fetch_archive(archive, root, urls, progress=progress, timeout=timeout)
        safe_extract(tar_path, root)
        if not voc_root.is_dir():
            raise RuntimeError(f"{tar_path.name} held no VOCdevkit/VOC2007 folder: is it really a "
                               "VOC 2007 archive?")
        write_json_atomic(marker, {"archive": archive.filename, "md5": archive.md5})
    return voc_root
