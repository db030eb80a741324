"""Errors of the scheduler, mapped to HTTP answers in one place (`scheduler.api.errors`).

    SchedulerError                 base
    ├── JobNotFound                404
    ├── JobFinished                409, the body is the job
    ├── IdempotencyConflict        409: the key was used with another body
    ├── BadCursor                  422: a list cursor this store never gave out
    ├── PreprocessUnavailable      503: the pre-processing worker died with the request
    └── Unauthorized / Forbidden   401 / 403

IR problems are `ir.IRValidationError` (422 with every error).
"""

from __future__ import annotations

from scheduler.schemas import JobPublic


class SchedulerError(Exception):
    """Base of the scheduler's errors."""


class JobNotFound(SchedulerError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r}")
        self.job_id = job_id


class JobFinished(SchedulerError):
    def __init__(self, job: JobPublic) -> None:
        super().__init__(f"job {job.id} already finished ({job.state})")
        self.job = job


class IdempotencyConflict(SchedulerError):
    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was already used with a different request body")


class BadCursor(SchedulerError):
    def __init__(self, cursor: str) -> None:
        super().__init__(f"not a valid cursor: {cursor!r}")


class PreprocessUnavailable(SchedulerError):
    """Pre-processing could not run (its worker process died with the request): retry."""


class Unauthorized(SchedulerError):
    def __init__(self, message: str = "a bearer token is required") -> None:
        super().__init__(message)


class Forbidden(SchedulerError):
    def __init__(self, message: str = "this token is not accepted here") -> None:
        super().__init__(message)
