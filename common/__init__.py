"""What several tekscore packages need, written once: a leaf that imports nothing of ours.

One module per thing; import the module you need (nothing is re-exported here, so a light
import such as `common.names` never pulls in httpx or boto3):

- `names`: the DNS-1123 label regex and name type (pure);
- `fields`: the field types of record schemas (pure);
- `avro`: field lists of any Avro type, parsed and checked with fastavro (pure);
- `files`: atomic file writes (file I/O);
- `ports`: a free loopback port (binds a socket);
- `logs`: the structlog set-up every process uses (configures logging when called);
- `retry`: the one tenacity retry `Policy` and the transient-HTTP-error predicate (pure);
- `fetch`: fetching a file by URI for models and user code (file, HTTP, S3 I/O);
- `task_errors`: the errors of a job's tasks, shared by both runners (pure).

Every package may import it (DESIGN.md section 1; the import-linter contracts in pyproject.toml).
"""
