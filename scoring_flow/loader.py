"""Loading the user function of a `python` step from its `uri` (file://, a path, http(s)://, s3://).

Does I/O: reads or downloads the module file and imports it under a private module name, in the
worker thread the runner calls it from, once at start. The function must take a list of records
and return one entry per record (see `steps.apply_python`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from ir.flows import PythonStep
from scoring_flow.errors import ConfigError
from scoring_flow.steps import UserFunction


def fetch_module(uri: str) -> Path:
    """A local path holding the module behind `uri`."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme else uri)
        if not path.is_file():
            raise ConfigError(f"python step module {uri} does not exist")
        return path
    folder = Path(tempfile.mkdtemp(prefix="tekscore-step-"))
    target = folder / (Path(parsed.path).name or "step.py")
    if parsed.scheme in ("http", "https"):
        try:
            response = httpx.get(uri, timeout=30.0, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ConfigError(f"cannot download python step module {uri}: {exc}") from exc
        target.write_bytes(response.content)
        return target
    if parsed.scheme == "s3":
        import boto3

        try:
            boto3.client("s3").download_file(parsed.netloc, parsed.path.lstrip("/"), str(target))
        except Exception as exc:  # boto3 raises several unrelated types
            raise ConfigError(f"cannot download python step module {uri}: {exc}") from exc
        return target
    raise ConfigError(f"python step uri {uri}: unsupported scheme {parsed.scheme!r}")


def load_function(step: PythonStep) -> UserFunction:
    """Import the step's module and return its function."""
    path = fetch_module(step.uri)
    name = "tekscore_step_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"python step module {step.uri} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"python step module {step.uri} failed to import: {exc!r}") from exc
    function = getattr(module, step.function, None)
    if not callable(function):
        raise ConfigError(f"python step module {step.uri} has no function {step.function!r}")
    result: UserFunction = function
    return result
