"""Which scoring server runs a scoring service (`ir.runtimes`, `ir.assemble`): a service's
runtime derived from its models' types and the enabled runtimes of the globals, checked when
named; a model no enabled runtime serves is an error at its `type` line naming the model and
the runtimes there are; the values carry the runtime table the chart picks images from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ir
from ir.runtimes import BUILTIN_RUNTIMES, RuntimeValues, choose, describe
from tests.ir.conftest import FLOW, MINIMAL, MODEL, PIPELINE, SINK, SOURCE, doc, join, render

PYTHON_ONLY = ir.GlobalValues(
    runtimes={"python": RuntimeValues(supported_models=["python", "sklearn", "onnx"])}
)


def model(name: str, kind: str, uri: str = "file://model.bin") -> str:
    return doc("Model", name, f"type: {kind}\nuri: {uri}")


def pipeline(*parts: str, models: str = "[m]") -> str:
    head = PIPELINE.replace("models: [m]", f"models: {models}")
    return join(head, SOURCE, SINK, FLOW, *parts)


def issues(path: Path, **kwargs: Any) -> list[str]:
    with pytest.raises(ir.IRValidationError) as info:
        render(path, **kwargs)
    return [str(i) for i in info.value.issues]


@pytest.mark.parametrize(
    "kind,runtime",
    [
        ("pmml", "pmml"),
        ("tensorflow", "tensorflow"),
        ("xgboost", "python"),
        ("lightgbm", "python"),
        ("onnx", "python"),
    ],
)
def test_a_derived_service_runs_on_the_runtime_of_its_model(
    write: Any, kind: str, runtime: str
) -> None:
    values = render(write("p.yaml", pipeline(model("m", kind)))).values
    [service] = values["scoringServices"]
    assert (service["runtime"], service["derived"], service["port"]) == (runtime, True, 8080)
    assert values["scoringFlows"][0]["services"]["m"] == {
        "service": "m",
        "port": 8080,
        "protocol": "records",
        "models": ["m"],
    }
    assert values["global"]["runtimes"]["pmml"] == {
        "supportedModels": ["pmml"],
        "image": "tekscore/tekscore-pmml",
    }


def test_a_model_no_enabled_runtime_serves_is_an_error_at_its_type(write: Any) -> None:
    path = write("p.yaml", pipeline(model("m", "tensorflow")))
    [issue] = issues(path, globals_=PYTHON_ONLY)
    line = next(
        i for i, text in enumerate(path.read_text().splitlines(), 1) if "type: tensorflow" in text
    )
    assert issue == (
        f"{path}:{line}: spec.type: model 'm' has type 'tensorflow' and no enabled scoring server "
        "serves it; the runtimes are: python (python, sklearn, onnx)"
    )


def test_a_service_without_runtime_gets_the_one_serving_all_its_models(write: Any) -> None:
    service = doc("ScoringService", "s", "models: [m, x]")
    text = pipeline(MODEL, model("x", "xgboost"), service, models="[m, x]")
    values = render(write("p.yaml", text)).values
    [svc] = values["scoringServices"]
    assert (svc["name"], svc["runtime"], svc["derived"]) == ("s", "python", False)


def test_models_of_different_runtimes_in_one_service_are_an_error(write: Any) -> None:
    service = doc("ScoringService", "s", "models: [m, p]")
    path = write("p.yaml", pipeline(MODEL, model("p", "pmml"), service, models="[m, p]"))
    [issue] = issues(path)
    assert ":" in issue and "spec.models: no enabled scoring server serves every model" in issue
    assert "'m' (sklearn) by python; 'p' (pmml) by pmml" in issue
    assert "the runtimes are: " + describe(BUILTIN_RUNTIMES) in issue
    assert issue.endswith("put models of different runtimes in different services")


def test_a_named_runtime_is_checked(write: Any) -> None:
    wrong = doc("ScoringService", "s", "runtime: python\nmodels: [m]")
    path = write("p.yaml", pipeline(model("m", "pmml"), wrong))
    [issue] = issues(path)
    assert issue.endswith(
        "spec.runtime: runtime 'python' does not serve model 'm' of type 'pmml' (served by: pmml)"
    )
    unknown = doc("ScoringService", "s", "runtime: tensorflow\nmodels: [m]")
    path = write("q.yaml", pipeline(MODEL, unknown))
    [issue] = issues(path, globals_=PYTHON_ONLY)
    assert issue.endswith(
        "spec.runtime: runtime 'tensorflow' is not enabled; the runtimes are: "
        "python (python, sklearn, onnx)"
    )
    right = doc("ScoringService", "s", "runtime: pmml\nmodels: [m]")
    values = render(write("r.yaml", pipeline(model("m", "pmml"), right))).values
    assert values["scoringServices"][0]["runtime"] == "pmml"


def test_an_external_model_in_a_service_is_an_error(write: Any) -> None:
    service = doc("ScoringService", "s", "models: [m, e]")
    external = model("e", "external", "http://mlserver:8080")
    path = write("p.yaml", pipeline(MODEL, external, service, models="[m, e]"))
    [issue] = issues(path)
    assert issue.endswith(
        "spec.models[1]: model 'e' is external (its own OIP server at its uri): "
        "it needs no scoring service"
    )


def test_url_is_only_for_external_services(write: Any) -> None:
    service = doc("ScoringService", "s", "runtime: pmml\nurl: http://x:1\nmodels: [m]")
    path = write("p.yaml", join(MINIMAL, service))
    [issue] = issues(path)
    assert issue.endswith("url is only for runtime external")


def test_the_globals_runtimes_reach_the_values(tmp_path: Path, write: Any) -> None:
    globals_file = tmp_path / "globals.yaml"
    globals_file.write_text(
        "runtimes:\n"
        "  python: {supportedModels: [python, sklearn]}\n"
        "  pmml: {supportedModels: [pmml], image: acme/scoring-pmml}\n"
    )
    globals_ = ir.load_globals(globals_file)
    values = render(write("p.yaml", pipeline(model("m", "pmml"))), globals_=globals_).values
    assert values["global"]["runtimes"] == {
        "python": {"supportedModels": ["python", "sklearn"]},
        "pmml": {"supportedModels": ["pmml"], "image": "acme/scoring-pmml"},
    }
    assert values["scoringServices"][0]["runtime"] == "pmml"


def test_choose_takes_the_first_runtime_serving_every_type() -> None:
    assert choose(["sklearn", "xgboost"], BUILTIN_RUNTIMES) == "python"
    assert choose(["pmml"], BUILTIN_RUNTIMES) == "pmml"
    assert choose(["pmml", "sklearn"], BUILTIN_RUNTIMES) is None
    both = {
        "fat": RuntimeValues(supported_models=["pmml", "sklearn"]),
        **BUILTIN_RUNTIMES,
    }
    assert choose(["pmml"], both) == "fat"
    assert choose([], BUILTIN_RUNTIMES) == "python"


def test_a_globals_file_naming_no_runtimes_means_python_only(tmp_path: Path, write: Any) -> None:
    """What a platform without other scoring servers wrote before runtimes existed."""
    globals_file = tmp_path / "globals.yaml"
    globals_file.write_text("logLevel: debug\n")
    path = write("p.yaml", pipeline(model("m", "pmml")))
    [issue] = issues(path, globals_=ir.load_globals(globals_file))
    assert issue.endswith(
        "model 'm' has type 'pmml' and no enabled scoring server serves it; the runtimes are: "
        "python (python, sklearn, onnx, xgboost, lightgbm)"
    )
    assert ir.load_globals(None).runtimes == BUILTIN_RUNTIMES
