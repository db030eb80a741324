"""`common.termination`: the record a child writes for its supervisor (valid JSON within the
kubelet's 4096 bytes whatever the message, nothing without `TEKSCORE_TERMINATION_LOG`, and read
back as None when absent or not a record)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.termination import LIMIT, TERMINATION_ENV, read_termination, write_termination


def test_a_record_round_trips_with_its_detail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "said.json"
    monkeypatch.setenv(TERMINATION_ENV, str(path))
    write_termination("Completed", "The flow completed.", records_in=3, records_out=3)
    record = read_termination(path)
    assert record is not None
    assert (record.reason, record.message) == ("Completed", "The flow completed.")
    assert record.detail == {"records_in": 3, "records_out": 3}
    write_termination("FlowFailed", "later news wins")
    assert json.loads(path.read_text()) == {"reason": "FlowFailed", "message": "later news wins"}


@pytest.mark.parametrize("message", ["x" * 10_000, "é" * 3_000, '"\\' * 4_000])
def test_a_long_message_is_cut_and_the_record_stays_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, message: str
) -> None:
    path = tmp_path / "said.json"
    monkeypatch.setenv(TERMINATION_ENV, str(path))
    write_termination("FlowFailed", message, records_in=1)
    assert len(path.read_bytes()) <= LIMIT
    record = read_termination(path)
    assert record is not None and record.detail == {"records_in": 1}
    assert record.message.endswith("...") and message.startswith(record.message[:-3])
    assert len(record.message) > 500


def test_no_variable_no_file_and_junk_reads_as_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TERMINATION_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    write_termination("Completed", "nowhere to go")
    assert list(tmp_path.iterdir()) == []
    assert read_termination(tmp_path / "absent.json") is None
    (tmp_path / "junk.json").write_text('{"message": "no reason"}')
    assert read_termination(tmp_path / "junk.json") is None


def test_a_file_longer_than_any_record_is_not_read_whole(tmp_path: Path) -> None:
    """The process writes its own record file (inside the sandbox too): a huge one is no record,
    and the supervisor reads no more than a record's size of it."""
    path = tmp_path / "huge.json"
    path.write_text('{"reason": "Completed", "message": "' + "x" * (4 * LIMIT) + '"}')
    assert read_termination(path) is None
    path.write_bytes(b"")
    assert read_termination(path) is None
