"""What the read-only commands (`bento events …`, `bento projections status`) share: importing
the service's container, refusing to create a store that is not there, and the hint printed
when a read finds nothing.

Opening a ClickHouse store creates its folder, database and tables, which a command that only
reads must never do: so a ClickHouse store is first looked up without opening it, and a
missing one is a `StoreNotFoundError` naming the settings to check.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from bento.domain.errors import BentoError

DEFAULT_CONTAINER = "bento.infrastructure.container:BentoContainer"


class StoreNotFoundError(BentoError, LookupError):
    """The configured store does not exist (a read-only command does not create it)."""

    def __init__(self, what: str, where: str) -> None:
        super().__init__(
            f"no {what} at {where}: nothing has been written there yet, and reading does not create it; "
            "check CLICKHOUSE__MODE, CLICKHOUSE__PATH / CLICKHOUSE__HOST and CLICKHOUSE__DATABASE "
            "(bento config show --sources says where each came from)"
        )
        self.what, self.where = what, where


def load_container(path: str) -> Any:
    """Import `module:attr`: a container class or instance, or a function returning one.
    The current directory is importable, as it is for `python -m`, so `--container app:App`
    finds `./app.py` when run from the `bento` script too."""
    from dependency_injector import containers

    from bento.application.errors import ConfigurationError

    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigurationError([f"--container / BENTO_CONTAINER must look like module:Class, got {path!r}"])
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError([f"cannot import the container {path}: {exc}"]) from exc
    if callable(target) and not isinstance(target, type | containers.Container):
        target = target()  # a factory function
    if isinstance(target, type) and issubclass(target, containers.DeclarativeContainer):
        return target()
    if isinstance(target, containers.Container):
        return target
    raise ConfigurationError([f"{path} is not a dependency-injector container (got {type(target).__name__})"])


async def require_event_store(container: Any) -> None:
    """Raise StoreNotFoundError when the container's ClickHouse event store does not exist."""
    settings = container.settings()
    store = settings.event_store
    if store.backend != "clickhouse":
        return
    from bento.adapters.clickhouse.engine import table_exists

    ch = settings.clickhouse
    if not await table_exists(ch, store.table):
        where = f"{ch.path}" if ch.mode == "embedded" else f"{ch.host}:{ch.port}"
        raise StoreNotFoundError("event store", f"{where} (table {ch.database}.{store.table}, {ch.mode})")


def empty_hint(container: Any, what: str) -> str:
    """The line printed (to stderr) when a read finds nothing; says why when that is expected."""
    if container.settings().event_store.backend == "memory":
        return (
            f"{what} (the event store is the in-memory default, empty in every new process: set "
            "EVENT_STORE__BACKEND=clickhouse with CLICKHOUSE__PATH, or CLICKHOUSE__MODE=server, to read a durable one)"
        )
    return what
