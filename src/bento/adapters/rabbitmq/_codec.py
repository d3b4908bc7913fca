"""AMQP properties and headers: building them cheaply on publish, reading them on delivery."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from pamqp.commands import Basic

from bento.adapters.shared.dead_letters import letter
from bento.adapters.shared.delivery import ATTEMPTS_HEADER, KEY_HEADER
from bento.application.ports.message_bus import DeadLetter
from bento.application.serialization import CONTENT_TYPE
from bento.application.wire import TransportFacts
from bento.domain.events import DomainEvent

PERSISTENT = 2
#: A dead letter's id in its queue (a uuid written when the bus dead-lettered it).
LETTER_ID_HEADER = "x-bento-letter-id"
TRANSIENT = 1
#: Headers the broker adds when it dead-letters; copying them into a republished message would
#: make RabbitMQ's cycle detection drop it on the next expiry, so they are never forwarded.
_BROKER_DEATH_HEADERS = ("x-death", "x-first-death-", "x-last-death-")


def properties(message_id: str | None, key: str | None, headers: Mapping[str, str] | None) -> Basic.Properties:
    """Persistent properties; headers only when there is something to say (they cost per message)."""
    table: dict[str, Any] | None = None
    if key or headers:
        table = dict(headers) if headers else {}
        if key:
            table[KEY_HEADER] = key
    return Basic.Properties(delivery_mode=PERSISTENT, content_type=CONTENT_TYPE, message_id=message_id, headers=table)


def message_properties(
    message: DomainEvent,
    key: str | None,
    headers: dict[str, Any],
    content_type: str,
    *,
    reply_to: str | None = None,
) -> Basic.Properties:
    """Properties of a published message (docs/wire-format.md): the AMQP message_id, type,
    correlation_id, timestamp and content_type, and `headers` (metadata or CloudEvents
    attributes, from WireEncoder) as the headers table; `reply_to` for a request whose reply
    takes direct reply-to."""
    if key:
        headers[KEY_HEADER] = key
    return Basic.Properties(
        delivery_mode=PERSISTENT,
        reply_to=reply_to,
        content_type=content_type,
        message_id=message.message_id,
        correlation_id=message.metadata.correlation_id,
        timestamp=message.timestamp,
        message_type=type(message).__wire_name__,
        headers=headers,
    )


def reply_properties(message: DomainEvent) -> Basic.Properties:
    """Properties of a reply sent by direct reply-to: not persistent (it is never stored), Bento's
    envelope, no headers."""
    return Basic.Properties(
        delivery_mode=TRANSIENT,
        content_type=CONTENT_TYPE,
        message_id=message.message_id,
        correlation_id=message.metadata.correlation_id,
        message_type=type(message).__wire_name__,
    )


def transport_facts(properties: Basic.Properties) -> TransportFacts:
    """What AMQP itself says about a delivery (for a plain payload from a foreign producer)."""
    stamp = properties.timestamp
    if stamp is not None and stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return TransportFacts(
        message_id=properties.message_id or None, timestamp=stamp, correlation_id=properties.correlation_id or None
    )


def forwardable(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """The message's own headers, without the broker's dead-lettering bookkeeping."""
    if not headers:
        return {}
    return {k: v for k, v in headers.items() if not k.startswith(_BROKER_DEATH_HEADERS)}


def republished(
    message_id: str | None,
    content_type: str | None,
    headers: dict[str, Any],
    original: Basic.Properties | None = None,
) -> Basic.Properties:
    """Properties of a copy sent to a retry or dead-letter queue. With the `original` properties,
    its correlation_id, type and timestamp are kept (a foreign producer's plain payload reads them)."""
    if original is None:
        return Basic.Properties(
            delivery_mode=PERSISTENT, content_type=content_type or CONTENT_TYPE, message_id=message_id, headers=headers
        )
    return Basic.Properties(
        delivery_mode=PERSISTENT,
        content_type=content_type or CONTENT_TYPE,
        message_id=message_id,
        headers=headers,
        correlation_id=original.correlation_id,
        message_type=original.message_type,
        timestamp=original.timestamp,
        reply_to=original.reply_to,  # a retried request still gets its direct reply
    )


def text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def failed_attempts(headers: Mapping[str, Any] | None) -> int:
    """Deliveries of this message that already failed (0 on the first delivery)."""
    if not headers:
        return 0
    raw = headers.get(ATTEMPTS_HEADER)
    if raw is None:
        return 0
    try:
        return max(0, int(text(raw)))
    except ValueError:
        return 0


def dead_letter(
    body: bytes, headers: Mapping[str, Any] | None, group: str | None, pattern: str, amqp_id: str | None = None
) -> DeadLetter:
    """A DLQ entry as the port's DeadLetter (the message id only when the body was decodable).
    A queue has no positions, so the letter id is the `LETTER_ID_HEADER` the bus wrote when it
    dead-lettered; letters from before that header have their AMQP message id, or a digest of
    the body and headers."""
    flat = {k: text(v) for k, v in (headers or {}).items() if not k.startswith(_BROKER_DEATH_HEADERS)}
    letter_id = flat.get(LETTER_ID_HEADER) or amqp_id or _digest(body, flat)
    return letter(pattern, group, body, flat, letter_id)


def _digest(body: bytes, headers: Mapping[str, str]) -> str:
    digest = hashlib.blake2b(body, digest_size=12)
    digest.update(repr(sorted(headers.items())).encode())
    return digest.hexdigest()
