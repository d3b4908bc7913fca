"""Reading a dead-letter topic without consuming it.

`dead_letters()` opens a non-durable Reader at the earliest position, reads up to
`limit` entries and closes it, so the DLQ keeps every message (no subscription
acknowledges anything, and no backlog is held by a forgotten cursor). The reader
blocks, so the whole read runs in `asyncio.to_thread`. `has_message_available()`
fails on a topic that never held a message (pulsar-lite answers getLastMessageId
with an error); then the reader falls back to waiting `_EMPTY_WAIT_MS` for one.
"""

from __future__ import annotations

import logging

import pulsar

from bento.adapters.shared.delivery import (
    ATTEMPTS_HEADER,
    ERROR_MESSAGE_HEADER,
    ERROR_TYPE_HEADER,
    MESSAGE_ID_HEADER,
)
from bento.application.ports.message_bus import DeadLetter

logger = logging.getLogger(__name__)

_EMPTY_WAIT_MS = 200


def read_dead_letters(
    client: pulsar.Client, dlq_topic: str, *, topic: str, group: str | None, limit: int
) -> list[DeadLetter]:
    """Up to `limit` dead letters of `dlq_topic`, oldest first (blocking; call in a thread)."""
    reader = client.create_reader(dlq_topic, pulsar.MessageId.earliest)
    letters: list[DeadLetter] = []
    try:
        while len(letters) < limit:
            try:
                available = reader.has_message_available()
            except pulsar.PulsarException:
                available = None  # unknown: an empty, never-written topic
            if available is False:
                break
            try:
                message = reader.read_next(_EMPTY_WAIT_MS if available is None else 5_000)
            except pulsar.Timeout:
                break
            letters.append(_to_letter(message, topic, group))
    finally:
        try:
            reader.close()
        except pulsar.PulsarException as exc:
            logger.warning("closing the dead-letter reader of %s failed: %r", dlq_topic, exc)
    return letters


def _to_letter(message: pulsar.Message, topic: str, group: str | None) -> DeadLetter:
    headers: dict[str, str] = dict(message.properties())
    attempts = headers.get(ATTEMPTS_HEADER, "0")
    return DeadLetter(
        topic=topic,
        group=group,
        body=message.data(),
        headers=headers,
        error_type=headers.get(ERROR_TYPE_HEADER, ""),
        error_message=headers.get(ERROR_MESSAGE_HEADER, ""),
        attempts=int(attempts) if attempts.isdigit() else 0,
        message_id=headers.get(MESSAGE_ID_HEADER),
    )
