"""Reading a dead-letter topic without consuming it.

`dead_letters()` opens a non-durable Reader at the earliest position, reads up to
`limit` entries and closes it, so the DLQ keeps every message (no subscription
acknowledges anything, and no backlog is held by a forgotten cursor). The reader
blocks, so the whole read runs in `asyncio.to_thread`. `has_message_available()`
fails on a topic that never held a message (pulsar-lite answers getLastMessageId
with an error); then the reader falls back to waiting `_EMPTY_WAIT_MS` for one.

A topic cannot delete one message, so requeue and purge append the letter's id (its
message id) to `<dlq>-REMOVED`, and reading leaves those out. A requeued letter's id is
appended only after its copy was confirmed: an interruption in between leaves it listed, and
the next requeue sends it again (the subscriber's inbox absorbs that copy).
"""

from __future__ import annotations

import logging

import pulsar

from bento.adapters.shared.dead_letters import letter
from bento.application.ports.message_bus import DeadLetter

logger = logging.getLogger(__name__)

_EMPTY_WAIT_MS = 200


def read_dead_letters(
    client: pulsar.Client, dlq_topic: str, *, topic: str, group: str | None, limit: int | None
) -> list[DeadLetter]:
    """Up to `limit` (every one when None) dead letters of `dlq_topic` not named in its removal
    topic, oldest first (blocking; call in a thread)."""
    removed = {message.data().decode("ascii", "replace") for message in _read(client, removal_topic(dlq_topic), None)}
    letters: list[DeadLetter] = []
    for message in _read(client, dlq_topic, None):
        letter_id = _letter_id(message.message_id())
        if letter_id in removed:
            continue
        letters.append(letter(topic, group, message.data(), dict(message.properties()), letter_id))
        if limit is not None and len(letters) >= limit:
            break
    return letters


def removal_topic(dlq_topic: str) -> str:
    """Where the ids of requeued and purged letters of `dlq_topic` are appended."""
    return f"{dlq_topic}-REMOVED"


def _letter_id(message_id: pulsar.MessageId) -> str:
    return f"{message_id.ledger_id()}:{message_id.entry_id()}:{message_id.partition()}:{message_id.batch_index()}"


def _read(client: pulsar.Client, name: str, limit: int | None) -> list[pulsar.Message]:
    reader = client.create_reader(name, pulsar.MessageId.earliest)
    found: list[pulsar.Message] = []
    try:
        while limit is None or len(found) < limit:
            try:
                available = reader.has_message_available()
            except pulsar.PulsarException:
                available = None  # unknown: an empty, never-written topic
            if available is False:
                break
            try:
                found.append(reader.read_next(_EMPTY_WAIT_MS if available is None else 5_000))
            except pulsar.Timeout:
                break
    finally:
        try:
            reader.close()
        except pulsar.PulsarException as exc:
            logger.warning("closing the dead-letter reader of %s failed: %r", name, exc)
    return found
