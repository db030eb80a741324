"""The test cluster of one session (does I/O): the control plane of `../shared/cluster` (or
`$TEKSCORE_CLUSTER_ASSETS`), the test kubelet, and the platform chart installed with real helm,
so the scheduler runs as the chart's Deployment pod under the kubelet. Used by
`tests/cluster/conftest.py` and `bench/cluster.py`.

One session per machine at a time: the ClusterIP range, the bridge and the netns names are
host-wide, so `start` takes a host-wide `flock` first, cleans what a crashed session left
(control plane processes, kubelet, network, folders) and `stop` removes everything again.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "bin"
BASE = Path(os.environ.get("TEKSCORE_CLUSTER_DIR", "/tmp/tekscore-cluster"))
LOCK = (
    Path("/run/lock/tekscore-cluster.lock")
    if Path("/run/lock").is_dir()
    else Path("/tmp/tekscore-cluster.lock")
)
PLATFORM_NS = "tekscore"
JOBS_NS = "scoring-jobs"
RELEASE = "tekscore"
LOCK_WAIT = 1800.0


class Unavailable(Exception):
    """The test cluster cannot run here (the reason is the message)."""


class Gave(Exception):
    """Raised inside a `wait_for` check: stop waiting at once, the condition can no longer hold."""


def assets() -> Path:
    """The folder with `up.sh`/`down.sh` and the binaries: `$TEKSCORE_CLUSTER_ASSETS`, else
    `../shared/cluster` beside the checkout."""
    configured = os.environ.get("TEKSCORE_CLUSTER_ASSETS")
    folder = Path(configured) if configured else ROOT.parent / "shared" / "cluster"
    if not (folder / "up.sh").is_file():
        where = (
            "$TEKSCORE_CLUSTER_ASSETS" if configured else "../shared/cluster beside the checkout"
        )
        raise Unavailable(f"no control plane: {folder}/up.sh not found ({where})")
    return folder


def check_host() -> None:
    """Raise `Unavailable` unless this machine can run pods (root, bwrap, ip, nsenter)."""
    if os.geteuid() != 0:
        raise Unavailable("the test kubelet needs root (network namespaces, bind mounts)")
    for tool in ("bwrap", "ip", "nsenter", "openssl", "curl"):
        if shutil.which(tool) is None:
            raise Unavailable(
                f"{tool} not found on PATH (apt-get install bubblewrap iproute2 "
                "util-linux openssl curl)"
            )
    for tool in ("kubectl", "helm"):
        if not (TOOLS / tool).is_file():
            raise Unavailable(f"{TOOLS / tool} not found (make tools)")


@dataclass
class Cluster:
    base: Path
    env: dict[str, str]
    lock: Any
    kubelet: subprocess.Popen[bytes] | None = None
    api_token: str = ""
    callback_secret: str = ""
    scheduler_ip: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.base / "run"

    @property
    def data(self) -> Path:
        """Read-write in every pod at this same path (a shared filesystem for file channels)."""
        return self.base / "data"

    @property
    def kubeconfig(self) -> str:
        return self.env["KUBECONFIG"]

    @property
    def scheduler_url(self) -> str:
        return f"http://{self.scheduler_ip}:8000"

    def tool_env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{TOOLS}:{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}"
        env["KUBECONFIG"] = self.kubeconfig
        env.update(extra)
        return env

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        token: str | None = None,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """kubectl as admin, or with a bearer `token` (then no client certificate)."""
        cmd = [str(TOOLS / "kubectl")]
        if token is not None:
            cmd += [
                f"--server={self.env['APISERVER_URL']}",
                f"--certificate-authority={self.env['CA_CERT']}",
                f"--token={token}",
                "--kubeconfig=/dev/null",
            ]
        result = subprocess.run(
            [*cmd, *args],
            env=self.tool_env(),
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(TOOLS / "helm"), *args],
            env=self.tool_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def token(self, service_account: str, namespace: str) -> str:
        """A token of a ServiceAccount (TokenRequest API), to act as it."""
        return self.kubectl(
            "-n", namespace, "create", "token", service_account, "--duration=1h"
        ).stdout.strip()

    def client(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client of the scheduler's Service (ClusterIP, relayed by the kubelet)."""
        return httpx.Client(
            base_url=self.scheduler_url,
            trust_env=False,
            timeout=30.0,
            headers={"Authorization": f"Bearer {self.api_token}"},
            **kwargs,
        )

    def logs(self) -> str:
        """The tail of the kubelet's log (for failure messages)."""
        path = self.base / "kubelet.log"
        return path.read_text()[-4000:] if path.exists() else ""


def wait_for(what: str, check: Callable[[], Any], *, timeout: float, interval: float = 0.25) -> Any:
    """Poll `check()` until it returns something truthy; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (AssertionError, httpx.HTTPError, subprocess.SubprocessError, ValueError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what}"
        + (f" (last error: {last})" if last else "")
    )


def _read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def _kill_stale(base: Path, folder: Path) -> None:
    """Stop what an earlier session left in `base` (it holds no lock any more)."""
    pid_file = base / "kubelet.pid"
    if pid_file.exists():
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"tests.cluster.kubelet" in cmdline:
                os.killpg(pid, signal.SIGKILL)
    if (base / "run" / "env").exists():
        subprocess.run(
            [str(folder / "down.sh"), str(base / "run")],
            capture_output=True,
            timeout=60,
            env={**os.environ, "PATH": f"{TOOLS}:{os.environ['PATH']}"},
        )
    # pods left by a killed kubelet: processes inside our network namespaces
    netns = Path("/run/netns")
    if netns.is_dir():
        for ns in netns.glob("tks-*"):
            pids = subprocess.run(
                ["ip", "netns", "pids", ns.name], capture_output=True, text=True
            ).stdout.split()
            for number in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(number), signal.SIGKILL)
    subprocess.run(
        [sys.executable, "-c", "from tests.cluster.kubelet import network; network.cleanup()"],
        cwd=ROOT,
        check=False,
        capture_output=True,
    )
    shutil.rmtree(base, ignore_errors=True)


def _lock() -> Any:
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    handle = open(LOCK, "w")  # noqa: SIM115 - held for the session
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise AssertionError(
                    f"another test cluster session holds {LOCK} since {LOCK_WAIT:.0f} s"
                ) from None
            time.sleep(1.0)


def start(*, backoff: float = 10.0) -> Cluster:
    """Start the whole test cluster; `stop` it. Raises `Unavailable` when it cannot run here."""
    folder = assets()
    check_host()
    lock = _lock()
    t0 = time.monotonic()
    try:
        _kill_stale(BASE, folder)
        BASE.mkdir(parents=True)
        env = {
            **os.environ,
            "PATH": f"{TOOLS}:{os.environ['PATH']}",
            "KUBECTL": str(TOOLS / "kubectl"),
        }
        up = subprocess.run(
            [str(folder / "up.sh"), str(BASE / "run")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if up.returncode != 0:
            raise AssertionError(f"up.sh failed:\n{up.stdout[-2000:]}\n{up.stderr[-3000:]}")
        cluster = Cluster(base=BASE, env=_read_env(BASE / "run" / "env"), lock=lock)
    except BaseException:
        _kill_stale(BASE, folder)
        lock.close()
        raise
    cluster.timings["control plane"] = time.monotonic() - t0
    try:
        _start_kubelet(cluster, backoff=backoff)
        cluster.timings["kubelet"] = time.monotonic() - t0
        _install_platform(cluster)
        cluster.timings["platform"] = time.monotonic() - t0
    except BaseException:
        stop(cluster)
        raise
    return cluster


def _start_kubelet(cluster: Cluster, *, backoff: float) -> None:
    cluster.data.mkdir(parents=True, exist_ok=True)
    log = open(cluster.base / "kubelet.log", "ab")  # noqa: SIM115 - the child's stderr
    cluster.kubelet = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.cluster.kubelet",
            "--env",
            str(cluster.run_dir / "env"),
            "--state",
            str(cluster.base / "kubelet"),
            "--repo",
            str(ROOT),
            "--shared",
            str(cluster.data),
            "--backoff",
            str(backoff),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    (cluster.base / "kubelet.pid").write_text(str(cluster.kubelet.pid))

    def node_ready() -> bool:
        if cluster.kubelet is not None and cluster.kubelet.poll() is not None:
            raise AssertionError(f"the kubelet exited:\n{cluster.logs()}")
        node = cluster.get("node", "tekscore-node")
        return any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in node["status"].get("conditions") or []
        )

    wait_for("the node to be Ready", node_ready, timeout=60)


def _install_platform(cluster: Cluster) -> None:
    """Namespaces, the auth Secret, and `helm install` of charts/tekscore (the scheduler runs
    as its Deployment pod, under its own ServiceAccount)."""
    cluster.api_token = secrets.token_hex(16)
    cluster.callback_secret = secrets.token_hex(16)
    for ns in (PLATFORM_NS, JOBS_NS):
        cluster.kubectl("create", "namespace", ns)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "tekscore-auth", "namespace": PLATFORM_NS},
        "data": {
            "api-tokens": base64.b64encode(cluster.api_token.encode()).decode(),
            "callback-secret": base64.b64encode(cluster.callback_secret.encode()).decode(),
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))
    cluster.helm(
        "install",
        RELEASE,
        str(ROOT / "charts" / "tekscore"),
        "-n",
        PLATFORM_NS,
        "--set",
        f"jobsNamespace={JOBS_NS}",
        "--wait",
        "--timeout",
        "5m",
    )
    svc = cluster.get("-n", PLATFORM_NS, "service", RELEASE)
    cluster.scheduler_ip = svc["spec"]["clusterIP"]

    def ready() -> bool:
        with cluster.client() as http:
            return http.get("/readyz").status_code == 200

    wait_for("the scheduler Service to answer /readyz", ready, timeout=120)


def stop(cluster: Cluster) -> None:
    """Stop the kubelet (it kills its pods and removes the network), the control plane, and
    remove the session folder (kept when TEKSCORE_CLUSTER_KEEP=1, for debugging)."""
    folder = assets()
    try:
        if cluster.kubelet is not None and cluster.kubelet.poll() is None:
            cluster.kubelet.send_signal(signal.SIGTERM)
            try:
                cluster.kubelet.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(cluster.kubelet.pid, signal.SIGKILL)
                cluster.kubelet.wait()
        subprocess.run(
            [str(folder / "down.sh"), str(cluster.run_dir)],
            capture_output=True,
            timeout=60,
            env={**os.environ, "PATH": f"{TOOLS}:{os.environ['PATH']}"},
        )
        if os.environ.get("TEKSCORE_CLUSTER_KEEP") != "1":
            _kill_stale(cluster.base, folder)
    finally:
        cluster.lock.close()


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[Cluster]:
    cluster = start(**kwargs)
    try:
        yield cluster
    finally:
        stop(cluster)


def pods_of(cluster: Cluster, namespace: str, selector: str) -> Sequence[dict[str, Any]]:
    items: Sequence[dict[str, Any]] = cluster.get("-n", namespace, "pods", "-l", selector)["items"]
    return items
