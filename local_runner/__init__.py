"""The local runner: a job's install -> wait -> finally on this machine, its scoring services and
flows as supervised local child processes (the embedded backend's counterpart of the Kubernetes
tasks in `tekton.tasks`; DESIGN.md section 4, docs/local-backend.md).

Modules: `installer` (`LocalInstaller`: install, wait, uninstall, re-attach after a restart),
`processes` (spawning, the `processes.json` table, process identity, stopping process groups),
`readiness` (waiting for services to be ready and saying why one is not). All of them do I/O:
they spawn, watch and signal processes, write files under the job's folder and poll the
services over HTTP. Imports `ir` and `common` only; services and flows are started by command
line, never by import. Of the scheduler's layers it is the only one that imports `subprocess`
or `psutil` (an import-linter contract).
"""

from common.task_errors import TaskError, TaskFailed
from local_runner.installer import FlowReport, LocalInstaller

__all__ = ["FlowReport", "LocalInstaller", "TaskError", "TaskFailed"]
