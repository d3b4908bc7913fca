"""RequestReplyPort: a broker's own request/reply, which a MessageBus adapter may offer.

NATS answers a request on the requester's private inbox in one hop each way, where the
MessageBus path stores the command and the reply in a stream. A remote CommandBus uses this
port for `dispatch` and `ask` when the adapter offers it (`bus.request_reply` is not None) and
the MessageBus otherwise; `send` always takes the durable MessageBus path.

It is not durable: a request no server answers in time (none running, or one that died) is a
TimeoutError, which the remote bus reports as CommandTimeoutError. `serve` shares requests among
every server of one `group`, so exactly one answers each request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from bento.application.ports.message_bus import Subscription
from bento.domain.events import DomainEvent

#: Answers one request with one reply (both messages; the adapter's codec encodes them).
RequestHandler = Callable[[DomainEvent], Awaitable[DomainEvent | None]]


class RequestReplyPort(Protocol):
    async def request(self, topic: str, message: DomainEvent, *, timeout: float) -> DomainEvent:
        """Send `message` to the servers of `topic`; their reply, or TimeoutError."""
        ...

    async def serve(self, topic: str, handler: RequestHandler, *, group: str) -> Subscription:
        """Answer requests to `topic` (one server of `group` each); `cancel` waits for running ones."""
        ...
