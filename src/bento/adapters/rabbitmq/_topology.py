"""Names and arguments of the queues and exchanges the bus declares.

Every name is scoped by the exchange `E` the application publishes to, because queues are
vhost-wide: two applications on one vhost with the same group and pattern must never share a
queue (they would split each other's events), nor a retry queue. Layout, for pattern `P`, group `G`:

- `E/G/P`        durable queue bound to `E` with binding key `P`, where `*` is written `+` in the
                 name (a group is scoped to its pattern: one group on two patterns has two queues);
- `E/G/P.dlq`    durable dead-letter queue of that subscription (the suffix is a setting);
- `E/_broadcast/P.<id>`  exclusive auto-delete queue for `group=None`; its DLQ is `E/_broadcast/P.dlq`;
- `E/bento.retry.<ms>ms` a fanout exchange and a queue per retry delay, shared by the application's
  subscriptions: the queue has `x-message-ttl=<ms>` and dead-letters to the default exchange, and a
  retried message is published there with the routing key of the queue it came from, so on expiry
  it goes straight back to that queue. The broker has no delayed-message plugin; this never blocks
  other messages and never hot-loops.

`/` and `:` inside `E` and `G` are escaped, so the first two `/` always split the name and distinct
(exchange, group, pattern) triples never share a queue. `legacy_queue_names=True` keeps the names of
earlier versions (`G.P`, `G.P.dlq`, `_broadcast.P.…`, `bento.retry.<ms>ms`), which applications on one
vhost share; `legacy_queue` gives that name for the migration (docs/rabbitmq.md).
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
    if settings.legacy_queue_names:
        if group is not None:
            return legacy_queue(pattern, group)
        return _checked(f"{settings.broadcast_prefix}.{pattern}.{uuid.uuid4().hex[:12]}", pattern)
    owner = group if group is not None else settings.broadcast_prefix
    name = f"{_scope(settings)}/{_escaped(owner, '/')}/{_escaped(pattern)}"
    return _bounded(name if group is not None else f"{name}.{uuid.uuid4().hex[:12]}", pattern)


def dead_letter_queue(settings: RabbitMQSettings, pattern: str, group: str | None) -> str:
    owner = group if group is not None else settings.broadcast_prefix
    if settings.legacy_queue_names:
        return _checked(f"{owner}.{pattern}{settings.dead_letter_suffix}", pattern)
    name = f"{_scope(settings)}/{_escaped(owner, '/')}/{_escaped(pattern)}"
    return _bounded(f"{name}{_escaped(settings.dead_letter_suffix)}", pattern)


def legacy_queue(pattern: str, group: str) -> str:
    """The group queue's name before names were scoped by exchange (shared by every application)."""
    return _checked(f"{group}.{pattern}", pattern)


def retry_name(settings: RabbitMQSettings, delay: float) -> str:
    """The exchange and the queue (same name) that hold a message `delay` seconds."""
    name = f"{settings.retry_exchange_prefix}.{delay_ms(delay)}ms"
    if settings.legacy_queue_names:
        return name
    return _bounded(f"{_scope(settings)}/{_escaped(name)}", settings.exchange_name)


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


def _scope(settings: RabbitMQSettings) -> str:
    return _escaped(settings.exchange_name, "/")


def _escaped(part: str, separator: str = "") -> str:
    """A legal AMQP name part: `*` becomes `+` (MQTT's one-level wildcard), other odd characters
    (and `separator`) `:xx` hex escapes, so distinct parts keep distinct names."""
    return "".join(
        c if _ALLOWED.fullmatch(c) and c != separator else ("+" if c == "*" else f":{ord(c):x}") for c in part
    )


def _checked(name: str, pattern: str) -> str:
    return _bounded(_escaped(name), pattern)


def _bounded(name: str, pattern: str) -> str:
    if len(name.encode()) > _MAX_NAME:
        raise SubscribeError(pattern, f"queue name {name[:60]!r}… is longer than {_MAX_NAME} bytes")
    return name
