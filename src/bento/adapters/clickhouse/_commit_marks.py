"""Commit markers: how a lock holder learns whether anyone else committed since its
own last commit (the reasoning is in `_commit_state`).

`RedisStreamLock.hold_marked` keeps the marker in Redis, read and cleared in its acquire
script and published in its release script, so markers add no round trip. A lock local
to this process (`InProcessStreamLock`, the default) keeps it in a dict the engine owns
(one engine per process, shared by every store on it). Any other `StreamLock` has no
marker (`UnmarkedLock`): every batch then reads versions and head, as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol, cast

from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.adapters.shared.inprocess_lock import InProcessStreamLock
from bento.application.ports.stream_lock import StreamLock


class CommitMark(Protocol):
    """The marker found when the lock was taken (`seen`), and what to leave (`publish`)."""

    seen: str | None

    def publish(self, value: str | None) -> None: ...


class MarkedLock(Protocol):
    """A StreamLock that also keeps a commit marker (see the module docstring)."""

    def hold_marked(
        self, streams: Collection[str], *, marker: str, timeout: float = 10.0
    ) -> AbstractAsyncContextManager[CommitMark]: ...


@dataclass(slots=True)
class _Mark:
    seen: str | None
    next: str | None = None

    def publish(self, value: str | None) -> None:
        self.next = value


class LocalMarkedLock:
    """Markers in a dict shared by every store of this process (the engine's), around a
    lock local to this process. The holder pops the marker on entry (busy) and puts back
    only what it published."""

    def __init__(self, lock: StreamLock, marks: dict[str, str]) -> None:
        self._lock = lock
        self._marks = marks

    @asynccontextmanager
    async def hold_marked(
        self, streams: Collection[str], *, marker: str, timeout: float = 10.0
    ) -> AsyncIterator[CommitMark]:
        async with self._lock.hold(streams, timeout=timeout):
            mark = _Mark(self._marks.pop(marker, None))
            try:
                yield mark
            finally:
                if mark.next is not None:
                    self._marks[marker] = mark.next


class UnmarkedLock:
    """A StreamLock that keeps no marker: `seen` is always None, so every batch reloads."""

    def __init__(self, lock: StreamLock) -> None:
        self._lock = lock

    @asynccontextmanager
    async def hold_marked(
        self, streams: Collection[str], *, marker: str, timeout: float = 10.0
    ) -> AsyncIterator[CommitMark]:
        async with self._lock.hold(streams, timeout=timeout):
            yield _Mark(None)


def marked_lock(lock: StreamLock | None, engine: ClickHouseEngine) -> tuple[MarkedLock, bool]:
    """`lock` with its commit marker, and whether it has one: Redis keeps it itself, a lock
    local to this process keeps it in the engine, any other lock has none."""
    if lock is None or isinstance(lock, InProcessStreamLock):
        return LocalMarkedLock(lock or InProcessStreamLock(), engine.commit_marks), True
    if callable(getattr(lock, "hold_marked", None)):
        return cast(MarkedLock, lock), True
    return UnmarkedLock(lock), False
