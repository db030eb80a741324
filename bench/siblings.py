"""Loading another benchmark of this folder as a module, for its helpers (servers, stores).

`python bench/x.py` puts bench/ first on `sys.path`, where `bench/scheduler.py` would hide the
project's `scheduler` package: a sibling is loaded under the name `bench_<name>` instead.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def sibling(name: str) -> ModuleType:
    """bench/<name>.py as the module `bench_<name>` (loaded once)."""
    key = f"bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module
