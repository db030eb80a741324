"""Pure logic of the flow, without processes: codecs (jsonl/csv/avro and Kafka messages),
schema checks, map/filter/python/score steps, OIP tensor packing, secrets, env settings,
counters and the report body."""

from __future__ import annotations

import asyncio
import io
import threading
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from ir.flows import FilterStep, MapStep, PythonStep
from ir.types import FieldSpec, SecretRef
from ir.values import ResolvedScoreStep
from scoring_flow import oip, steps
from scoring_flow.channels import base
from scoring_flow.channels.base import ShardFilter, SourceBatch, batches_from, shard_name
from scoring_flow.codecs import Encoder, MessageCodec, decode, jsonl_lines
from scoring_flow.config import RuntimeSettings, parse_flow_values
from scoring_flow.errors import ConfigError, RetriableScoringError, SecretError, StepError
from scoring_flow.items import Counters, Item, dead_letter_entry
from scoring_flow.reporting import report_body
from scoring_flow.schema_check import violation
from scoring_flow.secrets import env_var_name, resolve_secret
from scoring_flow.types import BadRecord

SCHEMA = [
    FieldSpec(name="id", type="long"),
    FieldSpec(name="x", type="double"),
    FieldSpec(name="label", type="string", nullable=True),
    FieldSpec(name="ok", type="boolean"),
]


def roundtrip(encoding: Any, records: list[dict[str, Any]], chunks: int = 3) -> list[Any]:
    enc = Encoder(encoding, SCHEMA)
    data = enc.begin()
    size = max(1, len(records) // chunks)
    for i in range(0, len(records), size):
        data += enc.encode(records[i : i + size]).data
    data += enc.end()
    return list(decode(encoding, io.BytesIO(data), SCHEMA))


record_st = hs.fixed_dictionaries(
    {
        "id": hs.integers(-(2**40), 2**40),
        "x": hs.floats(allow_nan=False, allow_infinity=False, width=64),
        "label": hs.none() | hs.text(hs.characters(blacklist_categories=["Cs"]), max_size=8),
        "ok": hs.booleans(),
    }
)


@given(hs.lists(record_st, max_size=20))
def test_jsonl_and_avro_round_trip_any_records(records: list[dict[str, Any]]) -> None:
    assert roundtrip("jsonl", records) == records
    assert roundtrip("avro", records) == records


def test_csv_round_trip_types_by_schema() -> None:
    records = [
        {"id": 1, "x": 0.5, "label": 'a,b "q"', "ok": True},
        {"id": 2, "x": -3.0, "label": "", "ok": False},
    ]
    assert roundtrip("csv", records) == records


def test_csv_without_schema_guesses_numbers_and_flags_ragged_rows() -> None:
    data = b"a,b,c\n1,2.5,x\n,7,y\n1,2\n1,2,3,4\n"
    out = list(decode("csv", io.BytesIO(data), None))
    assert out[0] == {"a": 1, "b": 2.5, "c": "x"}
    assert out[1] == {"a": None, "b": 7, "c": "y"}
    assert isinstance(out[2], BadRecord) and "fewer" in out[2].reason
    assert isinstance(out[3], BadRecord) and "more" in out[3].reason


def test_csv_cell_of_wrong_type_is_a_bad_record() -> None:
    out = list(decode("csv", io.BytesIO(b"id,x,label,ok\nseven,1,a,true\n"), SCHEMA))
    assert isinstance(out[0], BadRecord)
    assert "'id'" in out[0].reason


def test_jsonl_bad_lines_become_bad_records() -> None:
    out = list(decode("jsonl", io.BytesIO(b'{"a": 1}\n\nnope\n[1]\n'), None))
    assert out[0] == {"a": 1}
    assert isinstance(out[1], BadRecord) and out[1].reason.startswith("invalid JSON")
    assert isinstance(out[2], BadRecord) and "object" in out[2].reason


@pytest.mark.parametrize("size", [1, 2, 3, 5, 100])
def test_jsonl_chunks_of_the_source_decode_as_record_by_record(size: int) -> None:
    """The file source takes a chunk of lines at a time (`ShardFilter.take` over `JsonLines`):
    the same records, bad records and ordinals as the record-by-record path of a sharded
    source, blank lines skipped, whatever the chunk size."""
    text = b'{"a": 1}\n{"a": 2}\r\n\n  \nnope\n[1]\n{"a": 3}\n\n\n\n{"a": 4}\n{"a": 5}'
    chunked: list[Item] = []
    state = [0]
    decoder = decode("jsonl", io.BytesIO(text), None)
    while batch := ShardFilter(index=0, shards=1).take(decoder, size, state):
        assert len(batch) <= size
        chunked += batch
    one_by_one: list[Item] = []
    records = iter(list(decode("jsonl", io.BytesIO(text), None)))  # a plain iterator
    state2 = [0]
    while batch := ShardFilter(index=0, shards=1).take(records, size, state2):
        one_by_one += batch
    assert [i.ordinal for i in chunked] == list(range(7)) == [i.ordinal for i in one_by_one]
    assert [i.results for i in chunked] == [i.results for i in one_by_one]
    assert [i.results for i in chunked if i.alive] == [[{"a": n}] for n in (1, 2, 3, 4, 5)]
    reasons = [i.failure.reason[:12] for i in chunked if i.failure is not None]
    assert reasons == ["invalid JSON", "a record mus"]
    assert state == state2 == [7]


json_st = hs.recursive(
    hs.none() | hs.integers(-5, 5) | hs.text('},{a"', max_size=6),
    lambda inner: hs.lists(inner, max_size=3) | hs.dictionaries(hs.text("ab", max_size=2), inner),
    max_leaves=6,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.lists(hs.dictionaries(hs.sampled_from(["a", "},{", "b"]), json_st), max_size=6))
def test_jsonl_lines_are_the_bytes_of_encoding_record_by_record(records: list[Any]) -> None:
    """One orjson call for a whole batch gives the same bytes as one per record, also when a
    string or a nested list holds `},{` (where splitting the array at it would be wrong)."""
    expected = b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records)
    assert jsonl_lines(records) == expected
    assert Encoder("jsonl", None).encode(records).data == expected


def test_a_source_reads_several_batches_per_trip_and_hands_them_out_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`batches_from` reads `READ_CHUNK` records per trip to its thread but yields batches of at
    most `size`, in order, and none after `stop` (a streaming flow's SIGTERM)."""
    monkeypatch.setattr(base, "READ_CHUNK", 7)  # 2 batches of 3 per trip
    trips: list[int] = []
    shard = ShardFilter(index=0, shards=1)
    take = shard.take

    def counting(decoder: Any, size: int, state: list[int]) -> list[Item]:
        trips.append(size)
        return take(decoder, size, state)

    monkeypatch.setattr(shard, "take", counting)

    async def read(stop_after: int | None) -> list[SourceBatch]:
        stopped = threading.Event()
        out: list[SourceBatch] = []
        records = [{"i": i} for i in range(10)]
        async for batch in batches_from(
            lambda: iter(records), size=3, shard=shard, stopped=stopped
        ):
            out.append(batch)
            if len(out) == stop_after:
                stopped.set()
        return out

    batches = asyncio.run(read(None))
    assert [[i.results[0]["i"] for i in b.items] for b in batches] == [
        [0, 1, 2],
        [3, 4, 5],
        [6, 7, 8],
        [9],
    ]
    assert [i.ordinal for b in batches for i in b.items] == list(range(10))
    assert trips == [6, 6, 6]  # two full trips, then the end of the input
    assert len(asyncio.run(read(1))) == 1  # the second batch of the trip is not handed out


@pytest.mark.parametrize("encoding", ["jsonl", "avro", "csv"])
def test_message_codec_round_trip(encoding: Any) -> None:
    codec = MessageCodec(encoding, SCHEMA)
    record = {"id": 3, "x": 1.25, "label": None if encoding != "csv" else "", "ok": True}
    assert codec.decode(codec.encode(record)) == record
    assert isinstance(codec.decode(None), BadRecord)


def test_schema_violations_name_the_field() -> None:
    assert violation({"id": 1, "x": 2, "ok": False}, SCHEMA) is None
    assert violation({"id": True, "x": 1.0, "ok": True}, SCHEMA) == (
        "field 'id': expected long, got boolean"
    )
    reason = violation({"x": "1", "ok": None}, SCHEMA)
    assert reason is not None
    assert "'id' is missing" in reason and "'x': expected double, got string" in reason
    assert "'ok' is null" in reason


def items_of(*records: dict[str, Any]) -> list[Item]:
    return [Item.of(i, r) for i, r in enumerate(records)]


@pytest.mark.parametrize(
    ("name", "index", "shards", "expected"),
    [
        ("out/scored.jsonl", 0, 1, "out/scored.jsonl"),
        ("out/scored.jsonl", 2, 3, "out/scored-00002-of-00003.jsonl"),
        ("bucket-prefix/part", 0, 2, "bucket-prefix/part-00000-of-00002"),
        ("v1.2/scored.csv", 1, 2, "v1.2/scored-00001-of-00002.csv"),
        (".scored", 1, 2, ".scored-00001-of-00002"),
    ],
)
def test_shards_write_their_own_files(name: str, index: int, shards: int, expected: str) -> None:
    assert shard_name(name, index=index, shards=shards) == expected


def test_map_select_drop_rename_set() -> None:
    step = MapStep.model_validate(
        {
            "type": "map",
            "select": ["a", "b", "c"],
            "drop": ["c"],
            "rename": {"a": "A"},
            "set": {"k": 1},
        }
    )
    items = items_of({"a": 1, "b": 2, "c": 3, "d": 4})
    steps.apply_map(step, items)
    assert items[0].results == [{"A": 1, "b": 2, "k": 1}]


def test_filter_ops_and_fates() -> None:
    step = FilterStep.model_validate(
        {
            "type": "filter",
            "where": [
                {"field": "p.q", "op": "ge", "value": 2},
                {"field": "tag", "op": "in", "value": ["a", "b"]},
            ],
        }
    )
    items = items_of(
        {"p": {"q": 3}, "tag": "a"},
        {"p": {"q": 1}, "tag": "a"},
        {"tag": "a"},
        {"p": {"q": "x"}, "tag": "a"},
    )
    steps.apply_filter(step, items)
    assert items[0].alive
    assert items[1].filtered and items[2].filtered
    assert isinstance(items[3].failure, StepError) and "compare" in items[3].failure.reason
    any_step = FilterStep.model_validate(
        {
            "type": "filter",
            "match": "any",
            "where": [
                {"field": "z", "op": "exists"},
                {"field": "tag", "op": "notIn", "value": ["a"]},
            ],
        }
    )
    more = items_of({"z": 0}, {"tag": "a"}, {"tag": "b"})
    steps.apply_filter(any_step, more)
    assert [i.alive for i in more] == [True, False, True]


def test_python_step_isolates_the_record_that_raises() -> None:
    step = PythonStep(type="python", uri="file:///x.py", name="double")

    def fn(records: list[dict[str, Any]]) -> list[Any]:
        out: list[Any] = []
        for r in records:
            if r["x"] < 0:
                raise ValueError("negative")
            out.append(None if r["x"] == 0 else [{"y": r["x"]}, {"y": r["x"] * 2}])
        return out

    items = items_of({"x": 1}, {"x": -1}, {"x": 0})
    steps.apply_python(step, fn, items)
    assert items[0].results == [{"y": 1}, {"y": 2}]
    assert isinstance(items[1].failure, StepError)
    assert (items[1].failure.reason, items[1].failure.step) == ("ValueError: negative", "double")
    assert items[2].filtered


def test_score_mapping_merge_outputs_and_errors() -> None:
    step = ResolvedScoreStep(
        type="score",
        model="m",
        service="s",
        inputs={"f": "x"},
        outputs={"prediction": "label"},
        merge=True,
    )
    assert steps.score_payload(step, {"x": 1, "id": 7}) == {"f": 1}
    with pytest.raises(KeyError):
        steps.score_payload(step, {"id": 7})
    items = items_of({"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}, {"id": 5})
    pairs = [(i, i.results[0]) for i in items]
    answers = [
        {"prediction": "a", "p": 0.1},
        [{"prediction": "b"}, {"prediction": "c"}],
        {"$error": "bad input"},
        [],
        RetriableScoringError("HTTP 503: busy (gave up after 3 retries)", status=503),
    ]
    steps.apply_score_answers(step, pairs, answers)
    assert items[0].results == [{"id": 1, "label": "a"}]
    assert items[1].results == [{"id": 2, "label": "b"}, {"id": 2, "label": "c"}]
    assert isinstance(items[2].failure, StepError)
    assert (items[2].failure.reason, items[2].failure.step) == ("bad input", "score")
    assert items[3].alive and items[3].results == []
    assert isinstance(items[4].failure, StepError)
    assert items[4].failure.reason == "HTTP 503: busy (gave up after 3 retries)"
    replace = ResolvedScoreStep(type="score", model="m", service="s", merge=False)
    fresh = items_of({"id": 1})
    steps.apply_score_answers(replace, [(fresh[0], fresh[0].results[0])], [{"y": 2}])
    assert fresh[0].results == [{"y": 2}]


def test_oip_packing_single_2d_input_and_rows() -> None:
    meta = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}]}
    body = oip.infer_request([{"a": 1, "b": 2}, {"a": 3, "b": 4}], meta)
    assert body["inputs"] == [
        {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}
    ]
    rows = oip.infer_rows(
        {
            "outputs": [
                {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["p", "q"]},
                {
                    "name": "proba",
                    "shape": [2, 2],
                    "datatype": "FP64",
                    "data": [0.1, 0.9, 0.8, 0.2],
                },
            ]
        },
        2,
    )
    assert rows == [{"label": "p", "proba": [0.1, 0.9]}, {"label": "q", "proba": [0.8, 0.2]}]
    several = oip.infer_request(
        [{"a": 1, "s": "x"}],
        {"inputs": [{"name": "a", "datatype": "INT64"}, {"name": "s", "datatype": "BYTES"}]},
    )
    assert [i["data"] for i in several["inputs"]] == [[1], ["x"]]
    with pytest.raises(ValueError):
        oip.infer_rows({"outputs": [{"name": "y", "shape": [3], "data": [1, 2, 3]}]}, 2)


def test_secrets_from_env_then_file(tmp_path: Any) -> None:
    ref = SecretRef.model_validate({"secretRef": {"name": "s3-creds", "key": "access.key"}})
    assert env_var_name("s3-creds", "access.key") == "TEKSCORE_SECRET_S3_CREDS_ACCESS_KEY"
    assert resolve_secret(ref, {"TEKSCORE_SECRET_S3_CREDS_ACCESS_KEY": "v1"}) == "v1"
    (tmp_path / "s3-creds").mkdir()
    (tmp_path / "s3-creds" / "access.key").write_text("v2\n")
    assert resolve_secret(ref, {"TEKSCORE_SECRETS_DIR": str(tmp_path)}) == "v2"
    with pytest.raises(SecretError) as err:
        resolve_secret(ref, {"TEKSCORE_SECRETS_DIR": str(tmp_path / "none")})
    assert "TEKSCORE_SECRET_S3_CREDS_ACCESS_KEY" in str(err.value)


def test_runtime_settings_from_env() -> None:
    s = RuntimeSettings.from_env(
        {
            "TEKSCORE_JOB_ID": "j-1",
            "TEKSCORE_CALLBACK_URL": "http://h:1/",
            "TEKSCORE_PROGRESS_INTERVAL": "0.5",
            "JOB_COMPLETION_INDEX": "2",
        }
    )
    assert (s.job_id, s.callback_url, s.progress_interval, s.shard_index) == (
        "j-1",
        "http://h:1",
        0.5,
        2,
    )
    assert RuntimeSettings.from_env({}).callback_url is None
    # who the process is among the flow's processes: its pod (chart) or replica index (launcher)
    assert (s.pod, s.replica_index) == (None, None)
    named = RuntimeSettings.from_env(
        {"TEKSCORE_POD_NAME": "j-abc-flow-f-5d8c7-x2k4q", "TEKSCORE_REPLICA_INDEX": "1"}
    )
    assert (named.pod, named.replica_index) == ("j-abc-flow-f-5d8c7-x2k4q", 1)
    for bad in (
        {"TEKSCORE_PROGRESS_INTERVAL": "-1"},
        {"JOB_COMPLETION_INDEX": "x"},
        {"TEKSCORE_POD_NAME": "a/b"},
        {"TEKSCORE_REPLICA_INDEX": "-1"},
        {"TEKSCORE_LOG_FORMAT": "xml"},
    ):
        with pytest.raises(ConfigError):
            RuntimeSettings.from_env(bad)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError) as err:
        parse_flow_values({"name": "f", "mode": "batch", "source": {}, "sink": {}})
    assert "source" in str(err.value)


def test_a_logical_endpoint_must_be_resolved_before_the_flow_runs() -> None:
    channel = {"name": "c", "direction": "source", "type": "inline", "config": {"records": []}}
    endpoint: dict[str, Any] = {
        "service": "iris",
        "port": 8080,
        "protocol": "records",
        "models": ["iris"],
    }
    flow = {
        "name": "f",
        "mode": "batch",
        "source": channel,
        "sink": {**channel, "direction": "sink", "type": "discard", "config": {}},
        "services": {"iris": endpoint},
    }
    with pytest.raises(ConfigError) as err:
        parse_flow_values(flow)
    assert "services.iris: the endpoint of service 'iris' (port 8080) has no url" in str(err.value)
    endpoint["url"] = "http://127.0.0.1:5000"  # as the local runner resolves it
    assert parse_flow_values(flow).services["iris"].url == "http://127.0.0.1:5000"


def test_counters_invariant_and_report_body() -> None:
    items = items_of({"a": 1}, {"a": 2}, {"a": 3})
    items[0].fail(StepError("x", step="s"))
    items[1].filtered = True
    c = Counters(records_in=3)
    c.settle(items)
    assert c.as_dict() == {
        "records_in": 3,
        "records_out": 1,
        "records_failed": 1,
        "records_filtered": 1,
    }
    assert c.pending == 0
    body = report_body(c, shard=1, shards=2, pod="j-a-flow-f-5d8c7-x2k4q", error=None)
    assert (body["shard"], body["pod"], "replica" in body) == (1, "j-a-flow-f-5d8c7-x2k4q", False)
    assert report_body(c, shard=0, shards=1, replica=1, error=None)["replica"] == 1
    assert dead_letter_entry(items[0], flow="f") == {
        "record": {"a": 1},
        "reason": "x",
        "step": "s",
        "flow": "f",
    }
