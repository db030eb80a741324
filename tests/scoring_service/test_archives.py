"""Unpacking folder models from archives: tar and zip unpack into the target (replacing an
older one), and a member that would land outside it is refused without writing anything."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from scoring_service.archives import ArchiveError, is_archive, unpack


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("make,name", [(_tar, "m.tar.gz"), (_zip, "m.zip")])
def test_unpacks_and_replaces(tmp_path: Path, make: object, name: str) -> None:
    assert callable(make)
    target = tmp_path / "out"
    (target / "old").mkdir(parents=True)
    archive = make(tmp_path / name, {"saved_model.pb": b"pb", "variables/v.index": b"ix"})
    assert is_archive(archive)
    assert unpack(archive, target) == target
    assert (target / "saved_model.pb").read_bytes() == b"pb"
    assert (target / "variables" / "v.index").read_bytes() == b"ix"
    assert not (target / "old").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


@pytest.mark.parametrize("make,name", [(_tar, "evil.tgz"), (_zip, "evil.zip")])
def test_members_leaving_the_folder_are_refused(tmp_path: Path, make: object, name: str) -> None:
    assert callable(make)
    archive = make(tmp_path / name, {"ok.txt": b"1", "../escaped.txt": b"2"})
    with pytest.raises(ArchiveError):
        unpack(archive, tmp_path / "deep" / "out")
    assert not (tmp_path / "deep" / "escaped.txt").exists()
    assert not (tmp_path / "deep" / "out").exists()


def test_not_an_archive(tmp_path: Path) -> None:
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"plain bytes")
    with pytest.raises(ArchiveError, match=r"cannot unpack model\.tar\.gz"):
        unpack(bad, tmp_path / "out")
    assert not is_archive(tmp_path / "model.bin")
