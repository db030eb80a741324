"""Which scoring server runs a scoring service: the runtime table and the choice from it.

Pure data and functions, no I/O. A runtime is a family of scoring-server images, one sub-chart
of the platform chart each (`scoring-server-python`, `-pmml`, `-tensorflow`), with the model
types it serves (its `supportedModels`). The platform writes the enabled ones into the server's
globals (`global.runtimes`); without globals (one machine: `tekscore run`, `render`) every
built-in family is there, since one `tekscore serve-model` serves them all when their extras
are installed. `external` is no runtime of ours: a service with `runtime: external` is another
OIP server, and a model of type `external` is served by its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import Field

from ir.documents import ModelType
from ir.types import IRModel

EXTERNAL = "external"


class RuntimeValues(IRModel):
    """One enabled scoring-server family: the model types it serves and its image."""

    supported_models: list[ModelType] = Field(
        min_length=1, description="The model types this runtime serves."
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        description="The image repository of this runtime (registry and tag are global.image's); "
        "default: the platform image, global.image.repository.",
    )


BUILTIN_RUNTIMES: dict[str, RuntimeValues] = {
    "python": RuntimeValues(supported_models=["python", "sklearn", "onnx", "xgboost", "lightgbm"]),
    "pmml": RuntimeValues(supported_models=["pmml"], image="tekscore/tekscore-pmml"),
    "tensorflow": RuntimeValues(
        supported_models=["tensorflow"], image="tekscore/tekscore-tensorflow"
    ),
}
"""The built-in families, in the order a service's runtime is chosen from them."""


def serving(model_type: str, runtimes: Mapping[str, RuntimeValues]) -> list[str]:
    """The runtimes that serve a model type, in table order."""
    return [name for name, rt in runtimes.items() if model_type in rt.supported_models]


def choose(model_types: Iterable[str], runtimes: Mapping[str, RuntimeValues]) -> str | None:
    """The first runtime (table order) that serves every one of the model types, or None."""
    types = set(model_types)
    return next((name for name, rt in runtimes.items() if types <= set(rt.supported_models)), None)


def describe(runtimes: Mapping[str, RuntimeValues]) -> str:
    """The runtimes and what each serves: `python (python, sklearn), pmml (pmml)`."""
    if not runtimes:
        return "(none enabled)"
    return ", ".join(f"{n} ({', '.join(rt.supported_models)})" for n, rt in runtimes.items())
