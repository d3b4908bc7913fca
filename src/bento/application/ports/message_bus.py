"""MessageBus: the transport port (publish/subscribe/close, plus batches, groups and health)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
    """A message the bus gave up on, with the original body and why."""

    topic: str
    group: str | None
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    error_type: str = ""
    error_message: str = ""
    attempts: int = 0
    message_id: str | None = None


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

    async def health_check(self) -> HealthStatus: ...

    @property
    def metrics(self) -> BusMetrics:
        """A point-in-time copy of seed 003's counters (see the class docstring)."""
        ...

    def register_reconnect_callback(self, callback: ConnectionCallback) -> None: ...

    def register_disconnect_callback(self, callback: ConnectionCallback) -> None: ...
