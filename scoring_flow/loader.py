"""Loading the user function of a `python` step from its `uri` (file://, a path, http(s)://, s3://).

Does I/O: reads or downloads the module file (`common.fetch`; a download goes to a temporary
folder removed once the module is imported) and imports it under a private module name, in the
worker thread the runner calls it from, once at start. The function must take a list of records
and return one entry per record (see `steps.apply_python`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from urllib.parse import urlparse

from common.fetch import FetchError, fetched, local_path
from ir.flows import PythonStep
from scoring_flow.errors import ConfigError
from scoring_flow.steps import UserFunction


def load_function(step: PythonStep) -> UserFunction:
    """Import the step's module and return its function."""
    uri = step.uri
    local = local_path(uri)
    if local is not None and not local.is_file():
        raise ConfigError(f"python step module {uri} does not exist")
    scheme = urlparse(uri).scheme
    if local is None and scheme not in ("http", "https", "s3"):
        raise ConfigError(f"python step uri {uri}: unsupported scheme {scheme!r}")
    try:
        with fetched(uri, prefix="tekscore-step-") as path:
            module = _import(uri, path)
    except FetchError as exc:
        raise ConfigError(f"cannot download python step module {uri}: {exc.reason}") from exc
    function = getattr(module, step.function, None)
    if not callable(function):
        raise ConfigError(f"python step module {step.uri} has no function {step.function!r}")
    result: UserFunction = function
    return result


def _import(uri: str, path: Path) -> ModuleType:
    name = "tekscore_step_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"python step module {uri} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"python step module {uri} failed to import: {exc!r}") from exc
    return module
