"""The job's tasks (install -> wait -> finally) as code shared by the Kubernetes and local
backends (DESIGN.md section 4).

`LocalInstaller` runs a job's scoring services and flows as supervised local processes (it spawns,
watches and signals processes and writes files under the job's folder: I/O); `errors` is pure.
Imports only `ir` of ours: services and flows are started by command line, never by import.
"""

from tekton.tasks.errors import TaskError, TaskFailed
from tekton.tasks.local import FlowReport, LocalInstaller

__all__ = ["FlowReport", "LocalInstaller", "TaskError", "TaskFailed"]
