"""Backends run a job's install -> wait -> finally pipeline: `local` (processes on this machine)
and `tekton` (PipelineRuns). They report what happens through `JobService.transition`."""
