"""What a job's process sees: the environment built from nothing (local_runner/environment.py)
and, with real bubblewrap, the sandbox (local_runner/sandbox.py): the state folder hidden but
the job's own folder, files outside the data roots absent, Python and code sources read-only,
only the private folder, the termination record and the data roots writable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from local_runner.environment import ChildEnv
from local_runner.sandbox import Sandbox, SandboxUnavailable, detect, find_bwrap, python_paths

SERVER_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "HOME": "/root",
    "TEKSCORE_API_TOKENS": "ops-token",
    "TEKSCORE_SECRET": "signing-secret",
    "TEKSCORE_SECRET_S3_CREDS_ACCESS_KEY": "mine",
    "TEKSCORE_SECRET_OTHER_TEAM_PASSWORD": "theirs",
    "TEKSCORE_PROGRESS_INTERVAL": "0.5",
    "AWS_REGION": "eu-west-1",
    "AWS_SECRET_ACCESS_KEY": "server-aws-key",
    "SSH_AUTH_SOCK": "/run/ssh.sock",
}


def test_a_child_starts_from_nothing_but_path_locale_and_its_private_folder(tmp_path: Path):
    env = ChildEnv(source=SERVER_ENV).base(tmp_path / "tmp")
    assert env == {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "TEKSCORE_PROGRESS_INTERVAL": "0.5",
        "HOME": str(tmp_path / "tmp"),
        "TMPDIR": str(tmp_path / "tmp"),
    }


def test_the_operator_names_more_variables_but_never_the_servers_credentials(tmp_path: Path):
    names = ("AWS_REGION", "TEKSCORE_API_TOKENS", "TEKSCORE_SECRET", "TEKSCORE_SECRET_OTHER_TEAM_PASSWORD", "NOT_SET")  # fmt: skip
    env = ChildEnv(source=SERVER_ENV, names=names).base(tmp_path)
    assert env["AWS_REGION"] == "eu-west-1"
    assert not {"TEKSCORE_API_TOKENS", "TEKSCORE_SECRET", "NOT_SET"} & set(env)
    assert not any(k.startswith("TEKSCORE_SECRET_") for k in env)


def test_a_flow_gets_the_secret_keys_its_pipeline_names_from_variables_or_files(tmp_path: Path):
    (tmp_path / "vault").mkdir()
    (tmp_path / "vault" / "token").write_text("from-a-file\n")
    child = ChildEnv(source=SERVER_ENV, secrets_dir=str(tmp_path))
    env, missing = child.secrets(
        [
            {"name": "s3-creds", "key": "access-key"},
            {"name": "vault", "key": "token"},
            {"name": "nobody", "key": "key"},
        ]
    )
    assert env == {
        "TEKSCORE_SECRET_S3_CREDS_ACCESS_KEY": "mine",
        "TEKSCORE_SECRET_VAULT_TOKEN": "from-a-file",
    }
    assert missing == ["nobody/key"]


# ---------------------------------------------------------------- real bubblewrap

PROBE = """
import json, os, sys
seen = {}
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as f:
            seen[path] = "read " + str(len(f.read()))
    except OSError as exc:
        seen[path] = type(exc).__name__
    try:
        with open(path + ".new", "wb") as f:
            f.write(b"x")
        seen[path + " (write beside)"] = "written"
    except OSError as exc:
        seen[path + " (write beside)"] = type(exc).__name__
print(json.dumps(seen))
"""


@pytest.fixture
def bwrap() -> str:
    found = find_bwrap()
    if found is None:
        pytest.skip("bubblewrap is not installed (.ci/run installs it)")
    return found


def test_inside_the_sandbox_a_process_sees_only_what_is_its_own(tmp_path: Path, bwrap: str):
    home, data, code, outside = (tmp_path / n for n in ("home", "data", "code", "outside"))
    job_dir = home / "jobs" / "j-mine"
    private = job_dir / "tmp"
    for folder in (private, home / "jobs" / "j-other", data, code, outside):
        folder.mkdir(parents=True)
    files = {
        "state": home / "state.db",
        "secret": home / "secret",
        "other job": home / "jobs" / "j-other" / "processes.json",
        "table": job_dir / "processes.json",
        "record": job_dir / "f.termination.json",
        "private": private / "scratch",
        "data": data / "in.jsonl",
        "code": code / "step.py",
        "outside": outside / "passwd",
    }
    for path in files.values():
        path.write_text("content")
    sandbox = Sandbox(
        bwrap=bwrap, home=home, data_roots=(data,), code_folders=(code,), python=python_paths()
    )
    command = sandbox.wrap(
        [sys.executable, "-c", PROBE, *map(str, files.values())],
        job_dir=job_dir,
        private=private,
        writable=[files["record"]],
    )
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    got = {name: (seen[str(p)], seen[f"{p} (write beside)"]) for name, p in files.items()}
    assert got == {
        # the home is an empty tmpfs: a write there lands in memory, never on the host (below)
        "state": ("FileNotFoundError", "written"),
        "secret": ("FileNotFoundError", "written"),
        "other job": ("FileNotFoundError", "FileNotFoundError"),
        "table": ("read 7", "OSError"),  # the job's folder: read-only
        "record": ("read 7", "OSError"),  # its own record: writable in place (below)
        "private": ("read 7", "written"),
        "data": ("read 7", "written"),
        "code": ("read 7", "OSError"),
        "outside": ("FileNotFoundError", "FileNotFoundError"),
    }
    assert sorted(p.name for p in home.iterdir()) == ["jobs", "secret", "state.db"]
    assert (data / "in.jsonl.new").read_text() == "x"
    assert not (job_dir / "processes.json.new").exists()


def test_the_termination_record_is_writable_in_place_and_python_is_read_only(
    tmp_path: Path, bwrap: str
):
    home = tmp_path / "home"
    job_dir = home / "jobs" / "j-1"
    (job_dir / "tmp").mkdir(parents=True)
    record = job_dir / "f.termination.json"
    record.write_bytes(b"")
    site = Path(python_paths()[0]) / "sandbox-probe.txt"
    script = (
        "import sys\n"
        f"open({str(record)!r}, 'w').write('{{\"reason\": \"Completed\"}}')\n"
        "try:\n"
        f"    open({str(site)!r}, 'w')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    sandbox = Sandbox(bwrap=bwrap, home=home, python=python_paths())
    command = sandbox.wrap(
        [sys.executable, "-c", script], job_dir=job_dir, private=job_dir / "tmp", writable=[record]
    )
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "OSError"
    assert json.loads(record.read_text()) == {"reason": "Completed"}
    assert not site.exists()


def test_sandbox_modes(monkeypatch: pytest.MonkeyPatch, bwrap: str):
    assert detect("off") == (None, None)
    assert detect("auto") == (bwrap, None)
    assert detect("required") == (bwrap, None)
    monkeypatch.setenv("PATH", "/nonexistent")
    found, warning = detect("auto")
    assert found is None
    assert warning is not None and warning.startswith("bwrap (Debian package bubblewrap) is not")
    with pytest.raises(SandboxUnavailable, match="--sandbox required, but bwrap"):
        detect("required")
