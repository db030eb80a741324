"""Pre-processing, the end of step 4 (`ir.assemble`): derived services, how score steps find
their service, service endpoints following the job id, and the secret references of flows."""

from __future__ import annotations

from tests.ir.conftest import (
    MINIMAL,
    MODEL,
    SINK,
    doc,
    issues_of,
    join,
    render,
)


def test_a_model_no_service_serves_gets_a_derived_python_service(write):
    values = render(write("p.yaml", MINIMAL)).values
    [service] = values["scoringServices"]
    assert service["name"] == "m"
    assert service["derived"] is True
    assert service["runtime"] == "python"
    assert (service["port"], "url" in service) == (8080, False)  # a logical endpoint
    assert [m["name"] for m in service["models"]] == ["m"]
    assert values["scoringFlows"][0]["services"] == {
        "m": {"service": "m", "port": 8080, "protocol": "records", "models": ["m"]}
    }


def test_an_external_model_derives_an_external_service_called_over_v2(write):
    text = MINIMAL.replace(MODEL, doc("Model", "m", "type: external\nuri: http://mlserver:8080"))
    values = render(write("p.yaml", text)).values
    [service] = values["scoringServices"]
    assert (service["runtime"], service["url"]) == ("external", "http://mlserver:8080")
    assert "port" not in service
    assert values["scoringFlows"][0]["services"]["m"] == {
        "url": "http://mlserver:8080",
        "protocol": "v2",
        "models": ["m"],
    }


def test_service_endpoints_are_logical_whatever_the_job_id(write):
    """How a runner names a service's host (the chart: `<job.id>-<service>`, the local runner:
    a loopback port) is not pre-processing's business: only the service and its port are."""
    from ir import JobInfo

    a = render(write("p.yaml", MINIMAL), job=JobInfo(id="j-123")).values
    b = render(write("p.yaml", MINIMAL), job=JobInfo(id="j-456")).values
    assert a["scoringServices"] == b["scoringServices"]
    assert a["scoringFlows"][0]["services"] == b["scoringFlows"][0]["services"]
    assert a["job"]["id"] == "j-123"


def test_a_model_served_by_two_services_needs_the_step_to_choose(write):
    services = join(
        doc("ScoringService", "a", "models: [m]"),
        doc("ScoringService", "b", "models: [m]"),
    )
    path = write("p.yaml", join(MINIMAL, services))
    [issue] = issues_of(path)
    assert (
        "spec.steps[0].model: several services serve model 'm' (a, b): name one with `service`"
        in issue
    )
    chosen = write("q.yaml", join(MINIMAL.replace("model: m}", "model: m, service: b}"), services))
    flow = render(chosen).values["scoringFlows"][0]
    assert flow["steps"][0]["service"] == "b"
    assert list(flow["services"]) == ["b"]


def test_a_service_naming_an_unknown_model_lists_the_known(write):
    path = write("p.yaml", join(MINIMAL, doc("ScoringService", "s", "models: [m, ghost]")))
    [issue] = issues_of(path)
    assert issue.endswith("spec.models[1]: unknown model 'ghost'; known: m")


def test_a_service_whose_every_model_is_unknown_is_reported_not_a_crash(write):
    """Its models all unknown, the service has none left: the unknown model is the one issue
    (it was a pydantic error escaping pre-processing: a traceback, a 500 through the API)."""
    path = write("p.yaml", join(MINIMAL, doc("ScoringService", "s", "models: [ghost]")))
    [issue] = issues_of(path)
    assert issue.endswith("spec.models[0]: unknown model 'ghost'; known: m")


def test_secret_references_are_collected_and_never_inlined(write):
    kafka = doc(
        "DataChannel",
        "out",
        """
        direction: sink
        type: kafka
        config:
          bootstrapServers: k:9092
          topic: t
          username: {secretRef: {name: kafka-creds, key: user}}
          password: {secretRef: {name: kafka-creds, key: password}}
        """,
    )
    values = render(write("p.yaml", MINIMAL.replace(SINK, kafka))).values
    flow = values["scoringFlows"][0]
    assert flow["secrets"] == [
        {"name": "kafka-creds", "key": "password"},
        {"name": "kafka-creds", "key": "user"},
    ]
    assert flow["sink"]["config"]["password"] == {
        "secretRef": {"name": "kafka-creds", "key": "password"}
    }


def test_a_job_id_must_start_with_a_letter_and_the_default_does(write):
    from ir import IRValidationError, JobInfo

    path = write("p.yaml", MINIMAL.replace("name: p\n", "name: 7p\n", 1))
    values = render(path).values
    assert values["job"]["id"] == "j-7p"
    assert values["scoringServices"][0]["port"] == 8080
    try:
        render(path, job=JobInfo(id="7-up"))
    except IRValidationError as exc:
        assert [str(i) for i in exc.issues] == [
            "<job>: id: must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter"
        ]
    else:
        raise AssertionError("a job id starting with a digit was accepted")


def test_streaming_replicas_cannot_share_one_file_or_object(write):
    """Each replica of a streaming flow would write, then replace, the sink's one file; batch
    shards get one file each, and a Kafka sink takes every replica's records."""
    streaming = MINIMAL.replace(
        "  source: in\n", "  source: in\n  mode: streaming\n  replicas: 2\n"
    )
    [issue] = issues_of(write("p.yaml", streaming))
    assert "spec.replicas: 2 replicas of a streaming flow would all write the one file" in issue
    assert "of its sink 'out'" in issue
    render(write("one.yaml", streaming.replace("replicas: 2", "replicas: 1")))
    kafka = doc(
        "DataChannel",
        "out",
        "direction: sink\ntype: kafka\nconfig: {bootstrapServers: k:9092, topic: t}",
    )
    values = render(write("k.yaml", streaming.replace(SINK, kafka))).values
    assert values["scoringFlows"][0]["replicas"] == 2
