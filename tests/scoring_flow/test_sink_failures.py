"""What sinks do when writing fails for one record or for all of them: a value the encoding
cannot carry (a 30-digit integer in JSON, a lone surrogate in UTF-8) sends that record to the
dead letter with its reason, and the job goes on; a disk that fills up fails the flow but leaves
no temp file behind, so the disk is free again (a real tmpfs mounted for the test)."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest

from ir.channels import FileChannel
from ir.types import FieldSpec
from scoring_flow.channels import file as file_channel
from scoring_flow.channels.file import FileSink
from scoring_flow.codecs import Encoder, decode
from scoring_flow.errors import SinkError
from tests.scoring_flow.conftest import FlowLauncher, assert_invariant, read_jsonl

BIG = 123456789012345678901234567890  # 30 digits: past 64 bits, what JSON encoders take


def test_a_value_the_encoding_cannot_carry_leaves_out_that_record_only():
    jsonl = Encoder("jsonl", None)
    data, rejected = jsonl.encode([{"a": 1}, {"a": BIG}, {"a": 3}])
    assert list(decode("jsonl", io.BytesIO(data), None)) == [{"a": 1}, {"a": 3}]
    assert rejected == {1: "cannot be written as jsonl: TypeError: Integer exceeds 64-bit range"}

    csv = Encoder("csv", None)
    data, rejected = csv.encode([{"a": "x"}, {"a": "y\ud800"}, {"a": "z"}])
    data += csv.end()
    assert data.decode().splitlines() == ["a", "x", "z"]
    assert list(rejected) == [1] and "surrogates not allowed" in rejected[1]


def test_an_avro_file_keeps_every_record_that_fits_and_stays_readable():
    schema = [FieldSpec(name="id", type="long"), FieldSpec(name="s", type="string")]
    avro = Encoder("avro", schema)
    data = avro.begin()
    chunk, rejected = avro.encode(
        [{"id": 1, "s": "a"}, {"id": 2, "s": "b\ud800"}, {"id": 3, "s": "c"}]
    )
    data += chunk
    chunk, rejected_too = avro.encode([{"id": 4, "s": "d\udfff"}])  # a block with nothing in it
    data += chunk + avro.encode([{"id": 5, "s": "e"}]).data + avro.end()
    assert list(rejected) == [1] and list(rejected_too) == [0]
    assert list(fastavro.reader(io.BytesIO(data))) == [
        {"id": 1, "s": "a"},
        {"id": 3, "s": "c"},
        {"id": 5, "s": "e"},
    ]


def test_a_30_digit_integer_in_a_csv_row_is_dead_lettered_and_the_flow_succeeds(
    flows: FlowLauncher, tmp_path: Path
):
    src = tmp_path / "in.csv"
    rows = [f"{i},{i * 10}" for i in range(20)]
    rows[7] = f"7,{BIG}"  # no schema: the cell is guessed an int, and JSON cannot carry it
    src.write_text("id,amount\n" + "\n".join(rows) + "\n")
    out, dead = tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    run = flows.run(
        {
            "name": "copy",
            "mode": "batch",
            "source": _file(src, "source", "csv"),
            "sink": _file(out, "sink"),
            "deadLetter": _file(dead, "sink"),
            "batchSize": 8,
        }
    )
    assert run.returncode == 0, run.log()
    assert [r["id"] for r in read_jsonl(out)] == [i for i in range(20) if i != 7]
    (letter,) = read_jsonl(dead)
    assert letter["step"] == "encode" and letter["flow"] == "copy"
    assert letter["reason"] == "cannot be written as jsonl: TypeError: Integer exceeds 64-bit range"
    assert letter["record"] == f'{{"id": 7, "amount": {BIG}}}'  # as JSON text: nothing lost
    done = run.event("flow completed")
    assert (done["records_in"], done["records_out"], done["records_failed"]) == (20, 19, 1)
    assert_invariant(done)


def _file(path: Path, direction: str, encoding: str = "jsonl") -> dict[str, Any]:
    return {
        "type": "file",
        "direction": direction,
        "format": {"encoding": encoding},
        "config": {"path": str(path)},
    }


# ------------------------------------------------------------------ a real full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs mounted for the test (needs root and mount rights)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root: the full-disk tests need a real full disk")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): no real full disk")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _free(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def test_a_sink_on_a_full_disk_fails_and_leaves_no_temp_file(small_disk: Path):
    free = _free(small_disk)
    spec = FileChannel.model_validate(_file(small_disk / "out.jsonl", "sink"))
    sink = FileSink(spec)

    async def fill() -> None:
        await sink.open()
        with pytest.raises(SinkError, match="No space left on device"):
            for _ in range(100):  # 100 x 8 KiB: far more than the disk holds
                await sink.write([{"pad": "x" * 8000}])
            await sink.close()
        await sink.abort()

    asyncio.run(fill())
    assert list(small_disk.iterdir()) == []
    assert _free(small_disk) == free  # the temp file's blocks are given back (its fd is closed)


def test_a_flow_that_fills_the_disk_fails_and_the_disk_is_free_again(
    flows: FlowLauncher, tmp_path: Path, small_disk: Path
):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(f'{{"id": {i}, "pad": "{"x" * 1000}"}}\n' for i in range(1000)))
    free = _free(small_disk)
    run = flows.run(
        {
            "name": "fill",
            "mode": "batch",
            "source": _file(src, "source"),
            "sink": _file(small_disk / "out.jsonl", "sink"),
            "batchSize": 50,
        }
    )
    assert run.returncode == 1
    said = run.termination()
    assert said["reason"] == "FlowFailed" and "No space left on device" in said["message"]
    assert list(small_disk.iterdir()) == []
    assert _free(small_disk) == free


def test_two_sinks_of_one_path_in_one_pid_do_not_share_a_temp_file(tmp_path: Path):
    """Sandboxed flows run in their own pid namespace, where every flow may have the same pid:
    two flows writing the same output must not write (and rename) one temp file. The last to
    close wins, whole; neither fails."""
    spec = FileChannel.model_validate(_file(tmp_path / "out.jsonl", "sink"))
    first, second = FileSink(spec), FileSink(spec)

    async def both() -> None:
        await first.open()
        await second.open()
        await first.write([{"by": "first", "i": i} for i in range(3)])
        await second.write([{"by": "second", "i": i} for i in range(2)])
        await first.close()
        await second.close()

    asyncio.run(both())
    assert read_jsonl(tmp_path / "out.jsonl") == [{"by": "second", "i": i} for i in range(2)]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_a_file_sink_writes_gathered_batches_in_order_and_an_abort_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The sink gathers encoded batches up to `WRITE_CHUNK` bytes before a write: the file holds
    every batch in order, those still gathered at `close` included; an abort after gathered
    (and written) batches leaves neither the output nor the temp file."""
    monkeypatch.setattr(file_channel, "WRITE_CHUNK", 100)  # a write every few batches
    spec = FileChannel.model_validate(_file(tmp_path / "out.jsonl", "sink"))
    written = [[{"batch": b, "i": i} for i in range(b % 3 + 1)] for b in range(20)]

    async def write(sink: FileSink, close: bool) -> None:
        await sink.open()
        for records in written:
            assert await sink.write(records) == {}
        await (sink.close() if close else sink.abort())

    asyncio.run(write(FileSink(spec), close=False))
    assert list(tmp_path.iterdir()) == []
    asyncio.run(write(FileSink(spec), close=True))
    assert read_jsonl(tmp_path / "out.jsonl") == [r for records in written for r in records]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
