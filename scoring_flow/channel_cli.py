"""`tekscore channel import | verify | sample | test-data`: data channels on the command line, as
`fastscore stream add / verify / sample` were.

Registers a typer group (`scoring_flow.cli.register` adds it). Module imports stay light: the
IR, the connectors and the FastScore mapping are imported when a command runs. The commands read
files and the environment; `verify` and `sample` reach the channel (files, S3, Kafka).

- `import DESCRIPTOR.json [--name N] [--direction source|sink] [-o FILE]`: the DataChannel YAML
  of a FastScore stream descriptor (`ir.fastscore`); notes (credentials to put in a Secret, a
  batch size for the flow) go to stderr;
- `verify NAME|FILE`: the channel's definition, then whether it can be reached;
- `sample NAME|FILE [-n 10]`: its first records, decoded and schema-checked;
- `test-data --samples DIR [--host H] [--port 8080] [--max-bytes N]`: serve the test-data
  server (`scoring_flow/testdata_server.py`) that `type: test-data` channels read and write.

NAME is a channel of the registry (`--channels DIR`, env `TEKSCORE_CHANNELS`); FILE a DataChannel
document or a FastScore descriptor. Exit codes: 0 fine, 1 the channel cannot be reached or read,
2 the definition is wrong.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ir.channels import ChannelSpec
    from scoring_flow.items import Item

Registry = Annotated[
    Path | None,
    typer.Option(
        "--channels",
        envvar="TEKSCORE_CHANNELS",
        help="Channel registry: a folder of DataChannel documents and FastScore descriptors.",
    ),
]
Ref = Annotated[str, typer.Argument(help="A channel of the registry, or a channel file.")]


def _logs() -> None:
    """Log lines on stderr, warnings and above unless TEKSCORE_LOG_LEVEL says otherwise (stdout
    is the command's answer)."""
    import os

    from common.logs import configure_logging

    configure_logging(os.environ.get("TEKSCORE_LOG_LEVEL") or "warning")


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def load_channel(ref: str, registry: Path | None) -> tuple[str, ChannelSpec]:
    """The channel named `ref` in the registry, or the one channel of the file `ref`, with
    relative file paths made absolute against its file's folder."""
    import ir
    from ir.channels import FileChannel
    from ir.collect import resolve_path
    from ir.errors import IRValidationError

    path = Path(ref)
    try:
        if path.is_file():
            docs = [d for d in ir.load_paths([path]) if d.kind == "DataChannel"]
            if len(docs) != 1:
                raise _fail(f"{ref}: expected one DataChannel (or a stream descriptor)", 2)
        else:
            known = ir.load_registry(registry)
            docs = [d for d in known if d.name == ref]
            if not docs:
                names = ", ".join(sorted(d.name for d in known)) or "(none)"
                where = f"in {registry}" if registry else "(no --channels registry given)"
                raise _fail(f"no channel or file {ref!r} {where}; channels: {names}", 2)
    except IRValidationError as exc:
        raise _fail(str(exc), 2) from exc
    doc = docs[0]
    spec = doc.doc.spec
    if isinstance(spec, FileChannel):
        if "${" in spec.config.path:
            raise _fail(f"channel {doc.name!r} takes parameters; check it in its flow", 2)
        config = spec.config.model_copy(
            update={"path": resolve_path(spec.config.path, doc.base_dir)}
        )
        spec = spec.model_copy(update={"config": config})
    return doc.name, spec


def _turned(spec: ChannelSpec, direction: str | None) -> ChannelSpec:
    if direction is None or direction == spec.direction:
        return spec
    from pydantic import TypeAdapter, ValidationError

    from ir.channels import ChannelSpec as Spec

    data = {**spec.model_dump(by_alias=True, exclude_none=True), "direction": direction}
    try:
        turned: ChannelSpec = TypeAdapter(Spec).validate_python(data)
    except ValidationError as exc:
        raise _fail(f"the channel cannot be a {direction}: {exc.errors()[0]['msg']}", 2) from exc
    return turned


def register(app: typer.Typer) -> None:
    """Add the `channel` command group."""
    channel_app = typer.Typer(
        name="channel",
        help="Data channels: import FastScore stream descriptors, verify and sample channels, "
        "serve test data.",
        no_args_is_help=True,
    )

    @channel_app.command("import")
    def import_(
        descriptor: Annotated[Path, typer.Argument(help="A FastScore stream descriptor (JSON).")],
        name: Annotated[
            str | None, typer.Option(help="The channel's name (default: the file's name).")
        ] = None,
        direction: Annotated[
            str | None,
            typer.Option(help="source or sink (default: either, as a flow names it)."),
        ] = None,
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
        ] = None,
    ) -> None:
        """The DataChannel YAML of a FastScore stream descriptor (schemas it names are read
        from the *.avsc files beside it)."""
        text, notes = import_descriptor(descriptor, name=name, direction=direction)
        for note in notes:
            typer.echo(f"note: {note}", err=True)
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")

    @channel_app.command("verify")
    def verify(
        channel: Ref,
        channels: Registry = None,
        direction: Annotated[
            str | None, typer.Option(help="Check it as a source or a sink.")
        ] = None,
    ) -> None:
        """Check a channel's definition and that it can be reached (file readable, S3 object
        reachable with its credentials, Kafka topic there), without starting a job."""
        from scoring_flow.channels.probe import verify as probe
        from scoring_flow.errors import FlowError

        _logs()
        name, spec = load_channel(channel, channels)
        spec = _turned(spec, direction)
        try:
            said = asyncio.run(probe(spec))
        except FlowError as exc:
            raise _fail(f"channel {name} ({spec.type} {spec.direction}): {exc}", 1) from exc
        typer.echo(f"channel {name} ({spec.type} {spec.direction}): OK: {said}")

    @channel_app.command("sample")
    def sample(
        channel: Ref,
        channels: Registry = None,
        count: Annotated[int, typer.Option("-n", min=1, max=10_000, help="How many.")] = 10,
    ) -> None:
        """Print a source's first records, decoded and checked against its schema (a record
        that fails says why), without starting a job."""
        from scoring_flow.channels.probe import sample as probe
        from scoring_flow.errors import FlowError

        _logs()
        name, spec = load_channel(channel, channels)
        spec = _turned(spec, "source")
        try:
            items = asyncio.run(probe(spec, count))
        except FlowError as exc:
            raise _fail(f"channel {name} ({spec.type} {spec.direction}): {exc}", 1) from exc
        for number, item in enumerate(items, 1):
            typer.echo(f"{number:>4}: {sample_line(item)}")
        bad = sum(1 for i in items if i.failure is not None)
        typer.echo(f"{len(items)} records, {bad} failed", err=True)

    @channel_app.command("test-data")
    def test_data(
        samples: Annotated[
            Path, typer.Option(help="A folder of samples, one file per sample, named as it.")
        ],
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8080,
        max_bytes: Annotated[
            int, typer.Option(min=1, help="Bytes the sinks and uploads may hold in all.")
        ] = 64 << 20,
    ) -> None:
        """Serve sample records to `type: test-data` sources and keep what `type: test-data`
        sinks write (in memory), for trying a pipeline without Kafka or S3."""
        import uvicorn

        from scoring_flow.testdata_server import make_app

        _logs()
        app_ = make_app(samples, max_bytes=max_bytes)
        uvicorn.run(app_, host=host, port=port, log_config=None, access_log=False)

    app.add_typer(channel_app)


def sample_line(item: Item) -> str:
    """One sampled record as a line: its JSON, or what failed and the input."""
    if item.failure is None:
        return json.dumps(item.results[0], default=str)
    failure = item.failure
    entry = {"$error": failure.reason, "$step": failure.step, "input": item.original}
    return json.dumps(entry, default=str)


def import_descriptor(
    path: Path, *, name: str | None, direction: str | None
) -> tuple[str, list[str]]:
    """The DataChannel YAML for a descriptor file, and notes for the person importing it."""
    import yaml

    from common.names import DNS1123_LABEL_RE
    from ir.fastscore import DescriptorError, channel_document, convert
    from ir.loader import named_schemas, read_schema_files

    if direction not in (None, "source", "sink"):
        raise _fail(f"--direction {direction!r}: source or sink", 2)
    channel = name or path.stem
    if not DNS1123_LABEL_RE.match(channel):
        raise _fail(
            f"{channel!r} is not a DNS-1123 label (lower-case letters, digits, '-'): give --name",
            2,
        )
    try:
        descriptor = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(f"{path}: {exc}", 2) from exc
    schemas, problems = named_schemas(read_schema_files(path.resolve().parent))
    try:
        conv = convert(
            descriptor,
            name=channel,
            role=direction,  # type: ignore[arg-type]
            schemas=schemas,
        )
    except DescriptorError as exc:
        raise _fail(f"{path}: {exc}", 2) from exc
    notes = [f"{p.file}: {p.msg}" for p in problems]
    if conv.credentials:
        keys = " ".join(f"--from-literal={k}=<{_field(k)}>" for k in conv.credentials)
        env = ", ".join(
            f"TEKSCORE_SECRET_{channel.upper().replace('-', '_')}_{k.upper().replace('-', '_')}"
            for k in conv.credentials
        )
        notes.append(
            f"the descriptor's S3 credentials are not copied: create the Secret {channel!r} "
            f"(kubectl create secret generic {channel} {keys}); locally set {env}"
        )
    if conv.batch_size:
        notes.append(f"Batching.Watermark {conv.batch_size}: set batchSize on the flow")
    if conv.any_direction:
        notes.append("a descriptor has no direction: this channel serves as a source or a sink")
    if conv.notes:
        notes.append(f"{', '.join(conv.notes)}: accepted, nothing to set")
    if descriptor.get("Loop"):
        notes.append("Loop: a flow that reads this channel must be a streaming flow")
    text = yaml.safe_dump(channel_document(conv, name=channel, source=path.name), sort_keys=False)
    return text, notes


def _field(key: str) -> str:
    return {"access-key-id": "AccessKeyID", "secret-access-key": "SecretAccessKey"}[key]
