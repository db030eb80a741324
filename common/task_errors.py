"""Errors of a job's tasks (install, wait, uninstall), shared by both runners: the local runner
(`local_runner`) and the Kubernetes tasks (`tekton.tasks`); the scheduler turns them into the
job's failure.

Pure data, no I/O. The tree::

    TaskError                base of everything the tasks raise on purpose
    └── TaskFailed           a task failed; the job fails with `reason` and `message`

`reason` is one CamelCase word the scheduler shows as the job's reason:

- `InstallFailed`    the installer could not start the job (bad values, no `tekscore` executable,
                     a process that could not be spawned);
- `ModelLoadFailed`  a scoring service is up but one of its models failed to download or load;
- `ServiceFailed`    a scoring-service process exited;
- `ServiceNotReady`  a scoring service did not become ready within the install's deadline;
- `FlowFailed`       a flow process failed (non-zero exit, `flow failed` reported, a streaming flow
                     that ended, a flow that vanished without reporting).

`message` is a full sentence carrying the underlying error text (the model download error, the
flow's `flow failed` reason, the tail of a log).
"""

from __future__ import annotations


class TaskError(Exception):
    """Base of the errors raised by the job tasks."""


class TaskFailed(TaskError):
    """A task failed; the job fails with this reason and message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type[TaskFailed], tuple[str, str]]:
        return (type(self), (self.reason, self.message))
