"""Unpacking a model that is a folder (a TensorFlow SavedModel) from its archive.

Does I/O (reads the archive, writes the folder). `.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`,
`.tar.xz` and `.zip` are read; members that would land outside the target (absolute paths,
`..`, links pointing out) are refused, with tarfile's `data` filter for tar archives and an
explicit check for zip. The folder is written beside its final place and renamed into it, so
a half-unpacked model is never loaded.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
ZIP_SUFFIXES = (".zip",)


class ArchiveError(Exception):
    """The archive cannot be unpacked; the message says why."""


def is_archive(path: Path) -> bool:
    """Whether the file's name ends like an archive this module reads."""
    name = path.name.lower()
    return name.endswith(TAR_SUFFIXES + ZIP_SUFFIXES)


def unpack(archive: Path, target: Path) -> Path:
    """Unpack `archive` into the folder `target` (replaced if present) and return it."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        if archive.name.lower().endswith(ZIP_SUFFIXES):
            _unzip(archive, partial)
        else:
            try:
                with tarfile.open(archive) as tar:
                    tar.extractall(partial, filter="data")
            except (tarfile.TarError, OSError) as exc:
                raise ArchiveError(f"cannot unpack {archive.name}: {exc}") from exc
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _unzip(archive: Path, target: Path) -> None:
    root = target.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                dest = (root / member).resolve()
                if not dest.is_relative_to(root):
                    raise ArchiveError(f"{archive.name}: member {member!r} leaves the folder")
            zf.extractall(root)  # noqa: S202 - every member was checked above
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"cannot unpack {archive.name}: {exc}") from exc
