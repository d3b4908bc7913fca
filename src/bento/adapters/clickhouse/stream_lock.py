"""SingleWriterLock: the stream lock that declares single-writer mode.

A ClickHouse *server* store shared by several processes needs a cross-process lock
(`RedisStreamLock`), or one writer process that proves it is alone. This lock is the second:
within the process it excludes concurrent appends like `InProcessStreamLock`, and a
`ClickHouseEventStore` given it takes a lease in ClickHouse itself before its first append,
so a second writer fails with `WriterLeaseError` before it commits (see `_writer_lease`).
"""

from __future__ import annotations

from bento.adapters.shared.inprocess_lock import InProcessStreamLock

__all__ = ["SingleWriterLock"]


class SingleWriterLock(InProcessStreamLock):
    """In-process exclusion plus the declaration "this process is the only writer";
    `lease` is how many seconds the store's ClickHouse lease lasts without a heartbeat."""

    def __init__(self, *, lease: float = 10.0) -> None:
        super().__init__()
        self.lease = lease
