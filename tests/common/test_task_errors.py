"""Typed task failures (`common.task_errors`): a failure keeps its part and log tail through a
pickle (the local runner's failures cross process boundaries), and a log tail shown to API
callers names no folder of the server, while URLs stay as they are."""

from __future__ import annotations

import pickle

from common.task_errors import TaskFailed, without_paths


def test_a_failure_keeps_its_part_and_log_tail() -> None:
    failed = TaskFailed("FlowFailed", "Flow 'f' failed.", ("flow", "f"), "line 1\nline 2")
    again = pickle.loads(pickle.dumps(failed))
    assert (again.reason, again.message, again.part, again.log_tail) == (
        "FlowFailed",
        "Flow 'f' failed.",
        ("flow", "f"),
        "line 1\nline 2",
    )
    assert TaskFailed("InstallFailed", "x", log_tail="").log_tail is None


def test_log_tails_lose_the_server_paths_but_keep_urls() -> None:
    tail = (
        '{"event": "model load failed", "error": "file:///srv/tekscore/jobs/j-1/m/model.joblib: '
        'no such file", "config": "/srv/tekscore/jobs/j-1/services/iris.json"}\n'
        '  File "/usr/lib/python3/dist-packages/sklearn/base.py", line 3\n'
        "GET http://127.0.0.1:8000/v2/health/ready s3://bucket/in/a.csv ./rel/x /tmp"
    )
    assert without_paths(tail) == (
        '{"event": "model load failed", "error": "file://model.joblib: '
        'no such file", "config": "iris.json"}\n'
        '  File "base.py", line 3\n'
        "GET http://127.0.0.1:8000/v2/health/ready s3://bucket/in/a.csv ./rel/x /tmp"
    )
