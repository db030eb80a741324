"""Pre-processing step 4: merging documents into one values tree, conflicts, derived services,
and how score steps find their service."""

from __future__ import annotations

from tests.ir.conftest import (
    FLOW,
    MINIMAL,
    MODEL,
    PIPELINE,
    SINK,
    SOURCE,
    doc,
    issues_of,
    join,
    render,
)


def test_the_same_definition_in_two_files_is_harmless(write):
    a = write("a.yaml", MINIMAL)
    b = write("b.yaml", MODEL)
    assert render(a, b).values == render(a).values


def test_a_name_defined_twice_differently_names_both_places(write):
    a = write("a.yaml", MINIMAL)
    b = write("b.yaml", MODEL.replace("sklearn", "onnx"))
    first = next(i for i, t in enumerate(a.read_text().splitlines(), 1) if t == "  name: m") - 1
    [issue] = issues_of(a, b)
    assert issue.startswith(f"{b}:5: spec: Model 'm' is defined twice with different content")
    assert f"(first at {a}:{first + 2}, again at {b}:5)" in issue


def test_a_model_no_service_serves_gets_a_derived_python_service(write):
    values = render(write("p.yaml", MINIMAL)).values
    [service] = values["scoringServices"]
    assert service["name"] == "m"
    assert service["derived"] is True
    assert service["runtime"] == "python"
    assert service["url"] == "http://p-m:8080"
    assert [m["name"] for m in service["models"]] == ["m"]
    assert values["scoringFlows"][0]["services"] == {
        "m": {"url": "http://p-m:8080", "protocol": "records", "models": ["m"]}
    }


def test_an_external_model_derives_an_external_service_called_over_v2(write):
    text = MINIMAL.replace(MODEL, doc("Model", "m", "type: external\nuri: http://mlserver:8080"))
    values = render(write("p.yaml", text)).values
    [service] = values["scoringServices"]
    assert (service["runtime"], service["url"]) == ("external", "http://mlserver:8080")
    assert values["scoringFlows"][0]["services"]["m"]["protocol"] == "v2"


def test_service_urls_follow_the_job_id(write):
    from ir import JobInfo

    values = render(write("p.yaml", MINIMAL), job=JobInfo(id="j-123")).values
    assert values["scoringServices"][0]["url"] == "http://j-123-m:8080"
    assert values["job"]["id"] == "j-123"


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


def test_a_pipeline_needs_exactly_one_pipeline_document_and_a_flow(write):
    no_pipeline = write("a.yaml", join(MODEL, SOURCE))
    assert issues_of(no_pipeline) == [
        f"{no_pipeline}: kind: the IR has no ScoringPipeline document"
    ]
    no_flow = write("b.yaml", join(PIPELINE, MODEL))
    assert issues_of(no_flow) == [f"{no_flow}:5: spec: a pipeline needs at least one scoring flow"]
    two = write("c.yaml", join(MINIMAL, PIPELINE.replace("name: p", "name: q")))
    [issue] = issues_of(two)
    assert "kind: a second ScoringPipeline; the IR already has 'p'" in issue


def test_listed_members_only_and_unlisted_documents_stay_out(write):
    other = FLOW.replace("name: f", "name: g")
    values = render(
        write(
            "p.yaml",
            join(MINIMAL.replace("models: [m]", "models: [m]\n  scoringFlows: [f]"), other),
        )
    ).values
    assert [f["name"] for f in values["scoringFlows"]] == ["f"]
    values = render(write("q.yaml", join(MINIMAL, other))).values
    assert [f["name"] for f in values["scoringFlows"]] == ["f", "g"]


def test_a_listed_name_that_no_document_defines_is_an_error(write):
    path = write("p.yaml", MINIMAL.replace("models: [m]", "models: [m, nope]"))
    [issue] = issues_of(path)
    assert issue.endswith("spec.models[1]: unknown Model 'nope'; known: m")


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


def test_an_inline_secret_value_is_refused(write):
    kafka = doc(
        "DataChannel",
        "out",
        "direction: sink\ntype: kafka\nconfig: {bootstrapServers: 'k:9092', topic: t, password: hunter2}",
    )
    [issue] = issues_of(write("p.yaml", MINIMAL.replace(SINK, kafka)))
    assert "spec.config.password" in issue
    assert "hunter2" not in issue.split("password:")[0]


def test_a_job_id_must_start_with_a_letter_and_the_default_does(write):
    from ir import IRValidationError, JobInfo

    path = write("p.yaml", MINIMAL.replace("name: p\n", "name: 7p\n", 1))
    values = render(path).values
    assert values["job"]["id"] == "j-7p"
    assert values["scoringServices"][0]["url"] == "http://j-7p-m:8080"
    try:
        render(path, job=JobInfo(id="7-up"))
    except IRValidationError as exc:
        assert [str(i) for i in exc.issues] == [
            "<job>: id: must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter"
        ]
    else:
        raise AssertionError("a job id starting with a digit was accepted")
