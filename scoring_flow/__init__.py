"""The scoring flow: the worker that moves records from a data channel through scoring services
to a sink, dead-lettering what fails and reporting to the scheduler (`tekscore flow run CONFIG`).

Importing this package does no I/O. Layout: `config` (CONFIG and env), `channels/` (one module per
connector type), `codecs`, `schema_check`, `steps`, `items` (records' fates and counters),
`pipeline` (one micro-batch through the steps), `scoring` and `oip` (scoring-service client),
`reporting` (callbacks), `metrics`, `secrets`, `runner`, `baked` (standalone engine), `cli`.
"""

from __future__ import annotations

from scoring_flow.errors import (
    ChannelError,
    ConfigError,
    FlowError,
    PermanentScoringError,
    RecordError,
    RetriableScoringError,
    SchemaViolation,
    ScoringError,
    SecretError,
    ServiceNotReadyError,
    SinkError,
    SourceError,
    StepError,
)
from scoring_flow.items import Counters

__all__ = [
    "ChannelError",
    "ConfigError",
    "Counters",
    "FlowError",
    "PermanentScoringError",
    "RecordError",
    "RetriableScoringError",
    "SchemaViolation",
    "ScoringError",
    "SecretError",
    "ServiceNotReadyError",
    "SinkError",
    "SourceError",
    "StepError",
]
