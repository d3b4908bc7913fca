"""Names and arguments of the queues and exchanges the bus declares.

Layout, for exchange `E`, pattern `P`, group `G`:

- `G.P`         durable queue bound to `E` with binding key `P`, where `*` is written `+` in the
                name (a group is scoped to its pattern: one group on two patterns has two queues);
- `G.P.dlq`     durable dead-letter queue of that subscription (the suffix is a setting);
- `_broadcast.P.<id>`  exclusive auto-delete queue for `group=None`; its DLQ is `_broadcast.P.dlq`;
- `bento.retry.<ms>ms` a fanout exchange and a queue per retry delay, shared by every subscription:
  the queue has `x-message-ttl=<ms>` and dead-letters to the default exchange, and a retried message
  is published there with the routing key of the queue it came from, so on expiry it goes straight
  back to that queue. The broker has no delayed-message plugin; this never blocks other messages
  and never hot-loops.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from bento.adapters.rabbitmq.settings import RabbitMQSettings
from bento.application.errors import SubscribeError

_MAX_NAME = 255  # AMQP short string
_ALLOWED = re.compile(r"[a-zA-Z0-9\-_.@#,/ ]")  # pamqp's queue-name domain, minus `:` and `+`


def subscription_queue(settings: RabbitMQSettings, pattern: str, group: str | None) -> str:
    if group is not None:
        return _checked(f"{group}.{pattern}", pattern)
    return _checked(f"{settings.broadcast_prefix}.{pattern}.{uuid.uuid4().hex[:12]}", pattern)


def dead_letter_queue(settings: RabbitMQSettings, pattern: str, group: str | None) -> str:
    owner = group if group is not None else settings.broadcast_prefix
    return _checked(f"{owner}.{pattern}{settings.dead_letter_suffix}", pattern)


def retry_name(settings: RabbitMQSettings, delay: float) -> str:
    """The exchange and the queue (same name) that hold a message `delay` seconds."""
    return f"{settings.retry_exchange_prefix}.{delay_ms(delay)}ms"


def delay_ms(delay: float) -> int:
    return max(0, round(delay * 1000))


def queue_arguments(settings: RabbitMQSettings, *, ordered: bool) -> dict[str, Any]:
    arguments: dict[str, Any] = {"x-queue-type": settings.queue_type}
    if ordered:
        # One consumer of the group receives at a time; the others stand by and take over.
        arguments["x-single-active-consumer"] = True
    if settings.queue_expires is not None:
        arguments["x-expires"] = int(settings.queue_expires * 1000)
    return arguments


def dead_letter_arguments(settings: RabbitMQSettings) -> dict[str, Any]:
    arguments: dict[str, Any] = {"x-queue-type": settings.queue_type}
    if settings.queue_expires is not None:
        arguments["x-expires"] = int(settings.queue_expires * 1000)
    return arguments


def retry_arguments(delay: float) -> dict[str, Any]:
    # Dead-letter to the default exchange keeping the message's routing key = target queue.
    return {"x-message-ttl": delay_ms(delay), "x-dead-letter-exchange": ""}


def _checked(name: str, pattern: str) -> str:
    """A legal AMQP queue name: `*` becomes `+` (MQTT's one-level wildcard), other odd characters
    `:xx` hex escapes, so distinct patterns keep distinct queues."""
    name = "".join(c if _ALLOWED.fullmatch(c) else ("+" if c == "*" else f":{ord(c):x}") for c in name)
    if len(name.encode()) > _MAX_NAME:
        raise SubscribeError(pattern, f"queue name {name[:60]!r}… is longer than {_MAX_NAME} bytes")
    return name
