"""The models this service serves and their states: loading, ready or failed (with why).

`load_all` downloads and loads every model in worker threads (I/O) and writes the termination
record (`common.termination`) when one fails; the rest is in-memory state read by the request
handlers.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from common.termination import write_termination
from scoring_service.config import ModelConfig
from scoring_service.download import fetch
from scoring_service.errors import ModelLoadError, ModelNotFoundError, ModelNotReadyError
from scoring_service.models import LoadedModel, load_model

log = structlog.get_logger("scoring_service.registry")

State = Literal["loading", "ready", "failed"]


@dataclass
class ModelEntry:
    """One configured model and where it stands."""

    config: ModelConfig
    state: State = "loading"
    reason: str = "loading"
    model: LoadedModel | None = None


class Registry:
    """Model entries by name."""

    def __init__(self, configs: list[ModelConfig]) -> None:
        self.entries = {c.name: ModelEntry(config=c) for c in configs}

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def entry(self, name: str) -> ModelEntry:
        """The entry of a model, or 404."""
        try:
            return self.entries[name]
        except KeyError:
            raise ModelNotFoundError(name, self.names) from None

    def ready_model(self, name: str) -> LoadedModel:
        """The loaded model, or 404 / 503."""
        entry = self.entries.get(name)
        if entry is None:
            raise ModelNotFoundError(name, self.names)
        if entry.model is None:
            raise ModelNotReadyError(name, entry.reason)
        return entry.model

    def all_ready(self) -> bool:
        return all(e.state == "ready" for e in self.entries.values())

    def not_ready_reasons(self) -> dict[str, str]:
        return {n: e.reason for n, e in self.entries.items() if e.state != "ready"}

    async def load_all(self, dest_dir: Path) -> None:
        """Load every model concurrently; failures are recorded, never raised."""
        await asyncio.gather(*(self._load(e, dest_dir) for e in self.entries.values()))

    async def _load(self, entry: ModelEntry, dest_dir: Path) -> None:
        config = entry.config
        started = time.perf_counter()
        log.info("model_loading", model=config.name, type=config.type, uri=config.uri)
        try:
            model = await asyncio.to_thread(_fetch_and_load, config, dest_dir)
        except ModelLoadError as exc:
            entry.state, entry.reason = "failed", exc.reason
            log.error("model_load_failed", model=config.name, reason=exc.reason)
            self._report_failures()
            return
        except Exception as exc:
            entry.state = "failed"
            entry.reason = f"unexpected {type(exc).__name__}: {exc}"
            log.exception("model_load_failed", model=config.name, reason=entry.reason)
            self._report_failures()
            return
        entry.model, entry.state, entry.reason = model, "ready", "ready"
        log.info(
            "model_ready",
            model=config.name,
            platform=model.platform,
            parameters=model.parameters(),
            seconds=round(time.perf_counter() - started, 3),
        )

    def _report_failures(self) -> None:
        """The termination record: every model that failed to load, and why (the service keeps
        running, not ready; its supervisor reads this when it gives up on it)."""
        failed = {n: e.reason for n, e in self.entries.items() if e.state == "failed"}
        write_termination(
            "ModelLoadFailed",
            "; ".join(f"model {n!r} failed to load: {why}" for n, why in failed.items()),
            models=sorted(failed),
        )

    def close(self) -> None:
        for entry in self.entries.values():
            if entry.model is not None:
                try:
                    entry.model.close()
                except Exception:
                    log.exception("model_close_failed", model=entry.config.name)


def _fetch_and_load(config: ModelConfig, dest_dir: Path) -> LoadedModel:
    path = fetch(config, dest_dir)
    return load_model(config, path)
