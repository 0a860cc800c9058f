"""The crops manifest: what a build cut, the digest of every crop, and whether a folder is one
zfkit made.

:mod:`zfkit.crops` writes ``manifest.json`` last; this module reads it back (:func:`read_manifest`),
checks the crops against their MD5s (:func:`verify_crops`: the content hash, the data cache's key,
is made of those same MD5s, so a crop truncated or edited in place is found and the hash cannot
describe other files), and decides whether a folder may be rebuilt (:func:`owned_files`): only a
folder zfkit made itself, i.e. whose manifest (or interrupted build) carries zfkit's format marker
and lists every file in its split folders. Anything else is refused, never deleted.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from .atomic import LOCK_NAME
from .classes import SPLITS, VOC_CLASSES
from .download import read_json
from .names import check_name

__all__ = ["MANIFEST", "FORMAT", "STAGING", "OWNED", "content_hash", "is_zfkit_manifest",
           "read_manifest", "verify_crops", "owned_files"]

MANIFEST = "manifest.json"
FORMAT = "zfkit crops manifest"     # the marker of a manifest zfkit wrote (since digests)
STAGING = ".building"               # where a build cuts its crops before they move into place
OWNED = "owned.json"                # STAGING/OWNED: every file the folder held from zfkit
_REQUIRED_KEYS = ("source", "classes", "counts", "skipped", "files", "sizes",
                  "source_checksums", "zfkit_version", "hash", "params")
_HOW = ("Build the crops with `python -m zfkit voc-crops --voc-root .../VOCdevkit/VOC2007 "
        "--out {out}` or, in a chapter, `zfkit.profiles.prepare_data(profile)`.")


def content_hash(files: dict[str, list[str]], digests: dict[str, list[str]]) -> str:
    """SHA-256 over the class list and every crop's path and MD5: the data cache's key."""
    lines = sorted(f"{path} {digest}" for split in files
                   for path, digest in zip(files[split], digests[split]))
    return hashlib.sha256("\n".join([",".join(VOC_CLASSES), *lines]).encode()).hexdigest()


def is_zfkit_manifest(data: Any) -> bool:
    """Whether ``data`` is a manifest zfkit wrote: its format marker (or, before digests, its
    ``params.crops_format`` and ``zfkit_version``), with ``files`` per split."""
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return False
    params = data.get("params")
    older = (isinstance(params, dict) and params.get("crops_format") == 1
             and "zfkit_version" in data)
    return data.get("format") == FORMAT or older


def read_manifest(crops_dir: str | os.PathLike) -> dict:
    """Read ``crops_dir/manifest.json`` and check the folder still holds what it lists.

    The manifest has: ``format``, ``source`` (``"generated-sample"`` or ``"voc2007"``),
    ``description``, ``voc_root`` (the tree it was cut from), ``classes`` (label order),
    ``splits``, ``images`` and ``counts`` ``{split: {class: n}}``, ``skipped``
    ``{split: {reason: n}}``, ``files``, ``sizes`` and ``digests`` ``{split: [...]}`` (crop paths
    relative to ``crops_dir``, their ``[width, height]`` and MD5, in the same order),
    ``matches_official_counts``, ``source_checksums``, ``params``, ``zfkit_version``, ``created``
    and ``hash`` (the content hash, :func:`content_hash`). Crop contents are checked by
    :func:`verify_crops` and as they are decoded (:mod:`zfkit.cache`).

    Raises:
        FileNotFoundError: no manifest (the folder was never built, or its build was interrupted).
        RuntimeError: the manifest is unreadable, not zfkit's, or the folder no longer matches it.
    """
    crops_dir = Path(crops_dir).expanduser()
    path = crops_dir / MANIFEST
    how = _HOW.format(out=crops_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no crops manifest at {path} (never built, or the build was "
                                f"interrupted). {how}")
    manifest = read_json(path)
    missing = [k for k in _REQUIRED_KEYS if k not in manifest]
    if missing or not is_zfkit_manifest(manifest):
        raise RuntimeError(f"crops manifest {path} is unreadable or lacks {missing or 'format'}. "
                           f"Delete {crops_dir} and rebuild. {how}")
    problems = []
    try:
        for name in manifest["classes"]:
            check_name(name, what="class name", source=path, fix=f"delete {crops_dir} and rebuild")
        for split, per_class in manifest["counts"].items():
            if split not in SPLITS:
                raise ValueError(f"{path}: unknown split {split!r}")
            for name, n in per_class.items():
                check_name(name, what="class name", source=path)
                folder = crops_dir / split / name
                on_disk = len(os.listdir(folder)) if folder.is_dir() else 0
                if on_disk != n:
                    problems.append(f"{split}/{name} holds {on_disk} files, the manifest says {n}")
        digests = manifest.get("digests")
        if digests is not None and content_hash(manifest["files"], digests) != manifest["hash"]:
            problems.append("its crop digests do not give its hash (the manifest was edited)")
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise RuntimeError(f"crops manifest {path} is malformed ({exc}). Delete {crops_dir} and "
                           f"rebuild. {how}") from exc
    if problems:
        raise RuntimeError(f"crops folder {crops_dir} no longer matches its manifest ("
                           + "; ".join(problems[:3]) + f"). Delete {crops_dir} and rebuild. {how}")
    return manifest


def verify_crops(crops_dir: str | os.PathLike, manifest: dict) -> list[str]:
    """Every listed crop whose bytes no longer have the manifest's MD5 (empty: all match, or the
    manifest predates digests)."""
    crops_dir, bad = Path(crops_dir), []
    for split, digests in (manifest.get("digests") or {}).items():
        for rel, md5 in zip(manifest["files"][split], digests):
            try:
                with open(crops_dir / rel, "rb") as f:
                    actual = hashlib.md5(f.read()).hexdigest()
            except OSError:
                actual = None
            if actual != md5:
                bad.append(rel)
    return bad


def _listed(data: Any) -> set[str]:
    files = data.get("files", {}) if isinstance(data, dict) else {}
    if isinstance(files, dict):
        return {f for listed in files.values() if isinstance(listed, list) for f in listed
                if isinstance(f, str)}
    return {f for f in files if isinstance(f, str)} if isinstance(files, list) else set()


def owned_files(out: str | os.PathLike) -> set[str] | None:
    """The files of ``out``'s split folders that zfkit wrote, when ``out`` may be (re)built.

    Returns:
        ``None`` when ``out`` does not exist or is empty; otherwise every path (relative to
        ``out``) that a zfkit manifest or interrupted build there lists.
    Raises:
        ValueError: ``out`` is a file, holds no zfkit build, or its split folders hold anything
            zfkit did not write there (it is then left untouched).
    """
    out = Path(out)
    if not out.exists():
        return None
    if not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder: give a folder for the crops")
    if not [p for p in out.iterdir() if p.name != LOCK_NAME]:
        return None
    records = [read_json(out / MANIFEST), read_json(out / STAGING / OWNED),
               read_json(out / STAGING / MANIFEST)]
    zfkit = [r for r in records if is_zfkit_manifest(r) or r.get("format") == FORMAT]
    refuse = (f"zfkit only rebuilds a crops folder that it made itself, and never deletes "
              f"anything else: choose an empty or new folder for --out, or move {out}'s "
              "contents away")
    if not zfkit:
        raise ValueError(f"{out} is not empty and holds no crops build made by zfkit (no "
                         f"{MANIFEST} with zfkit's format marker). {refuse}")
    listed = set().union(*map(_listed, zfkit))
    foreign = []
    for split in SPLITS:
        folder = out / split
        if not (folder.exists() or folder.is_symlink()):
            continue
        if folder.is_symlink() or not folder.is_dir():
            foreign.append(split)
            continue
        for path in folder.rglob("*"):
            rel = path.relative_to(out).as_posix()
            is_class_dir = (path.is_dir() and not path.is_symlink() and path.parent == folder
                            and path.name in VOC_CLASSES)
            if not is_class_dir and (path.is_symlink() or path.is_dir() or rel not in listed):
                foreign.append(rel)
    if foreign:
        raise ValueError(f"{out} holds {len(foreign)} file(s) or folder(s) that its manifest does "
                         f"not list, e.g. {foreign[:3]}. {refuse}")
    return listed
