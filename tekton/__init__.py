"""Tekton: the Pipeline/Task YAML (`manifests/`), the PipelineRun builder (`pipelinerun`), the
mapping of PipelineRun status to job status (`status`) and the Kubernetes tasks (`tasks`:
install, wait, uninstall with helm and the Kubernetes API). May import `ir` and `common`; the
local counterpart of the tasks is `local_runner`.
"""
