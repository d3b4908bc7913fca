"""InMemoryEventStore: the EventStore port in a list, for tests and demos.

Appends run under one asyncio lock, so the version check and the write are atomic
within the event loop; positions are gap-free in commit order. Every event of an
append is encoded before the first is stored, so an unencodable one leaves nothing
behind (all-or-nothing, like the ClickHouse store's single INSERT)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from bento.application.errors import ConcurrencyError
from bento.application.ports.event_store import (
    ANY_VERSION,
    EventFilter,
    StoredEvent,
    require_filter_text,
    require_text,
)
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent


class InMemoryEventStore:
    """Everything in process memory; lost on exit."""

    def __init__(self, *, codec: JsonCodec | None = None) -> None:
        self.codec = codec or JsonCodec()
        self._log: list[StoredEvent] = []
        self._streams: dict[str, list[StoredEvent]] = {}
        self._lock = asyncio.Lock()

    async def append(
        self, stream: str, events: Sequence[DomainEvent], expected_version: int, *, aggregate_type: str = ""
    ) -> int:
        require_text("stream name", stream)
        encoded_events = [self.codec.encode_for_store(e, aggregate_type=aggregate_type) for e in events]
        async with self._lock:
            history = self._streams.setdefault(stream, [])
            actual = len(history)
            if expected_version != ANY_VERSION and expected_version != actual:
                raise ConcurrencyError(stream, expected_version, actual)
            now = datetime.now(UTC)
            for encoded in encoded_events:
                stored = StoredEvent(
                    position=len(self._log) + 1,
                    stream=stream,
                    version=len(history) + 1,
                    event_id=encoded.event_id,
                    event_type=encoded.event_type,
                    schema_version=encoded.schema_version,
                    data=encoded.data,
                    metadata=encoded.metadata,
                    recorded_at=now,
                    aggregate_type=encoded.aggregate_type,
                    tenant_id=encoded.tenant_id,
                    correlation_id=encoded.correlation_id,
                    causation_id=encoded.causation_id,
                )
                history.append(stored)
                self._log.append(stored)
            return len(history)

    async def read_stream(self, stream: str, from_version: int = 0) -> list[StoredEvent]:
        require_text("stream name", stream)
        return list(self._streams.get(stream, [])[from_version:])

    async def read_stream_events(self, stream: str, from_version: int = 0, *, codec: JsonCodec) -> list[DomainEvent]:
        return codec.decode_stored_many(await self.read_stream(stream, from_version))

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        return self._log[after_position : after_position + limit]

    async def stream_version(self, stream: str) -> int:
        require_text("stream name", stream)
        return len(self._streams.get(stream, ()))

    async def known_version(self, stream: str) -> int | None:
        return await self.stream_version(stream)  # this list is every writer's history

    async def last_position(self) -> int:
        return len(self._log)

    async def query(self, criteria: EventFilter) -> list[StoredEvent]:
        require_filter_text(criteria)
        types = set(criteria.event_types)
        out: list[StoredEvent] = []
        for event in self._log[criteria.after_position :]:
            if types and event.event_type not in types:
                continue
            if criteria.aggregate_type is not None and event.aggregate_type != criteria.aggregate_type:
                continue
            if criteria.tenant_id is not None and event.tenant_id != criteria.tenant_id:
                continue
            if criteria.since is not None and event.recorded_at < criteria.since:
                continue
            if criteria.until is not None and event.recorded_at >= criteria.until:
                continue
            out.append(event)
            if len(out) >= criteria.limit:
                break
        return out

    async def close(self) -> None:
        """Nothing to release; kept for the port."""
