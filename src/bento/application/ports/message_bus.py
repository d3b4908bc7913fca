"""MessageBus: the transport port (publish/subscribe/close, plus batches, groups and health)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from bento.application.bus_metrics import BusMetrics
from bento.application.ports.capabilities import Capabilities, HealthStatus
from bento.domain.events import DomainEvent

#: What a subscriber provides: an async callable that raises to refuse a message.
MessageHandler = Callable[[DomainEvent], Awaitable[None]]

#: What the connection callbacks accept: a function, or a coroutine function, of no arguments.
ConnectionCallback = Callable[[], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the bus gave up on, with the original body and why.

    `letter_id` names this letter in its dead-letter queue (the broker's own position where it
    has one: a Redis entry id, a JetStream sequence, a Kafka `partition:offset`), so requeue and
    purge can pick it even when the body was undecodable and `message_id` is None. `key` is the
    partition key the message was published with, when known. `last_failed_at` is when it was
    dead-lettered; `first_failed_at` is when its first delivery failed (None when a retry reached
    another process than the one that saw the first failure, on brokers that redeliver by themselves)."""

    topic: str
    group: str | None
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    error_type: str = ""
    error_message: str = ""
    attempts: int = 0
    message_id: str | None = None
    letter_id: str = ""
    key: str | None = None
    first_failed_at: datetime | None = None
    last_failed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterSelection:
    """Which letters of one subscription's dead-letter queue a requeue or purge touches.

    Empty (the default) selects every letter. `ids` matches a letter's `letter_id` or its
    `message_id`; `error_type` matches exactly (`"ValueError"`, `"DeserializationError"`).
    Both given: a letter must match both."""

    ids: Collection[str] = ()
    error_type: str | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.ids and letter.letter_id not in self.ids and letter.message_id not in self.ids:
            return False
        return self.error_type is None or letter.error_type == self.error_type


class Subscription(Protocol):
    """A live subscription; `cancel` stops delivery and waits for in-flight handlers."""

    @property
    def topic(self) -> str: ...

    @property
    def group(self) -> str | None: ...

    async def cancel(self) -> None: ...


class MessageBus(Protocol):
    """Moves domain events between processes (or within one) by topic.

    Delivery is at-least-once: a message is acknowledged only after its handler
    returned. A handler that raises gets the message again after a back-off, up to
    `max_attempts` deliveries in all; then the message goes to the dead-letter path
    with the original body, the error type and message and the attempt count, and
    the subscription keeps going. A body that cannot be decoded (bad JSON, unknown
    wire name, invalid payload) is dead-lettered at once with the reason. On the wire
    (docs/wire-format.md): Bento's envelope or a CloudEvent, per the bus's `wire_format`,
    with the metadata also in transport headers; every bus reads all three formats.

    `group=None` subscribes for broadcast (every such subscriber gets every message);
    subscribers that share a group share the work, and each group gets every message.
    `ordered=True` asks for per-key order (`key` defaults to the event's aggregate id);
    adapters whose `capabilities.ordered_per_key` is False refuse it.
    Topics may contain `*` wildcards when `capabilities.pattern_subscriptions`.
    `publish` returns only once the backend has accepted the message (confirms);
    `publish_batch` pipelines and returns when all are accepted.

    Every bus keeps seed 003's counters (`metrics`, a snapshot): a message the backend
    accepted counts in `messages_published`, a `publish` or `publish_batch` that raised
    (refused, too large, unencodable, broker down) in `publish_errors`, one per message;
    a delivery whose handler returned counts in `messages_consumed`, one that was retried
    or dead-lettered in `consume_errors`; a lost broker link in `connection_errors`;
    `last_health_check` and `health_check_status` are those of the latest `health_check()`.
    Each client library reconnects by itself; `register_disconnect_callback` runs once
    when the bus notices it lost the broker, `register_reconnect_callback` once it has
    it back and restored its own state (seed 003's `RegisterReconnectCallback`). Both
    take sync or async callables; one that raises is logged and counted as a connection
    error, the others still run. A bus without a broker (in-process) never calls them.
    """

    @property
    def capabilities(self) -> Capabilities: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def publish(
        self,
        topic: str,
        message: DomainEvent,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None: ...

    async def publish_batch(self, topic: str, messages: Sequence[DomainEvent]) -> None: ...

    async def publish_raw(
        self, topic: str, body: bytes, *, key: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send an already-encoded body (interop, replays, tests of the poison path)."""
        ...

    async def subscribe(
        self,
        topic: str,
        handler: MessageHandler,
        *,
        group: str | None = None,
        ordered: bool = False,
        message_type: type[DomainEvent] | None = None,
    ) -> Subscription:
        """`message_type` decodes a plain JSON body (a foreign producer's) into that class;
        Bento envelopes and CloudEvents of any registered type are decoded as usual."""
        ...

    async def dead_letters(self, topic: str, *, group: str | None, limit: int = 100) -> list[DeadLetter]:
        """Messages dead-lettered for `topic` and `group`, oldest first (they stay there)."""
        ...

    async def requeue_dead_letters(
        self,
        topic: str,
        *,
        group: str | None,
        selection: DeadLetterSelection | None = None,
        rate: float | None = None,
    ) -> list[DeadLetter]:
        """Send the selected letters back to the subscription (`topic`, `group`) and remove them
        from its dead-letter queue; returns the letters requeued, in the order sent.

        Letters go oldest first, one at a time, so letters with the same key keep their original
        order; `rate` caps them at that many per second. A letter whose body decodes is re-encoded
        at its class's current schema version (the bus's upcasters applied); one that does not is
        sent as it was. A requeued letter reaches only `group` (other groups on the topic skip it);
        `group=None` re-broadcasts it. Each letter is removed only after the broker accepted its
        copy: an interruption between the two leaves it in the queue, so a second requeue sends it
        again, at least once in all; the subscriber's inbox (same message id) absorbs that copy.
        A letter is never removed without having been sent."""
        ...

    async def purge_dead_letters(
        self, topic: str, *, group: str | None, selection: DeadLetterSelection | None = None
    ) -> int:
        """Remove the selected letters of (`topic`, `group`) for good; returns how many."""
        ...

    async def health_check(self) -> HealthStatus: ...

    @property
    def metrics(self) -> BusMetrics:
        """A point-in-time copy of seed 003's counters (see the class docstring)."""
        ...

    def register_reconnect_callback(self, callback: ConnectionCallback) -> None: ...

    def register_disconnect_callback(self, callback: ConnectionCallback) -> None: ...
