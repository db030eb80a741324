"""FastScore stream descriptors as DataChannels (`ir.fastscore`): every descriptor form of the
FastScore streams guide and baked-engine page becomes the channel it means, whatever is not
supported is refused by name with the list of what is; and the same descriptors read as IR or
channel-registry files, serving as a source or a sink as a flow names them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import ir
from ir.errors import IRValidationError
from ir.fastscore import DescriptorError, convert

FIELDS = [{"name": "x", "type": "double", "nullable": False}]


def spec(descriptor: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return convert(descriptor, name="s", **kwargs).spec


@pytest.mark.parametrize(
    ("descriptor", "expected"),
    [
        # the streams guide's shortcut and full forms of Transport
        (
            {"Transport": "discard"},
            {"direction": "sink", "format": {"encoding": "jsonl"}, "type": "discard", "config": {}},
        ),
        (
            {
                "Transport": {"Type": "file", "Path": "/tmp/data/customers.jsons"},
                "Loop": True,
                "Envelope": {"Type": "delimited"},
                "Encoding": "json",
            },
            {
                "direction": "source",
                "format": {"encoding": "jsonl"},
                "type": "file",
                "config": {"path": "/tmp/data/customers.jsons", "loop": True},
            },
        ),
        (
            {
                "Transport": {
                    "Type": "kafka",
                    "BootstrapServers": ["kafka:9092"],
                    "Topic": "output",
                },
                "Encoding": "json",
            },
            {
                "direction": "source",
                "format": {"encoding": "jsonl"},
                "type": "kafka",
                "config": {"bootstrapServers": "kafka:9092", "topic": "output"},
            },
        ),
        (
            {
                "Transport": {
                    "Type": "Kafka",
                    "BootstrapServers": ["a:9092", "b:9092"],
                    "Topic": "t",
                    "Partition": 0,
                    "MaxWaitTime": 8388607,
                },
                "SkipToRecord": "latest",
                "Encoding": "avro-binary",
                "Envelope": None,
                "Schema": {
                    "type": "record",
                    "name": "X",
                    "fields": [{"name": "x", "type": "double"}],
                },
            },
            {
                "direction": "source",
                "format": {"encoding": "avro", "schema": FIELDS},
                "type": "kafka",
                "config": {
                    "bootstrapServers": "a:9092,b:9092",
                    "topic": "t",
                    "startFrom": "latest",
                },
            },
        ),
        (
            {"Transport": {"Type": "REST"}, "Encoding": "json"},
            {
                "direction": "source",
                "format": {"encoding": "jsonl"},
                "type": "http",
                "config": {"fastscore": True},
            },
        ),
        (
            {
                "Transport": {
                    "Type": "S3",
                    "Bucket": "b1",
                    "ObjectKey": "in/x.csv",
                    "Region": "eu-west-1",
                },
                "Encoding": "csv",
                "Envelope": "delimited-csv",
            },
            {
                "direction": "source",
                "format": {"encoding": "csv"},
                "type": "s3",
                "config": {"bucket": "b1", "key": "in/x.csv", "region": "eu-west-1"},
            },
        ),
        # the CSV Support page: Encoding as an object, the envelope's Unix separator
        (
            {
                "Transport": {"Type": "file", "Path": "/d/x.csv"},
                "Encoding": {"Type": "csv", "QuoteCharacter": '"', "Delimiter": ","},
                "Envelope": {
                    "Type": "delimited-csv",
                    "Separator": "\n",
                    "SkipHeader": True,
                    "SkipBlankLines": True,
                },
            },
            {
                "direction": "source",
                "format": {"encoding": "csv"},
                "type": "file",
                "config": {"path": "/d/x.csv"},
            },
        ),
        (
            {"Transport": {"Type": "file", "Path": "/d/x.csv"}, "Encoding": {"Type": "csv"}},
            {
                "direction": "source",
                "format": {"encoding": "csv"},
                "type": "file",
                "config": {"path": "/d/x.csv"},
            },
        ),
        (
            {
                "Transport": {"Type": "file", "Path": "/d/x.avro"},
                "Encoding": "avro-binary",
                "Envelope": {"Type": "ocf-block", "SkipHeader": False},
            },
            {
                "direction": "source",
                "format": {"encoding": "avro"},
                "type": "file",
                "config": {"path": "/d/x.avro"},
            },
        ),
    ],
)
def test_descriptor_forms_become_channels(
    descriptor: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert spec(descriptor) == expected


def test_inline_data_strings_and_base64_are_decoded_into_records() -> None:
    records = [{"a": 1}, {"a": 2}]
    plain = spec({"Transport": {"Type": "inline", "Data": ['{"a": 1}', '{"a": 2}']}})
    assert plain["config"] == {"records": records}
    one_chunk = spec({"Transport": {"Type": "inline", "Data": '{"a": 1}\n{"a": 2}\n'}})
    assert one_chunk["config"] == {"records": records}
    import base64

    binary = spec(
        {"Transport": {"Type": "inline", "DataBinary": [base64.b64encode(b'{"a": 1}').decode()]}}
    )
    assert binary["config"] == {"records": [{"a": 1}]}


def test_s3_credentials_become_secret_refs_and_their_values_are_kept_apart() -> None:
    conv = convert(
        {
            "Encoding": "JSON",
            "Transport": {
                "Type": "S3",
                "Bucket": "bkt",
                "ObjectKey": "k",
                "AccessKeyID": "AKIA",
                "SecretAccessKey": "s3cr3t",
                "Region": "us-east-1",
            },
        },
        name="orders",
    )
    assert conv.spec["config"]["accessKeyId"] == {
        "secretRef": {"name": "orders", "key": "access-key-id"}
    }
    assert conv.credentials == {"access-key-id": "AKIA", "secret-access-key": "s3cr3t"}
    assert "s3cr3t" not in json.dumps(conv.spec)


def test_schemas_by_name_by_ref_and_inline() -> None:
    named = {"inputsch": FIELDS}
    assert spec({"Transport": "REST", "Schema": "inputsch"}, schemas=named)["format"] == {
        "encoding": "jsonl",
        "schema": FIELDS,
    }
    by_ref = spec({"Transport": "REST", "Schema": {"$ref": "inputsch"}}, schemas=named)
    assert by_ref["format"]["schema"] == FIELDS
    inline = spec(
        {
            "Transport": "REST",
            "Schema": {"type": "record", "name": "r", "fields": [{"name": "x", "type": "double"}]},
        }
    )
    assert inline["format"]["schema"] == FIELDS


def test_directions_follow_the_slot_or_the_transport() -> None:
    file_descriptor = {"Transport": {"Type": "file", "Path": "/x"}}
    assert convert(file_descriptor, name="s").any_direction
    assert not convert(file_descriptor, name="s", role="sink").any_direction
    rest_out = convert({"Transport": "REST"}, name="s", role="sink")
    assert rest_out.round_trip and rest_out.spec["type"] == "discard"
    assert (
        convert(
            {"Batching": {"Watermark": 100, "NagleTime": 0}, "Transport": "REST"}, name="s"
        ).batch_size
        == 100
    )
    url = convert(
        {"Transport": {"Type": "HTTP", "Url": "https://h/x.json"}}, name="s", role="source"
    )
    assert url.download_url == "https://h/x.json" and url.finite
    csv_url = {"Transport": {"Type": "HTTP", "Url": "https://h/x.csv"}, "Encoding": "csv"}
    assert spec(csv_url, role="source")["format"] == {"encoding": "csv"}


@pytest.mark.parametrize(
    ("descriptor", "message"),
    [
        (
            {"Transport": {"Type": "ODBC", "ConnectionString": "x"}},
            "Transport ODBC is not supported; supported: REST, HTTP, Kafka, S3, file, inline, "
            "discard",
        ),
        ({"Transport": {"Type": "TCP", "Host": "h", "Port": 1}}, "Transport TCP is not supported"),
        ({"Transport": {"Type": "ftp"}}, "Transport 'ftp' is unknown"),
        (
            {"Transport": {"Type": "file", "Path": "/x", "Mode": "rw"}},
            "Transport file: unknown field 'Mode'; supported: Type, Path",
        ),
        (
            {"Transport": "REST", "Encoding": "utf-8"},
            "Encoding 'utf-8' is not supported; supported: json, avro-binary, csv",
        ),
        ({"Transport": "REST", "Encoding": None}, "Encoding null (raw bytes) is not supported"),
        (
            {"Transport": {"Type": "file", "Path": "/x"}, "Envelope": {"Type": "fixed", "Size": 8}},
            "Envelope 'fixed' is not supported; supported: delimited, delimited-csv, ocf-block",
        ),
        (
            {
                "Transport": {"Type": "file", "Path": "/x"},
                "Envelope": {"Type": "delimited", "Separator": "|"},
            },
            "Separator '|' is not supported",
        ),
        (
            {"Transport": {"Type": "file", "Path": "/x"}, "Envelope": None},
            "Envelope null on a file stream",
        ),
        (
            {
                "Transport": {"Type": "file", "Path": "/x"},
                "Encoding": "avro-binary",
                "Envelope": "delimited",
            },
            "takes Envelope ocf-block",
        ),
        (
            {
                "Transport": {"Type": "file", "Path": "/x"},
                "Encoding": {"Type": "csv", "Delimiter": ";", "QuoteCharacter": "'"},
            },
            "Encoding csv: Delimiter ';' is not supported (channels read and write RFC 4180 "
            "CSV); supported: ','",
        ),
        (
            {
                "Transport": {"Type": "file", "Path": "/x"},
                "Encoding": {"Type": "csv", "Quote": "'"},
            },
            "Encoding: unknown field 'Quote'; supported: Type, Delimiter, QuoteCharacter",
        ),
        (
            {"Transport": {"Type": "file", "Path": "/x"}, "Encoding": {"Type": "utf-8"}},
            "is not supported; supported: json, avro-binary, csv",
        ),
        (
            {
                "Transport": {"Type": "file", "Path": "/x"},
                "Encoding": "csv",
                "Envelope": {"Type": "delimited-csv", "SkipHeader": False},
            },
            "SkipHeader false (no header row) is not supported: the first line names the "
            "fields; supported: true",
        ),
        (
            {
                "Transport": {"Type": "file", "Path": "/x"},
                "Encoding": "csv",
                "Envelope": {"Type": "delimited-csv", "SkipBlankLines": False},
            },
            "SkipBlankLines false is not supported",
        ),
        (
            {
                "Transport": {"Type": "file", "Path": "/x"},
                "Encoding": "csv",
                "Envelope": {"Type": "delimited-csv", "Separator": "|"},
            },
            "Envelope delimited-csv: Separator '|' is not supported",
        ),
        (
            {
                "Transport": {"Type": "kafka", "BootstrapServers": ["k:1"], "Topic": "t"},
                "Encoding": {"Type": "csv"},
            },
            "Encoding csv on Kafka needs a Schema: a message carries no field names",
        ),
        ({"Transport": "REST", "Batching": "explicit"}, "Batching explicit"),
        (
            {
                "Transport": {"Type": "kafka", "BootstrapServers": ["k:1"], "Topic": "t"},
                "Loop": True,
            },
            "Loop is supported for file, S3 and inline inputs, not for kafka",
        ),
        (
            {
                "Transport": {
                    "Type": "kafka",
                    "BootstrapServers": ["k:1"],
                    "Topic": "t",
                    "Partition": 3,
                }
            },
            "Partition 3 is not supported",
        ),
        ({"Transport": {"Type": "REST", "Mode": "chunked"}}, "REST Mode 'chunked'"),
        (
            {"Transport": "REST", "Encoding": "csv"},
            "Transport REST: Encoding must be json (requests and answers are JSON records)",
        ),
        ({"Transport": "REST", "EndMarker": "$end-of-stream"}, "EndMarker"),
        ({"Transport": {"Type": "file", "Path": "/x"}, "SkipTo": 100}, "SkipTo"),
        ({"Transport": "REST", "Schema": "nope"}, "Schema 'nope' is not a known schema"),
        ({"Transport": "REST", "Schema": "double"}, "Schema 'double' is not a known schema"),
        (
            {"Transport": "REST", "Schema": {"type": "array", "items": "int"}},
            "a record schema is needed",
        ),
        ({"Transport": "REST", "Colour": "red"}, "the descriptor: unknown field 'Colour'"),
        ({"Transport": {"Type": "HTTP", "Url": "https://h/x.json"}}, "no data channel reads a URL"),
        (
            {"Transport": {"Type": "S3", "Bucket": "b", "ObjectKey": "k", "AccessKeyID": "a"}},
            "AccessKeyID and SecretAccessKey go together",
        ),
    ],
)
def test_what_is_not_supported_is_refused_by_name(descriptor: dict[str, Any], message: str) -> None:
    with pytest.raises(DescriptorError, match=re.escape(message)):
        convert(descriptor, name="s")


def test_a_csv_output_is_written_with_newline_line_ends() -> None:
    crlf = {
        "Transport": {"Type": "file", "Path": "/out.csv"},
        "Encoding": "csv",
        "Envelope": {"Type": "delimited-csv", "Separator": "\r\n"},
    }
    assert spec(crlf, role="source")["format"] == {"encoding": "csv"}
    with pytest.raises(DescriptorError, match=re.escape("on an output is not supported")):
        convert(crlf, name="s", role="sink")
    unix = {**crlf, "Envelope": {"Type": "delimited-csv", "Separator": "\n"}}
    assert spec(unix, role="sink")["format"] == {"encoding": "csv"}


# ---------------------------------------------------------------- descriptors as IR files

FLOW = """
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {name: p}
spec:
  models: [{name: m, type: python, uri: "file:///m.py"}]
---
apiVersion: tekscore.dev/v1
kind: ScoringFlow
metadata: {name: f}
spec:
  mode: MODE
  source: SOURCE
  sink: SINK
  steps: [{type: score, model: m}]
"""


def flow_ir(tmp_path: Path, source: str, sink: str, mode: str = "batch") -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(FLOW.replace("SOURCE", source).replace("SINK", sink).replace("MODE", mode))
    return path


def render(paths: list[Path], registry: Path | None = None) -> dict[str, Any]:
    docs = ir.load_paths(paths)
    rendered = ir.preprocess(docs, registry=ir.load_registry(registry))
    flow: dict[str, Any] = rendered.values["scoringFlows"][0]
    return flow


def test_registry_descriptors_serve_as_source_or_sink_with_their_named_schemas(
    tmp_path: Path,
) -> None:
    registry = tmp_path / "channels"
    registry.mkdir()
    (registry / "inputsch.avsc").write_text(
        json.dumps({"type": "record", "name": "In", "fields": [{"name": "x", "type": "double"}]})
    )
    (registry / "orders-in.json").write_text(
        json.dumps({"Transport": {"Type": "file", "Path": "/data/in.jsonl"}, "Schema": "inputsch"})
    )
    (registry / "orders-out.json").write_text(
        json.dumps({"Transport": {"Type": "file", "Path": "/data/out.jsonl"}, "Encoding": "json"})
    )
    flow = render([flow_ir(tmp_path, "orders-in", "orders-out")], registry)
    assert flow["source"]["direction"] == "source"
    assert flow["source"]["format"]["schema"] == [
        {"name": "x", "type": "double", "nullable": False}
    ]
    assert flow["sink"] == {
        "name": "orders-out",
        "direction": "sink",
        "type": "file",
        "format": {"encoding": "jsonl"},
        "config": {"path": "/data/out.jsonl"},
    }


def test_a_looping_source_needs_a_streaming_flow(tmp_path: Path) -> None:
    (tmp_path / "loop-in.json").write_text(
        json.dumps({"Transport": {"Type": "file", "Path": "/data/in.jsonl"}, "Loop": True})
    )
    (tmp_path / "out.json").write_text(json.dumps({"Transport": "discard"}))
    paths = [flow_ir(tmp_path, "loop-in", "out"), tmp_path / "loop-in.json", tmp_path / "out.json"]
    with pytest.raises(IRValidationError, match=r"loops .* the flow needs mode streaming"):
        render(paths)
    flow = render([flow_ir(tmp_path, "loop-in", "out", "streaming"), *paths[1:]])
    assert flow["source"]["config"] == {"path": "/data/in.jsonl", "loop": True}


def test_a_descriptor_turned_around_must_still_be_a_valid_channel(tmp_path: Path) -> None:
    (tmp_path / "avro-in.json").write_text(
        json.dumps({"Transport": {"Type": "file", "Path": "/d/x.avro"}, "Encoding": "avro-binary"})
    )
    (tmp_path / "rest.json").write_text(json.dumps({"Transport": "REST"}))
    paths = [
        flow_ir(tmp_path, "rest", "avro-in"),
        tmp_path / "avro-in.json",
        tmp_path / "rest.json",
    ]
    with pytest.raises(IRValidationError, match="'avro-in' cannot be a sink: an avro sink needs"):
        render(paths)


def test_descriptor_files_that_cannot_be_channels_say_why(tmp_path: Path) -> None:
    bad_name = tmp_path / "RESTTransport.json.json"
    bad_name.write_text(json.dumps({"Transport": {"Type": "REST"}, "Encoding": "json"}))
    creds = tmp_path / "s3-in.json"
    creds.write_text(
        json.dumps(
            {
                "Transport": {
                    "Type": "S3",
                    "Bucket": "bkt",
                    "ObjectKey": "k",
                    "AccessKeyID": "a",
                    "SecretAccessKey": "b",
                }
            }
        )
    )
    odbc = tmp_path / "db.json"
    odbc.write_text(json.dumps({"Transport": {"Type": "ODBC"}}))
    with pytest.raises(IRValidationError) as info:
        ir.load_paths([bad_name, creds, odbc])
    messages = {Path(i.file).name: i.msg for i in info.value.issues}
    assert "'RESTTransport.json' is not a DNS-1123 label" in messages[bad_name.name]
    assert "tekscore channel import" in messages[creds.name]
    assert "Transport ODBC is not supported" in messages[odbc.name]


def test_channel_document_round_trips_as_yaml(tmp_path: Path) -> None:
    from ir.fastscore import channel_document

    conv = convert({"Transport": {"Type": "file", "Path": "/x.jsonl"}}, name="events")
    (tmp_path / "events.yaml").write_text(
        yaml.safe_dump(channel_document(conv, name="events", source="events.json"))
    )
    (doc,) = ir.load_paths([tmp_path / "events.yaml"])
    assert doc.name == "events" and doc.doc.metadata.annotations["tekscore.dev/direction"] == "any"
