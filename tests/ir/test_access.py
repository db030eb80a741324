"""What a job may touch (ir/access.py), checked at pre-processing on real files: data roots with
symlinks and `..` resolved first, the server's state folder never, code only from code sources
(folders and URL prefixes, with the tricks URLs allow), data models under the data roots, bind
addresses, the secrets allow-list; each refusal at the file and line that wrote the path."""

from __future__ import annotations

from pathlib import Path

import pytest

import ir
from ir.access import Access, UrlPrefix, parse_secret_allow
from tests.attacks import one_flow as pipeline


def problems(text: str, access: Access, base_dir: Path, **job: object) -> list[str]:
    """Every issue pre-processing reports for `p.yaml` (written in `base_dir`)."""
    path = base_dir / "p.yaml"
    path.write_text(text)
    try:
        ir.preprocess(ir.load_paths([path]), access=access, job=ir.JobInfo(**job))  # type: ignore[arg-type]
    except ir.IRValidationError as exc:
        return [str(i).replace(str(base_dir), "<dir>") for i in exc.issues]
    return []


@pytest.fixture
def land(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(a data root, a folder outside it, the server's home inside the data root)."""
    root = tmp_path / "data"
    outside = tmp_path / "outside"
    home = root / "home"
    for folder in (root, outside, home / "jobs" / "j-other"):
        folder.mkdir(parents=True)
    return root, outside, home


def test_files_under_a_data_root_pass_and_every_other_is_refused_at_its_line(land):
    root, outside, home = land
    access = Access.build(data_roots=[root], code_sources=[], home=home)
    (root / "in.jsonl").write_text("{}\n")
    assert problems(pipeline(source="{type: file, config: {path: in.jsonl}}"), access, root) == []
    assert problems(
        pipeline(
            source="{type: file, config: {path: /etc/passwd}}",
            sink=f"{{type: file, config: {{path: {outside}/out.jsonl}}}}",
        ),
        access,
        root,
    ) == [
        "<dir>/p.yaml:6: spec.dataChannels[0].config.path: /etc/passwd is outside the data "
        "roots (<dir>): setting TEKSCORE_DATA_ROOTS",
        f"<dir>/p.yaml:7: spec.dataChannels[1].config.path: {outside}/out.jsonl is outside the "
        f"data roots (<dir>): setting TEKSCORE_DATA_ROOTS",
    ]


def test_dot_dot_and_symlinks_are_resolved_before_the_check(land):
    root, outside, home = land
    access = Access.build(data_roots=[root], code_sources=[], home=home)
    (outside / "secret.txt").write_text("x")
    (root / "link").symlink_to(outside)
    found = problems(
        pipeline(
            source="{type: file, config: {path: ../outside/secret.txt}}",
            sink=f"{{type: file, config: {{path: {root}/link/out.jsonl}}}}",
        ),
        access,
        root,
    )
    assert [f.split(": ", 2)[2] for f in found] == [
        f"{outside}/secret.txt is outside the data roots (<dir>): setting TEKSCORE_DATA_ROOTS",
        "<dir>/link/out.jsonl leads (through a symlink or '..') outside the data roots (<dir>): "
        "setting TEKSCORE_DATA_ROOTS",
    ]


def test_the_state_folder_is_refused_even_inside_a_data_root(land):
    root, _, home = land
    access = Access.build(data_roots=[root], code_sources=[], home=home)
    found = problems(
        pipeline(
            sink=f"{{type: file, config: {{path: {home}/state.db}}}}",
            dead_letter=f"{{type: file, config: {{path: {home}/jobs/j-other/flows/f.log}}}}",
        ),
        access,
        root,
    )
    assert [f.split(": ", 2)[2] for f in found] == [
        "<dir>/home/state.db is inside the server's state folder, which no job may touch",
        "<dir>/home/jobs/j-other/flows/f.log is inside the server's state folder, which no job "
        "may touch",
    ]


def test_no_data_root_refuses_every_file_and_no_rule_allows_them(land):
    root, _, _ = land
    text = pipeline(source="{type: file, config: {path: /etc/passwd}}")
    assert problems(text, Access.build(data_roots=[], code_sources=[]), root) == [
        "<dir>/p.yaml:6: spec.dataChannels[0].config.path: /etc/passwd is outside the data roots "
        "(none configured): setting TEKSCORE_DATA_ROOTS"
    ]
    assert problems(text, Access.build(data_roots=None, code_sources=None), root) == []


def test_a_python_step_loads_only_from_a_code_source(land):
    root, outside, home = land
    code = root / "code"
    code.mkdir()
    access = Access.build(
        data_roots=[root],
        code_sources=[str(code), "https://models.example.com/approved/"],
        home=home,
    )
    allowed = [f"{code}/step.py", "https://models.example.com/approved/team/step.py"]
    refused = [
        f"{outside}/x.py",
        f"{code}/../step.py",  # .. leaves the code folder
        f"{code}/%2e%2e/step.py",  # the loader decodes file:// URIs: so does the check
        "http://models.example.com/approved/step.py",  # another scheme
        "https://models.example.com/approved-not/step.py",  # a prefix is a folder
        "https://models.example.com.evil.net/approved/step.py",
        "https://models.example.com@evil.net/approved/step.py",
        "https://models.example.com/approved/../evil.py",
        "https://models.example.com/approved/%2E%2E/evil.py",
        "http://evil.example.net/evil.py",
    ]
    for uri in allowed:
        scheme = "" if "://" in uri else "file://"
        steps = f"[{{type: python, uri: '{scheme}{uri}'}}]"
        assert problems(pipeline(steps=steps), access, root) == [], uri
    for uri in refused:
        scheme = "" if "://" in uri else "file://"
        found = problems(pipeline(steps=f"[{{type: python, uri: '{scheme}{uri}'}}]"), access, root)
        assert len(found) == 1, uri
        assert found[0].startswith("<dir>/p.yaml:9: spec.scoringFlows[0].steps[0].uri: "), found
        assert (
            "is not from a code source (<dir>/code, https://models.example.com/approved/)"
            in (found[0])
        )
        assert "lets whoever may submit run code as the job's user" in found[0]


def test_code_models_need_a_code_source_and_data_models_a_data_root(land):
    root, outside, home = land
    access = Access.build(data_roots=[root], code_sources=[], home=home)
    models = (
        "    - {name: py, type: python, uri: file://m.py}\n"
        "    - {name: pickle, type: sklearn, uri: file://m.joblib}\n"
        "    - {name: graph, type: onnx, uri: file://m.onnx}\n"
        f"    - {{name: far, type: onnx, uri: 'file://{outside}/m.onnx'}}\n"
        "    - {name: remote, type: onnx, uri: 'https://models.example.com/m.onnx'}\n"
        "    - {name: saved, type: tensorflow, uri: file://saved}\n"
        "    - {name: booster, type: xgboost, uri: file://m.json}\n"
    )
    names = ("py", "pickle", "graph", "far", "remote", "saved", "booster")
    steps = "[" + ", ".join(f"{{type: score, model: {m}}}" for m in names) + "]"
    found = [f.split(": ", 2) for f in problems(pipeline(models=models, steps=steps), access, root)]
    assert [(f[0], f[1]) for f in found] == [
        ("<dir>/p.yaml:6", "spec.models[0].uri"),
        ("<dir>/p.yaml:7", "spec.models[1].uri"),
        ("<dir>/p.yaml:9", "spec.models[3].uri"),
        ("<dir>/p.yaml:11", "spec.models[5].uri"),
    ]
    assert "file://<dir>/m.py is not from a code source (none configured)" in found[0][2]
    assert "file://<dir>/m.joblib is not from a code source" in found[1][2]
    assert f"{outside}/m.onnx is outside the data roots (<dir>)" in found[2][2]
    assert "file://<dir>/saved is not from a code source" in found[3][2]  # a graph of any ops
    # code from git is the git server's to allow (ir.globals.check_git_sources), every job alike
    assert access.code_problem("git+https://git.example.com/ml/a.git@main") is None


def test_an_http_source_listens_on_loopback_unless_the_server_allows_another_address(land):
    root, _, _ = land
    text = pipeline(source="{type: http, config: {port: 8090, host: 0.0.0.0}}")
    text = text.replace("mode: batch", "mode: streaming")
    assert problems(text, Access.build(data_roots=[], code_sources=[]), root) == [
        "<dir>/p.yaml:6: spec.dataChannels[0].config.host: listening on 0.0.0.0 is not allowed "
        "(loopback only): setting TEKSCORE_ALLOW_BIND"
    ]
    allowed = Access.build(data_roots=[], code_sources=[], allow_bind=["0.0.0.0"])
    assert problems(text, allowed, root) == []
    loopback = text.replace("host: 0.0.0.0", "host: 127.0.0.1")
    assert problems(loopback, Access.build(data_roots=[], code_sources=[]), root) == []


def test_the_secret_allow_list_grants_by_pipeline_label_or_to_all(land):
    root, _, _ = land
    sink = (
        "{type: s3, config: {bucket: b-1, key: k, "
        "accessKeyId: {secretRef: {name: s3-creds, key: id}}, "
        "secretAccessKey: {secretRef: {name: vault, key: key}}}}"
    )
    text = pipeline(sink=sink)
    rules = "p=s3-creds; team:risk=vault; other=vault"
    access = Access.build(data_roots=[], code_sources=[], secret_allow=rules)
    assert problems(text, access, root) == [
        "<dir>/p.yaml:7: spec.dataChannels[1].config.secretAccessKey.secretRef.name: secret "
        "'vault' is not granted to this pipeline (granted: s3-creds): setting "
        "TEKSCORE_SECRET_ALLOW"
    ]
    assert problems(text, access, root, labels={"team": "risk"}) == []
    everyone = Access.build(data_roots=[], code_sources=[], secret_allow="*=s3-creds,vault")
    assert problems(text, everyone, root) == []
    assert problems(text, Access.build(data_roots=[], code_sources=[]), root) == []


def test_settings_that_cannot_be_rules_are_refused():
    with pytest.raises(ValueError, match="not an absolute folder"):
        Access.build(data_roots=["data"], code_sources=[])
    with pytest.raises(ValueError, match="neither an absolute folder nor a URL prefix"):
        Access.build(data_roots=[], code_sources=["code"])
    with pytest.raises(ValueError, match=r"'\.' and '\.\.' are not allowed"):
        UrlPrefix.parse("https://h/a/../b/")
    with pytest.raises(ValueError, match="entry 2 is not SELECTOR=SECRET"):
        parse_secret_allow("p=a;nothing")
    assert parse_secret_allow(" p = a, b ;; q=c ") == {
        "p": frozenset({"a", "b"}),
        "q": frozenset({"c"}),
    }
