"""Tekton: the Pipeline/Task YAML (`manifests/`), the PipelineRun builder and the task entrypoints
(install, wait, uninstall) shared by the Kubernetes and local backends. May import `ir`.
"""
