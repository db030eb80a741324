"""The kubelet API's log endpoint, so `kubectl logs` (and `tkn logs`) work: the apiserver proxies
`pods/log` to `https://<node InternalIP>:10250/containerLogs/<ns>/<pod>/<container>` (does I/O:
a TLS server with a self-signed certificate; the apiserver does not verify kubelet certificates
unless `--kubelet-certificate-authority` is set, and this control plane does not set it).
Supported query parameters: `previous`, `tailLines`, `limitBytes`, `follow`. Other kubelet API
paths (exec, attach, port-forward, metrics) answer 404."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import ssl
import tempfile
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from tests.cluster.kubelet.network import NODE_IP

if TYPE_CHECKING:
    from tests.cluster.kubelet.main import Kubelet


def _certificate() -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tekscore-node")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(NODE_IP))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert_path, key_path = os.path.join(folder, "c.pem"), os.path.join(folder, "k.pem")
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        context.load_cert_chain(cert_path, key_path)
    return context


async def serve_logs(kubelet: Kubelet, *, port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            await _answer(kubelet, method, target, writer)
        except (OSError, asyncio.IncompleteReadError, ValueError, asyncio.LimitOverrunError):
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    server = await asyncio.start_server(handle, NODE_IP, port, ssl=_certificate())
    async with server:
        await server.serve_forever()


async def _answer(kubelet: Kubelet, method: str, target: str, writer: asyncio.StreamWriter) -> None:
    url = urlsplit(target)
    parts = [unquote(p) for p in url.path.split("/") if p]
    if method != "GET" or len(parts) != 4 or parts[0] != "containerLogs":
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return
    _, namespace, pod, container = parts
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    worker = next(
        (w for w in kubelet.workers.values() if w.namespace == namespace and w.name == pod), None
    )
    runs = None
    if worker is not None:
        c = next((c for c in worker.inits + worker.mains if c.name == container), None)
        if c is not None:
            runs = c.restarts
    if worker is None or runs is None:
        body = f'container "{container}" in pod "{pod}" is not available'.encode()
        writer.write(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        return
    run = runs - 1 if query.get("previous") in ("true", "1") else runs
    path = worker.log_path(container, max(run, 0))
    data = b""
    with contextlib.suppress(OSError), open(path, "rb") as f:
        data = f.read()
    if query.get("tailLines"):
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-int(query["tailLines"]) :]) if int(query["tailLines"]) else b""
    if query.get("limitBytes"):
        data = data[: int(query["limitBytes"])]
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
    writer.write(data)
    await writer.drain()
    if query.get("follow") not in ("true", "1"):
        return
    offset = os.path.getsize(path) if os.path.exists(path) else 0
    c = next(c for c in worker.inits + worker.mains if c.name == container)
    while True:
        with contextlib.suppress(OSError):
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            if chunk:
                offset += len(chunk)
                writer.write(chunk)
                await writer.drain()
        if c.process is None and c.restarts == runs and ("terminated" in c.state or worker.done):
            return
        await asyncio.sleep(0.2)
