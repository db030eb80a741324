"""A flow loads TLS roots only when it calls a service over https (the local runner's services are
plain HTTP on loopback, and loading the CA bundle is on every flow's start-up path): a service
behind a self-signed certificate is still refused, a plain-HTTP one answers."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest

from ir.values import ServiceEndpoint
from scoring_flow.errors import ServiceNotReadyError
from scoring_flow.scoring import ScoringClient

READY = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(READY)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


def _self_signed(folder: Path) -> ssl.SSLContext:
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def _endpoint(url: str) -> dict[str, ServiceEndpoint]:
    return {"svc": ServiceEndpoint(url=url, protocol="v2", models=["m"])}


async def _ready(url: str) -> None:
    async with ScoringClient(_endpoint(url), timeout=2.0, max_retries=0) as client:
        await client.wait_ready(budget=1.0)


def test_an_https_service_with_an_untrusted_certificate_is_refused_and_plain_http_works(
    tmp_path: Path,
):
    async def run() -> str:
        tls = await asyncio.start_server(_answer, "127.0.0.1", 0, ssl=_self_signed(tmp_path))
        plain = await asyncio.start_server(_answer, "127.0.0.1", 0)
        tls_port = tls.sockets[0].getsockname()[1]
        plain_port = plain.sockets[0].getsockname()[1]
        try:
            await _ready(f"http://127.0.0.1:{plain_port}")  # answers: no exception
            with pytest.raises(ServiceNotReadyError) as refused:
                await _ready(f"https://127.0.0.1:{tls_port}")
            return str(refused.value)
        finally:
            tls.close()
            plain.close()

    assert "CERTIFICATE_VERIFY_FAILED" in asyncio.run(run())
