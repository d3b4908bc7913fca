"""EventSourcedRepository: load an aggregate from its stream, save its new events.

The stream is the truth. Loading replays it through the aggregate's appliers,
starting from the latest snapshot when a SnapshotStore is configured; stored events
of an older schema version pass through the codec's upcasters first (register them
on `codec.registry`). Saving appends the pending events with `expected_version` =
the version the aggregate was loaded at, so a concurrent writer makes `save` raise
ConcurrencyError instead of silently interleaving; the caller reloads and retries.

Aggregates it saved are kept (a bounded LRU of `cache_size`) so the next command on
the same aggregate needs no read: `load` reuses one only when the store proves the
stream is still at the aggregate's version (`EventStore.known_version`: nothing it
cannot see wrote the stream since), and hands it out rather than sharing it, so two
commands never hold one instance; it comes back on the next successful `save`. A
ConcurrencyError, or a handler that fails before saving, leaves it out.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

from bento.application import telemetry
from bento.application.errors import ConcurrencyError
from bento.application.ports.event_store import EventStore
from bento.application.ports.snapshot_store import Snapshot, SnapshotStore
from bento.application.serialization import JsonCodec
from bento.domain.aggregate import AggregateRoot
from bento.domain.errors import BentoError
from bento.domain.events import DomainEvent

logger = logging.getLogger(__name__)

A = TypeVar("A", bound=AggregateRoot)


class AggregateNotFoundError(BentoError, LookupError):
    """No event was ever stored for this aggregate."""

    def __init__(self, aggregate_type: str, id: str, stream: str) -> None:
        super().__init__(f"{aggregate_type} {id!r} does not exist (stream {stream!r} is empty)")
        self.aggregate_type, self.id, self.stream = aggregate_type, id, stream


def supports_snapshots(cls: type[AggregateRoot]) -> bool:
    """True when the aggregate overrides both snapshot hooks."""
    return (
        cls.snapshot_state is not AggregateRoot.snapshot_state and cls.restore_state is not AggregateRoot.restore_state
    )


def snapshot_version(cls: type[AggregateRoot]) -> int:
    """The aggregate's state-layout version (`snapshot_version` class attribute, default 1)."""
    return int(getattr(cls, "snapshot_version", 1))


class EventSourcedRepository(Generic[A]):
    """Repository of one aggregate type over an EventStore.

    `snapshot_every=N` (with a SnapshotStore and an aggregate that implements
    `snapshot_state`/`restore_state`) saves a snapshot whenever a save crosses a
    multiple of N events. Bump the aggregate's `snapshot_version` when its state layout
    changes: snapshots of another version are ignored, so old ones never need migrating.
    The stream of aggregate `id` is `"{aggregate_type}-{id}"` unless `stream_name` says
    otherwise. `cache_size` bounds the aggregates kept between commands (module
    docstring; 0 disables the cache). Change an aggregate only through `record`: the
    instance a `save` was given is the one a later `load` may return.
    """

    def __init__(
        self,
        aggregate: type[A],
        store: EventStore,
        *,
        codec: JsonCodec | None = None,
        snapshots: SnapshotStore | None = None,
        snapshot_every: int = 0,
        stream_name: Callable[[str], str] | None = None,
        cache_size: int = 1024,
    ) -> None:
        if snapshot_every < 0:
            raise ValueError("snapshot_every must be >= 0 (0 disables snapshots)")
        if snapshot_every and snapshots is None:
            raise ValueError("snapshot_every needs a SnapshotStore (snapshots=...)")
        if snapshot_every and not supports_snapshots(aggregate):
            raise ValueError(
                f"{aggregate.__name__} must override snapshot_state() and restore_state() to use snapshots"
            )
        self.aggregate = aggregate
        self.store = store
        self.codec = codec or JsonCodec()
        self.snapshots = snapshots
        self.snapshot_every = snapshot_every
        self._stream_name = stream_name or (lambda id: f"{aggregate.aggregate_type}-{id}")
        self.cache_size = max(cache_size, 0)
        self._cache: OrderedDict[str, A] = OrderedDict()

    def stream_for(self, id: str) -> str:
        return self._stream_name(id)

    # -- reading --------------------------------------------------------------------
    async def get(self, id: str) -> A | None:
        """The aggregate rebuilt from its stream, or None when it has no events."""
        stream = self.stream_for(id)
        cached = await self._take_cached(stream)
        if cached is not None:
            return cached
        snapshot = await self._usable_snapshot(stream)
        start = snapshot.version if snapshot is not None else 0
        if snapshot is not None and await self.store.known_version(stream) == start:
            events: list[DomainEvent] = []  # the snapshot is at the stream's proven head
        elif telemetry.tracer is None:
            events = await self.store.read_stream_events(stream, start, codec=self.codec)
        else:
            with telemetry.span(f"read {stream}", "CLIENT", self._span_attributes("read", stream)) as span:
                events = await self.store.read_stream_events(stream, start, codec=self.codec)
                span.set_attribute("bento.event_store.events", len(events))
        if snapshot is None and not events:
            return None
        aggregate = self.aggregate.from_history(id, ())
        if snapshot is not None:
            aggregate.restore_state(snapshot.state)
            aggregate.version = snapshot.version
        aggregate.replay(events)
        return aggregate

    async def load(self, id: str) -> A:
        """Like `get`, but a missing aggregate raises AggregateNotFoundError."""
        aggregate = await self.get(id)
        if aggregate is None:
            raise AggregateNotFoundError(self.aggregate.aggregate_type, id, self.stream_for(id))
        return aggregate

    async def exists(self, id: str) -> bool:
        return await self.store.stream_version(self.stream_for(id)) > 0

    async def _take_cached(self, stream: str) -> A | None:
        """The kept aggregate of `stream`, removed from the cache, if the store proves it current."""
        cached = self._cache.pop(stream, None)
        if cached is None or cached.pending_events:
            return None
        if await self.store.known_version(stream) != cached.version:
            return None
        return cached

    def _keep(self, stream: str, aggregate: A) -> None:
        if not self.cache_size:
            return
        self._cache[stream] = aggregate
        self._cache.move_to_end(stream)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def _usable_snapshot(self, stream: str) -> Snapshot | None:
        if self.snapshots is None or not supports_snapshots(self.aggregate):
            return None
        snapshot = await self.snapshots.load(stream)
        if snapshot is None:
            return None
        if snapshot.schema_version != snapshot_version(self.aggregate):
            logger.debug(
                "ignoring snapshot of %s: schema version %d, aggregate is at %d",
                stream,
                snapshot.schema_version,
                snapshot_version(self.aggregate),
            )
            return None
        return snapshot

    # -- writing --------------------------------------------------------------------
    async def save(self, aggregate: A) -> int:
        """Append the aggregate's pending events; returns the stream's new version.

        Raises ConcurrencyError (and keeps the pending events) when another writer
        appended since this aggregate was loaded."""
        pending = aggregate.pending_events
        if not pending:
            return aggregate.version
        expected = aggregate.version - len(pending)
        stream = self.stream_for(aggregate.id)
        try:
            if telemetry.tracer is None:
                version = await self.store.append(stream, pending, expected, aggregate_type=aggregate.aggregate_type)
            else:
                attributes = {**self._span_attributes("append", stream), "bento.event_store.events": len(pending)}
                with telemetry.span(f"append {stream}", "CLIENT", attributes):
                    version = await self.store.append(
                        stream, pending, expected, aggregate_type=aggregate.aggregate_type
                    )
        except ConcurrencyError:
            self._cache.pop(stream, None)
            raise
        aggregate.mark_committed()
        aggregate.version = version
        self._keep(stream, aggregate)
        if self.snapshot_every and version // self.snapshot_every > expected // self.snapshot_every:
            await self._take_snapshot(stream, aggregate)
        return version

    def _span_attributes(self, operation: str, stream: str) -> dict[str, str]:
        return {
            "db.system.name": "bento.event_store",
            "db.operation.name": operation,
            "db.collection.name": stream,
            "bento.event_store.adapter": type(self.store).__name__,
        }

    async def _take_snapshot(self, stream: str, aggregate: A) -> None:
        assert self.snapshots is not None  # guaranteed by __init__ when snapshot_every > 0
        snapshot = Snapshot(
            stream=stream,
            version=aggregate.version,
            state=aggregate.snapshot_state(),
            aggregate_type=aggregate.aggregate_type,
            schema_version=snapshot_version(type(aggregate)),
            taken_at=datetime.now(UTC),
        )
        try:
            await self.snapshots.save(snapshot)
        except BentoError:
            # The events are committed; a snapshot is only a cache of them, so failing to
            # write one must not turn a successful save into an error. Logged, not hidden.
            logger.warning("could not save snapshot of %s at version %d", stream, aggregate.version, exc_info=True)
