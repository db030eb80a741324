"""One router per resource: jobs, flow callbacks, pipelines, health."""
