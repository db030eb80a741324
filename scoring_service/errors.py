"""Errors of the scoring service: one base class, each subclass composing a full sentence.

Pure data, no I/O. The tree::

    ScoringServiceError
    ├── ConfigError                 the command line or --config file is wrong (exit code 2)
    ├── ModelLoadError              a model could not be made ready (service stays not-ready)
    │   ├── DownloadError           fetching the uri failed (file, http(s), s3)
    │   ├── ChecksumError           the downloaded bytes do not match `sha256`
    │   └── ConventionError         a python module follows none of the three conventions
    └── RequestError                a caller's mistake or a state the caller must wait out;
        │                           carries `status_code`, answered as {"error": message}
        ├── BadRequestError         400 malformed body (not JSON)
        ├── InvalidInputError       422 well-formed JSON of the wrong shape or types
        ├── ModelNotFoundError      404 no model of that name
        ├── ModelNotReadyError      503 the model is loading or failed to load
        └── PayloadTooLargeError    413 the body exceeds the configured limit

The mapping from `RequestError` to HTTP lives in `app.py` (one exception handler).
"""

from __future__ import annotations


class ScoringServiceError(Exception):
    """Base of every error the scoring service raises on purpose."""


class ConfigError(ScoringServiceError):
    """The service configuration (command line or --config file) is invalid."""


class ModelLoadError(ScoringServiceError):
    """A model could not be downloaded or loaded."""

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        self.reason = reason
        super().__init__(f"model '{model}' failed to load: {reason}")


class DownloadError(ModelLoadError):
    """Fetching the model's uri failed."""


class ChecksumError(ModelLoadError):
    """The downloaded model does not match its declared sha256."""

    def __init__(self, model: str, *, expected: str, actual: str) -> None:
        super().__init__(model, f"sha256 mismatch: expected {expected}, got {actual}")


class ConventionError(ModelLoadError):
    """A python model module follows none (or more than one) of the supported conventions."""


class RequestError(ScoringServiceError):
    """An error answered to the caller as `{"error": message}` with `status_code`."""

    status_code = 400

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class BadRequestError(RequestError):
    """The body is not valid JSON."""

    status_code = 400


class InvalidInputError(RequestError):
    """The body is JSON but not of the expected shape or types."""

    status_code = 422


class ModelNotFoundError(RequestError):
    """No model of that name is served here."""

    status_code = 404

    def __init__(self, model: str, known: list[str]) -> None:
        super().__init__(f"unknown model '{model}'; this service serves: {', '.join(known)}")


class ModelNotReadyError(RequestError):
    """The model is still loading, or failed to load."""

    status_code = 503

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"model '{model}' is not ready: {reason}")


class PayloadTooLargeError(RequestError):
    """The request body is larger than the configured limit."""

    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds the limit of {limit} bytes")
