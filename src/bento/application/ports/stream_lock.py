"""StreamLock: mutual exclusion per stream, for stores that cannot refuse a
concurrent append themselves (ClickHouse has no transactions or unique keys)."""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class StreamLock(Protocol):
    """`hold(streams)` waits until this holder alone owns every named stream.

    Implementations take the locks in sorted order (no deadlock between two holders
    of overlapping sets), raise LockTimeoutError after `timeout` seconds, and release
    on exit even when the body raised. A distributed implementation must also expire
    a dead holder's lock (a lease), and the holder must not write after its lease
    expired."""

    def hold(self, streams: Collection[str], *, timeout: float = 10.0) -> AbstractAsyncContextManager[None]: ...
