"""What runs a job's install -> wait -> finally pipeline: the `Runner` protocol and its two
implementations, `local` (asyncio tasks of this process driving `local_runner`'s processes) and
`tekton` (Tekton runs the PipelineRun the store created; the runner stops it by patch)."""
