"""`module_server`: one real `tekscore serve` shared by the tests of a module (starting one
takes seconds; the security tests send many small requests to the same server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.scheduler.conftest import Scheduler


def module_server(name: str, **options: Any) -> Any:
    """A module-scoped fixture: a `Scheduler` (its `options`: tokens, extra_env, data_root) in a
    fresh home, started for the module's first test and stopped after its last. Its data root
    and code source is the session's temporary folder (every test's `tmp_path`) unless given."""

    @pytest.fixture(scope="module")
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scheduler]:
        options.setdefault("data_root", tmp_path_factory.getbasetemp())
        scheduler = Scheduler(tmp_path_factory.mktemp(name) / "home", **options)
        scheduler.start()
        yield scheduler
        scheduler.close()

    return server
