"""`module_server`: one real `tekscore serve` shared by the tests of a module (starting one
takes seconds; the security tests send many small requests to the same server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.scheduler.conftest import Scheduler


def module_server(name: str, **options: Any) -> Any:
    """A module-scoped fixture: a `Scheduler` (its `options`: tokens, extra_env) in a fresh
    home, started for the module's first test and stopped after its last."""

    @pytest.fixture(scope="module")
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scheduler]:
        scheduler = Scheduler(tmp_path_factory.mktemp(name) / "home", **options)
        scheduler.start()
        yield scheduler
        scheduler.close()

    return server
