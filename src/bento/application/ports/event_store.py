"""EventStore: durable history of every domain event, in one global order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from bento.application.errors import InvalidTextError
from bento.domain.events import DomainEvent

if TYPE_CHECKING:
    from bento.application.serialization import JsonCodec

#: `expected_version` that skips the concurrency check (append whatever the version).
ANY_VERSION = -1
#: `expected_version` of a stream that must not exist yet.
NO_STREAM = 0


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as the store keeps it. `data`/`metadata` are JSON text; `stored.decode(codec)`
    gives the event (upcast to its class's current version), `stored.envelope(codec)` the wire
    envelope without needing the class."""

    position: int
    stream: str
    version: int
    event_id: str
    event_type: str
    schema_version: int
    data: str
    metadata: str
    recorded_at: datetime
    aggregate_type: str = ""
    tenant_id: str = ""
    correlation_id: str = ""
    causation_id: str = ""

    def decode(self, codec: JsonCodec) -> DomainEvent:
        return codec.decode_stored(self.event_id, self.event_type, self.schema_version, self.data, self.metadata)

    def envelope(self, codec: JsonCodec) -> bytes:
        return codec.encode_stored(self.event_id, self.event_type, self.schema_version, self.data, self.metadata)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Criteria for `EventStore.query`; every given criterion must match."""

    event_types: Sequence[str] = ()
    aggregate_type: str | None = None
    tenant_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_position: int = 0
    limit: int = 1000


def require_text(what: str, value: str) -> str:
    """`value` if it encodes as UTF-8, else InvalidTextError. Every store checks stream
    names and filter values with it, so a lone surrogate is the same typed error on
    every adapter rather than a driver's UnicodeEncodeError (or a silent non-match)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidTextError(what, value) from None
    return value


def require_filter_text(criteria: EventFilter) -> None:
    """`require_text` for every text criterion of an EventFilter."""
    for event_type in criteria.event_types:
        require_text("event type", event_type)
    if criteria.aggregate_type is not None:
        require_text("aggregate type", criteria.aggregate_type)
    if criteria.tenant_id is not None:
        require_text("tenant id", criteria.tenant_id)


class EventStore(Protocol):
    """Durable history of every domain event, in one global order.

    `append` is all-or-nothing and returns the stream's new version (versions start
    at 1; a new stream is at 0). If the stream is not at `expected_version` it
    raises ConcurrencyError and writes nothing, even when the other writer is another
    process. `ANY_VERSION` skips the check.

    `read_all(after_position, limit)` returns events with position > after_position
    in position order. Positions never change once read, and a reader that has
    checkpointed position P never misses an event that becomes visible later with a
    position <= P; projections and the outbox relay checkpoint against them.

    A stream name, aggregate type or filter value that is not valid UTF-8 text (a lone
    surrogate) raises InvalidTextError on every method (`require_text`).
    """

    async def append(
        self, stream: str, events: Sequence[DomainEvent], expected_version: int, *, aggregate_type: str = ""
    ) -> int: ...

    async def read_stream(self, stream: str, from_version: int = 0) -> list[StoredEvent]:
        """Events of `stream` with version > from_version, in version order."""
        ...

    async def read_stream_events(self, stream: str, from_version: int = 0, *, codec: JsonCodec) -> list[DomainEvent]:
        """The events of `read_stream` decoded with `codec`: equal to `codec.decode_stored_many(
        await read_stream(...))`, including its typed errors. What EventSourcedRepository
        loads with; a store may decode straight from what it read, without StoredEvents."""
        ...

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]: ...

    async def stream_version(self, stream: str) -> int: ...

    async def known_version(self, stream: str) -> int | None:
        """The stream's current version when the store can prove it without reading the
        stream: it knows that no writer it cannot see (another process) has written the
        stream since it last did. None when it cannot prove that; the caller then reads.
        A number returned is never stale with respect to commits that finished before
        the call; a repository uses it to reuse an aggregate it loaded earlier."""
        ...

    async def query(self, criteria: EventFilter) -> list[StoredEvent]:
        """Events matching every criterion, in position order."""
        ...

    async def last_position(self) -> int: ...

    async def close(self) -> None: ...
