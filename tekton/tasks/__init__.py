"""The Kubernetes job tasks (install -> wait -> finally) that the Tekton Pipeline runs as
`tekscore task install|wait|uninstall` (DESIGN.md section 4, docs/tasks.md).

`fetch` downloads the job bundle from the scheduler and checks its render, `helm` installs and
uninstalls the release, `kube` watches the release's pods and Jobs (all three do I/O). Their
errors are `common.task_errors`, shared with the local runner (`local_runner`).
"""
