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

`message` is one or two sentences for people: the failing part and its cause (the model download
error, the flow's `flow failed` reason). `part` names that part when there is one (`("service",
"iris")`, `("flow", "classify")`); `log_tail` carries the last lines of its log, apart from the
message (the status shows it only on request), without the server's own paths.
"""

from __future__ import annotations

import re
from typing import Literal


class TaskError(Exception):
    """Base of the errors raised by the job tasks."""


Part = tuple[Literal["service", "flow"], str]


class TaskFailed(TaskError):
    """A task failed; the job fails with this reason and message (about `part`, when a service or
    flow failed, whose log ended with `log_tail`)."""

    def __init__(
        self,
        reason: str,
        message: str,
        part: Part | None = None,
        log_tail: str | None = None,
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.part = part
        self.log_tail = log_tail or None

    def __reduce__(
        self,
    ) -> tuple[type[TaskFailed], tuple[str, str, Part | None, str | None]]:
        return (type(self), (self.reason, self.message, self.part, self.log_tail))


# an absolute path of two or more parts, alone or in a file:// URL (not in another URL:
# `http://h:1/a/b` stays)
_PATH = re.compile(
    r"(?:(?<=file://)|(?<![\w.:/~-]))/(?:[^\s\"'/:,;()\[\]{}]+/)+([^\s\"'/:,;()\[\]{}]*)"
)


def without_paths(text: str) -> str:
    """`text` with every absolute file path cut to its last part (`/srv/tekscore/jobs/j-1/flows/
    f.log` -> `f.log`): a log tail shown to API callers names no folder of the server."""
    return _PATH.sub(r"\1", text)
