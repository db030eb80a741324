"""`common.files` (atomic writes: a reader never sees half a file, a failed write leaves the old
content and no temporary file, new files get the usual permissions) and `common.ports` (a free
loopback port, never the same one twice to callers of one process)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from common.files import atomic_write, replacing
from common.ports import free_port


def test_atomic_write_creates_replaces_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "values.yaml"
    atomic_write(target, "a: 1\n")
    assert target.read_text() == "a: 1\n"
    atomic_write(target, b"a: 2\n", fsync=False)
    assert target.read_bytes() == b"a: 2\n"
    assert [p.name for p in target.parent.iterdir()] == ["values.yaml"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_write_keeps_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "processes.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crashed while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["processes.json"]


def test_free_ports_are_bindable_and_never_handed_out_twice() -> None:
    taken: set[int] = set()
    ports = [free_port(taken) for _ in range(50)] + [free_port() for _ in range(50)]
    assert len(set(ports)) == 100
    assert taken == set(ports[:50])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))
