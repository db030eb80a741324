"""The baked engine's plan (`scoring_flow.baked_config`), without processes: FastScore model
annotations bind schemas to slots (and agree with the descriptors' own), unsupported
annotations, slots and model languages are refused by name, descriptor credentials become the
secretRefs' environment, and the flow is batch or streaming as the input is finite or not."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ir.values import ResolvedScoreStep
from scoring_flow.baked_config import baked_flow, make_plan, model_annotations, service_config
from scoring_flow.errors import ConfigError

IN = [{"name": "x", "type": "double", "nullable": False}]
OUT = [{"name": "y", "type": "double", "nullable": False}]
SCHEMAS = {"inputsch": IN, "outputsch": OUT}
FILE_IN = {"Transport": {"Type": "file", "Path": "/data/in.jsonl"}, "Encoding": "json"}
FILE_OUT = {"Transport": {"Type": "file", "Path": "/data/out.jsonl"}, "Encoding": "json"}


def plan(text: str = "", streams: dict[str, Any] | None = None, model: str = "m.py") -> Any:
    return make_plan(
        model=Path(model),
        model_text=text,
        schemas=SCHEMAS,
        streams={"0": FILE_IN, "1": FILE_OUT} if streams is None else streams,
    )


def test_annotations_bind_schemas_to_slots_in_every_written_form() -> None:
    text = "# fastscore.schema.0: inputsch\n#fastscore.schema.1:outputsch\n"
    assert model_annotations(text).schemas == {"0": "inputsch", "1": "outputsch"}
    assert model_annotations("# fastscore.input: a\n# fastscore.output: b").schemas == {
        "0": "a",
        "1": "b",
    }
    assert model_annotations("# ModelOp.schema.$all: a").schemas == {"0": "a", "1": "a"}
    assert model_annotations("# fastscore.schema.$in: a").schemas == {"0": "a"}
    assert model_annotations("# fastscore.slot.1: unused").unused == {"1"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# fastscore.schema.2: a", "slot '2' is not supported"),
        ("# fastscore.action.0: score_report", "'score_report' is not supported"),
        ("# fastscore.recordsets.$in: yes", "'yes' is not supported"),
        ("# fastscore.sensor: s", "fastscore.sensor is not supported; supported:"),
    ],
)
def test_unsupported_annotations_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        model_annotations(text)


def test_the_model_binds_schemas_to_the_slots_a_descriptor_leaves_open() -> None:
    made = plan("# fastscore.schema.0: inputsch\n# fastscore.schema.1: outputsch\n")
    assert made.source.channel["format"]["schema"] == IN
    assert made.sink.channel["format"]["schema"] == OUT
    same = plan(
        "# fastscore.schema.0: inputsch", {"0": {**FILE_IN, "Schema": "inputsch"}, "1": FILE_OUT}
    )
    assert same.input_schema == IN
    with pytest.raises(ConfigError, match="Schema 'outputsch' and the model's fastscore"):
        plan(
            "# fastscore.schema.0: inputsch",
            {"0": {**FILE_IN, "Schema": "outputsch"}, "1": FILE_OUT},
        )
    with pytest.raises(ConfigError, match="binds schema 'other' to slot 0"):
        plan("# fastscore.schema.0: other")


def test_slots_and_model_languages_are_checked() -> None:
    with pytest.raises(ConfigError, match="STREAMS slot 2: supported slots are 0"):
        plan(streams={"0": FILE_IN, "1": FILE_OUT, "2": FILE_OUT})
    with pytest.raises(ConfigError, match=r"must give slot 0 \(input\) and slot 1"):
        plan(streams={"0": FILE_IN})
    unused = plan("# fastscore.slot.1: unused", {"0": FILE_IN})
    assert unused.sink.channel["type"] == "discard"
    with pytest.raises(ConfigError, match=r"PFA models are not supported; supported: \.py"):
        plan(model="model.pfa")
    with pytest.raises(ConfigError, match="REST output gives the outputs back"):
        plan(streams={"0": FILE_IN, "1": {"Transport": "REST"}})


def test_descriptor_credentials_resolve_the_secret_refs_from_the_environment() -> None:
    s3 = {
        "Transport": {
            "Type": "S3",
            "Bucket": "bkt",
            "ObjectKey": "k",
            "AccessKeyID": "AK",
            "SecretAccessKey": "SK",
        }
    }
    made = plan(streams={"0": s3, "1": FILE_OUT})
    assert made.secrets == {
        "TEKSCORE_SECRET_STREAM_0_ACCESS_KEY_ID": "AK",
        "TEKSCORE_SECRET_STREAM_0_SECRET_ACCESS_KEY": "SK",
    }
    assert any("S3 credentials are read from the stream descriptor" in w for w in made.warnings)


def test_the_flow_is_batch_for_finite_inputs_and_streaming_otherwise() -> None:
    finite = baked_flow(plan(), url="http://127.0.0.1:1")
    assert finite.mode == "batch" and finite.batch_size == 256
    step = finite.steps[0]
    assert isinstance(step, ResolvedScoreStep)
    assert step.merge is False  # a python model's outputs are what it yields
    rest = plan(streams={"0": {"Transport": "REST", "Batching": {"Watermark": 50}}, "1": FILE_OUT})
    flow = baked_flow(rest, url="http://127.0.0.1:1")
    assert flow.mode == "streaming" and flow.batch_size == 50
    looping = plan(streams={"0": {**FILE_IN, "Loop": True}, "1": FILE_OUT})
    assert looping.mode == "streaming"
    sk = plan(model="model.joblib", streams={"0": {**FILE_IN, "Schema": "inputsch"}, "1": FILE_OUT})
    sk_step = baked_flow(sk, url="http://x:1").steps[0]
    assert isinstance(sk_step, ResolvedScoreStep) and sk_step.merge is True
    assert service_config(sk)["models"][0]["schema"] == {"input": IN}
