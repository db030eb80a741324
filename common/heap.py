"""The garbage collector in long-lived processes: what start-up made, moved out of its sight.

No I/O. A server process imports FastAPI, pydantic and the IR models and builds its app: some
86,000 objects that live as long as the process. Python's oldest-generation
collection walks every one of them each time it runs, which in the scheduling server took
46-200 ms (measured with `gc.callbacks` during `bench/scheduler.py --part start`): a request
that arrives then waits that long. `freeze_startup()`, called once start-up is done, collects
what start-up left as garbage and freezes the rest (`gc.freeze`): later collections walk only
what was made since. The frozen objects are never collected, which is what they are: the
process's modules, app and settings. Called by `tekscore serve`, its pre-processing workers and
the scoring flow once activated (`local_runner.spare` does the same itself: it imports nothing
of ours).
"""

from __future__ import annotations

import gc


def freeze_startup() -> None:
    """Collect start-up's garbage, then keep every object alive now out of later collections."""
    gc.collect()
    gc.freeze()
