"""ClickHouseEventStore: the EventStore port on a ClickHouse server or embedded chdb.

Why appends are safe without transactions or unique keys
--------------------------------------------------------
ClickHouse cannot refuse a conflicting insert, and ReplacingMergeTree would silently
drop one writer's events, so the store decides conflicts itself, under a lock:

1. Appends are group-committed (`_group_commit.py`): concurrent appends of this
   process become one batch.
2. The batch takes ONE lock for the whole table from the `StreamLock` port (key
   `$append:<db>.<table>`; Redis across processes, asyncio in one process). Inside it,
   the store needs the current version of every stream in the batch and the highest
   position: from its version cache when the lock's commit marker shows that nobody
   else committed since its own last commit, else from one query (`_commit_state`,
   `_commit_marks`); every append is checked against its stream's version (ConcurrencyError
   for the losers), the winners get consecutive versions and the next positions, and
   all of them are written in ONE INSERT (one part: atomic, all-or-nothing).
3. The lock is released only after the INSERT returned, so the next writer, in any
   process, sees those rows when it reads versions and positions.

Because positions are allocated under that same lock, they are gap-free and assigned
in commit order: when position P is visible, every position below P is visible too,
so a reader that checkpointed P never misses an event that shows up later with a
position <= P. `read_all` relies on that: it asks for the position range
(after, after + limit] directly.

Locking per table rather than per stream costs nothing extra here: one batch takes
one lock, and the check plus the insert is a few milliseconds for up to
`group_commit_max_events` events. A holder that spent longer than
`max_commit_seconds` before its insert gives up (LockTimeoutError for the batch),
so a stalled process does not write after its lease could have expired.

The rule for a server (several processes can reach it): the store has a lock shared
by every writer (`RedisStreamLock`), or it runs in declared single-writer mode, where
it holds a lease in ClickHouse itself (`_writer_lease`, taken by its first append) and
a second writer's appends fail before they commit. An in-process lock alone on a server would let two
processes allocate the same positions and trust stale version caches, so `start()`
refuses it with a ConfigurationError. chdb (embedded) is one process per folder by
construction, so its default in-process lock is safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Self

from bento.adapters.clickhouse._commit_marks import CommitMark, LocalMarkedLock, marked_lock
from bento.adapters.clickhouse._commit_state import CommitState
from bento.adapters.clickhouse._event_store_schema import (
    INSERT_COLUMNS,
    LEGACY_COLUMNS,
    MIGRATIONS,
    SELECT_COLUMNS,
    datetime_to_micros,
    to_stored_events,
)
from bento.adapters.clickhouse._group_commit import GroupCommitter, PendingAppend
from bento.adapters.clickhouse._migrations import apply_migrations
from bento.adapters.clickhouse._sql import check_identifier
from bento.adapters.clickhouse._writer_lease import WriterLease, join_lease, leave_lease
from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.adapters.clickhouse.stream_lock import SingleWriterLock
from bento.adapters.shared.inprocess_lock import InProcessStreamLock
from bento.application.errors import ConcurrencyError, ConfigurationError, LockTimeoutError, WriterLeaseError
from bento.application.ports.event_store import (
    ANY_VERSION,
    EventFilter,
    StoredEvent,
    require_filter_text,
    require_text,
)
from bento.application.ports.stream_lock import StreamLock
from bento.application.serialization import JsonCodec
from bento.application.store_encoding import EncodedColumns
from bento.domain.events import DomainEvent

logger = logging.getLogger(__name__)


class ClickHouseEventStore:
    """EventStore on a shared `ClickHouseEngine`; see the module docstring for the
    concurrency mechanism. Without `lock`, an in-process lock is used: correct for one
    process (the embedded engine). On a server, pass a lock shared by every writer
    (`RedisStreamLock`) or `single_writer=True` (a lease of `writer_lease` seconds in
    ClickHouse, taken by the first append; a second writer's appends fail with
    WriterLeaseError before they commit); `start()` refuses anything else.

    Use it as an async context manager, or call `start()` (runs the migrations and
    starts the group-commit flusher) and `close()` (flushes pending appends; it does
    not close the engine, which is shared)."""

    def __init__(
        self,
        engine: ClickHouseEngine,
        *,
        lock: StreamLock | None = None,
        codec: JsonCodec | None = None,
        table: str = "events",
        group_commit_window_ms: float = 2.0,
        group_commit_max_events: int = 10_000,
        lock_timeout: float = 10.0,
        max_commit_seconds: float = 3.0,
        version_cache_size: int = 100_000,
        single_writer: bool = False,
        writer_lease: float = 10.0,
    ) -> None:
        self.engine = engine
        self.codec = codec or JsonCodec()
        self.table_name = check_identifier(table)
        self.table = engine.table(table)
        self._shared_lock = lock is not None and not isinstance(lock, InProcessStreamLock)
        # A SingleWriterLock (STREAM_LOCK__BACKEND=single-writer) declares the mode too.
        self.single_writer = single_writer or isinstance(lock, SingleWriterLock)
        self.writer_lease = lock.lease if isinstance(lock, SingleWriterLock) else writer_lease
        self._lease: WriterLease | None = None
        self._lock, marked = marked_lock(lock, engine)
        self._lock_key = f"$append:{engine.database}.{table}"
        self._marker_key = f"$commit:{engine.database}.{table}"
        self._state = CommitState(engine, table, capacity=version_cache_size, marked=marked)
        self.lock_timeout = lock_timeout
        self.max_commit_seconds = max_commit_seconds
        self._committer = GroupCommitter(
            self._commit, window=group_commit_window_ms / 1000, max_events=group_commit_max_events
        )
        # While this store's flusher holds the lock: whether its version cache is exact
        # (after `known`), and the streams its batch is writing (see `known_version`).
        self._exact_under_lock = False
        self._committing: frozenset[str] = frozenset()
        self._started = False
        self._closed = False
        self._legacy_layout = False  # a 14-column table (see _stores_legacy_columns)

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            return
        if engine_is_server(self.engine) and not self._shared_lock and not self.single_writer:
            raise ConfigurationError(
                [
                    f"the ClickHouse server store {self.engine.database}.{self.table_name} needs a lock shared by "
                    "every writer (lock=RedisStreamLock(...)) or single_writer=True; an in-process lock cannot stop "
                    "other processes"
                ]
            )
        await apply_migrations(self.engine, f"eventstore:{self.table_name}", MIGRATIONS, events=self.table)
        self._legacy_layout = await self._stores_legacy_columns()
        self._committer.start()
        self._started = True

    async def _stores_legacy_columns(self) -> bool:
        """True for a table created before tenant/correlation/causation ids and the date
        became ALIAS columns (schema module docstring): its INSERTs must fill them."""
        described = await self.engine.execute(f"DESCRIBE TABLE {self.table}")
        kinds = {str(row[0]): str(row[2]) for row in described}
        return kinds.get("tenant_id") == ""

    async def close(self) -> None:
        """Flush the pending group commit; the engine stays open (it is shared)."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._committer.close()
        finally:
            if self._lease is not None:
                self._lease = None
                await leave_lease(self.engine, self.table_name)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def commit_batches(self) -> int:
        """How many group commits ran (for tests and benchmarks)."""
        return self._committer.batches

    # -- writing ----------------------------------------------------------------------
    async def append(
        self, stream: str, events: Sequence[DomainEvent], expected_version: int, *, aggregate_type: str = ""
    ) -> int:
        if not stream:
            raise ValueError("a stream name must not be empty")
        require_text("stream name", stream)
        if not events:
            actual = await self.stream_version(stream)
            if expected_version not in (ANY_VERSION, actual):
                raise ConcurrencyError(stream, expected_version, actual)
            return actual
        encoded = self.codec.encode_many_for_store(events, aggregate_type=aggregate_type)
        return await self._committer.submit(stream, expected_version, encoded)

    async def save_events(self, events: Sequence[DomainEvent], *, expected_version: int = ANY_VERSION) -> int:
        """Seed-002 convenience: append events that carry `aggregate_type`/`aggregate_id`
        in their metadata (as `AggregateRoot.record` sets them) to the stream
        `"{aggregate_type}-{aggregate_id}"`. All events must belong to one aggregate."""
        if not events:
            return 0
        keys = {(e.metadata.aggregate_type or "", e.metadata.aggregate_id or "") for e in events}
        if len(keys) != 1 or not next(iter(keys))[1]:
            raise ValueError("save_events needs events of exactly one aggregate (metadata.aggregate_id set)")
        ((aggregate_type, aggregate_id),) = keys
        stream = stream_name(aggregate_type, aggregate_id)
        return await self.append(stream, events, expected_version, aggregate_type=aggregate_type)

    async def _commit(self, batch: list[PendingAppend]) -> None:
        streams = sorted({p.stream for p in batch})
        if self.single_writer and self._lease is None and engine_is_server(self.engine):
            # Taken by the first commit, so readers (`bento events`, followers) never
            # compete for it; a second writer process fails here, before it commits.
            self._lease = await join_lease(self.engine, self.table_name, lease=self.writer_lease)
        hold = self._lock.hold_marked([self._lock_key], marker=self._marker_key, timeout=self.lock_timeout)
        try:
            async with hold as mark:
                await self._commit_locked(batch, streams, mark)
        finally:
            self._exact_under_lock = False
            self._committing = frozenset()

    async def _commit_locked(self, batch: list[PendingAppend], streams: list[str], mark: CommitMark) -> None:
        began = time.monotonic()
        versions, head = await self._state.known(mark.seen, streams)
        # We hold the lock and the cache is now exact, except for this batch's streams.
        self._committing = frozenset(streams)
        self._exact_under_lock = True
        now = datetime.now(UTC)
        now_us, today = datetime_to_micros(now), now.date()
        legacy = self._legacy_layout
        names = INSERT_COLUMNS + LEGACY_COLUMNS if legacy else INSERT_COLUMNS
        accepted: list[tuple[PendingAppend, int]] = []
        positions: list[int] = []
        stream_column: list[str] = []
        version_column: list[int] = []
        events = EncodedColumns()
        for pending in batch:
            actual = versions[pending.stream]
            expected = pending.expected_version
            if expected not in (ANY_VERSION, actual):
                pending.future.set_exception(ConcurrencyError(pending.stream, expected, actual))
                continue
            count = len(pending.events)
            positions.extend(range(head + 1, head + count + 1))
            version_column.extend(range(actual + 1, actual + count + 1))
            stream_column.extend([pending.stream] * count)
            events.extend(pending.events)
            head += count
            actual += count
            versions[pending.stream] = actual
            accepted.append((pending, actual))
        # Whole columns at once (in INSERT_COLUMNS order), as the codec encoded them.
        count = len(events)
        columns: list[list[Any]] = [
            positions,
            stream_column,
            version_column,
            events.aggregate_type,
            events.event_id,
            events.event_type,
            events.schema_version,
            events.data,
            events.metadata,
            [now_us] * count,
        ]
        if legacy:
            columns += [events.tenant_id, events.correlation_id, events.causation_id, [today] * count]
        if accepted:
            if time.monotonic() - began > self.max_commit_seconds:
                raise LockTimeoutError([p.stream for p, _ in accepted], self.max_commit_seconds)
            if self._lease is not None:
                self._lease.check()  # still the only writer (WriterLeaseError otherwise)
            await self.engine.insert(self.table_name, names, columns, columnar=True)
        # Only now is the new state certain; a failure above leaves the marker unset.
        mark.publish(self._state.committed(versions, head))
        self._committing = frozenset()
        # Settled before the release: the rows are written whatever the release does,
        # and callers appending again overlap its round trip (their batch waits for
        # this flusher anyway, and then for the lock).
        for pending, version in accepted:
            if not pending.future.done():
                pending.future.set_result(version)

    # -- reading ----------------------------------------------------------------------
    async def read_stream(self, stream: str, from_version: int = 0) -> list[StoredEvent]:
        require_text("stream name", stream)
        columns = await self.engine.execute_columns(
            f"SELECT {SELECT_COLUMNS} FROM {self.table} "
            "WHERE stream = %(stream)s AND version > %(from_version)s ORDER BY version",
            {"stream": stream, "from_version": max(from_version, 0)},
        )
        return to_stored_events(columns)

    async def read_stream_events(self, stream: str, from_version: int = 0, *, codec: JsonCodec) -> list[DomainEvent]:
        # Only the five columns decoding needs (no ALIAS columns computed), decoded column-wise.
        require_text("stream name", stream)
        columns = await self.engine.execute_columns(
            f"SELECT event_id, event_type, schema_version, data, metadata FROM {self.table} "
            "WHERE stream = %(stream)s AND version > %(from_version)s ORDER BY version",
            {"stream": stream, "from_version": max(from_version, 0)},
        )
        return codec.decode_stored_columns(*columns) if columns else []

    async def get_events(self, aggregate_type: str, aggregate_id: str, from_version: int = 0) -> list[StoredEvent]:
        """Seed-002 convenience: the events of one aggregate with version >= from_version."""
        return await self.read_stream(stream_name(aggregate_type, aggregate_id), max(from_version - 1, 0))

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        # Positions are gap-free (module docstring), so the next `limit` events are exactly
        # the range (after, after + limit]; PREWHERE reads the wide columns of those rows only.
        if limit <= 0:
            return []
        columns = await self.engine.execute_columns(
            f"SELECT {SELECT_COLUMNS} FROM {self.table} "
            "PREWHERE position > %(after)s AND position <= %(upto)s ORDER BY position",
            {"after": after_position, "upto": after_position + limit},
        )
        return to_stored_events(columns)

    async def stream_version(self, stream: str) -> int:
        require_text("stream name", stream)
        rows = await self.engine.execute(
            f"SELECT max(version) FROM {self.table} WHERE stream = %(stream)s", {"stream": stream}
        )
        return int(rows[0][0]) if rows else 0

    async def known_version(self, stream: str) -> int | None:
        """The cached version, only while this store can prove nobody else wrote the table
        since: it holds the lock itself (cache exact, stream not in the batch being
        written), or the lock is free and the commit marker is still the token it
        published last (`_commit_state`). On a server in single-writer mode the lease
        must be held as well. A Redis lock's marker lives in Redis: reading it would
        cost a round trip, so that store does not vouch (None) and the caller reads."""
        require_text("stream name", stream)
        if not self._proves_sole_writer() or stream in self._committing:
            return None
        return self._state.version(stream)

    def _proves_sole_writer(self) -> bool:
        if not isinstance(self._lock, LocalMarkedLock):  # Redis (marker remote) or no marker
            return False
        if engine_is_server(self.engine) and not self._lease_valid():
            return False
        if self._exact_under_lock:
            return True
        token = self._state.token
        return token is not None and self.engine.commit_marks.get(self._marker_key) == token

    def _lease_valid(self) -> bool:
        if self._lease is None:
            return False
        try:
            self._lease.check()
        except WriterLeaseError:
            return False
        return True

    async def last_position(self) -> int:
        rows = await self.engine.execute(f"SELECT max(position) FROM {self.table}")
        return int(rows[0][0]) if rows else 0

    async def query(self, criteria: EventFilter) -> list[StoredEvent]:
        require_filter_text(criteria)
        where = ["position > %(after)s"]
        params: dict[str, Any] = {"after": criteria.after_position, "limit": max(criteria.limit, 0)}
        if criteria.event_types:
            where.append("event_type IN %(types)s")
            params["types"] = tuple(criteria.event_types)
        if criteria.aggregate_type is not None:
            where.append("aggregate_type = %(aggregate_type)s")
            params["aggregate_type"] = criteria.aggregate_type
        if criteria.tenant_id is not None:
            where.append("tenant_id = %(tenant)s")
            params["tenant"] = criteria.tenant_id
        if criteria.since is not None:
            # The Date condition lets ClickHouse skip whole monthly partitions.
            where.append("recorded_date >= %(since_date)s AND recorded_at_us >= %(since)s")
            params["since"] = datetime_to_micros(criteria.since)
            params["since_date"] = _utc(criteria.since).date()
        if criteria.until is not None:
            where.append("recorded_date <= %(until_date)s AND recorded_at_us < %(until)s")
            params["until"] = datetime_to_micros(criteria.until)
            params["until_date"] = _utc(criteria.until).date()
        columns = await self.engine.execute_columns(
            f"SELECT {SELECT_COLUMNS} FROM {self.table} WHERE {' AND '.join(where)} ORDER BY position LIMIT %(limit)s",
            params,
        )
        return to_stored_events(columns)

    async def active_parts(self) -> int:
        """Active data parts of the events table (bounded by merges; for tests and benchmarks)."""
        rows = await self.engine.execute(
            "SELECT count() FROM system.parts WHERE active AND database = %(db)s AND table = %(table)s",
            {"db": self.engine.database, "table": self.table_name},
        )
        return int(rows[0][0]) if rows else 0


def stream_name(aggregate_type: str, aggregate_id: str) -> str:
    """The stream of one aggregate, as `EventSourcedRepository` names it by default."""
    return f"{aggregate_type}-{aggregate_id}" if aggregate_type else aggregate_id


def engine_is_server(engine: ClickHouseEngine) -> bool:
    return engine.mode == "server"


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
