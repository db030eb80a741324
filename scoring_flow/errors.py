"""Errors of the scoring flow, one tree, each class writing its own full-sentence message.

Pure data, no I/O. The tree::

    FlowError                        base of everything raised by `scoring_flow`
    ├── ConfigError                  the CONFIG file or the environment is unusable (permanent)
    ├── SecretError                  a `secretRef` resolves neither from env nor from a file
    ├── ChannelError                 a source or sink failed as a whole (fatal for the flow)
    │   ├── SourceError
    │   └── SinkError
    ├── ServiceNotReadyError         a scoring service never became ready in the allowed time
    ├── ScoringError                 a call to a scoring service failed
    │   ├── RetriableScoringError    5xx, 503, timeouts, connection errors: retried with backoff
    │   └── PermanentScoringError    4xx: the request itself is bad, retrying cannot help
    └── RecordError                  one record failed: dead-lettered with `reason` and `step`
        ├── DecodeError              the input could not be decoded into a record
        ├── SchemaViolation          the record does not match the channel's schema
        ├── StepError                a step could not process the record (a map, filter or
        │                            python step; a score step whose call failed, or whose
        │                            service refused the record)
        └── EncodeError              the sink's encoding cannot carry a value of the record

`FlowError` subclasses that are not `RecordError` end a flow with `flow failed`; a
`RecordError` only sends its record to the dead-letter channel. Per-record failures travel as
these objects: raised by the per-record code, carried on the record's `Item` (`Item.failure`)
and, for a scoring call that failed, in the scoring client's answers (a `ScoringError` in
place of a result).
"""

from __future__ import annotations


class FlowError(Exception):
    """Base of every error raised by the scoring flow."""


class ConfigError(FlowError):
    """The flow's CONFIG or environment cannot be used."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"The flow configuration is invalid: {detail}")


class SecretError(FlowError):
    """A secret named by a `secretRef` was not found."""

    def __init__(self, *, name: str, key: str, env_var: str, path: str) -> None:
        self.name = name
        self.key = key
        super().__init__(
            f"Secret {name!r} key {key!r} was not found: set env var {env_var} "
            f"or mount the file {path}."
        )


class ChannelError(FlowError):
    """A data channel failed as a whole."""

    def __init__(self, channel: str, detail: str) -> None:
        self.channel = channel
        self.detail = detail
        super().__init__(f"The {channel} channel failed: {detail}")


class SourceError(ChannelError):
    """The source cannot be read."""


class SinkError(ChannelError):
    """The sink (or dead-letter channel) cannot be written."""


class ServiceNotReadyError(FlowError):
    """A scoring service did not become ready within the allowed time."""

    def __init__(self, *, service: str, url: str, waited: float, last: str) -> None:
        self.service = service
        super().__init__(
            f"Scoring service {service!r} at {url} was not ready after {waited:.0f}s "
            f"(last answer: {last})."
        )


class ScoringError(FlowError):
    """A call to a scoring service failed."""

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        self.detail = detail
        self.status = status
        super().__init__(f"Scoring failed: {detail}")


class RetriableScoringError(ScoringError):
    """A failure that may pass on retry: 5xx, timeouts, refused connections."""


class PermanentScoringError(ScoringError):
    """A failure that retrying cannot fix: the service rejected the request."""


class RecordError(FlowError):
    """One record cannot go on; it goes to the dead-letter channel with `reason` and `step`."""

    def __init__(self, reason: str, *, step: str) -> None:
        self.reason = reason
        self.step = step
        super().__init__(f"Record failed in step {step!r}: {reason}")


class DecodeError(RecordError):
    """Input that could not be decoded into a record (bad JSON, a CSV row of the wrong width)."""


class SchemaViolation(RecordError):
    """A record does not match the channel's schema."""


class StepError(RecordError):
    """A step could not process a record."""


class EncodeError(RecordError):
    """A value of the record that the sink's encoding cannot carry (an integer past 64 bits in
    JSON, a lone surrogate in UTF-8): the sink left the record out."""
