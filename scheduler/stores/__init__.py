"""Where the job service keeps jobs: the `JobStore` protocol and its two implementations,
`sqlite` (the local backend: `$TEKSCORE_HOME/state.db`) and `kubernetes` (the PipelineRun, its
annotations and the IR ConfigMap, read from a watch-fed cache: no state of its own)."""
