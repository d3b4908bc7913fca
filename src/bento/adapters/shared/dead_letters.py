"""Dead letters read, requeued and purged the same way on every broker.

Each adapter knows where its letters live and how to remove one (a list, a Redis stream entry, a
JetStream sequence, a RabbitMQ delivery tag, a tombstone on a log). What they share is here:
`letter` parses the headers every bus writes into a `DeadLetter`; `replay_copy` builds what is
sent back (re-encoded at the current schema version when the body decodes, so upcasters apply;
addressed to the one group that gave up on it); `requeue_each` runs the loop whose order is the
guarantee: send, wait for the broker to accept, then remove — at a rate limit, oldest first.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from bento.adapters.shared.delivery import (
    ATTEMPTS_HEADER,
    ERROR_MESSAGE_HEADER,
    ERROR_TYPE_HEADER,
    FAILED_AT_HEADER,
    FIRST_FAILED_AT_HEADER,
    KEY_HEADER,
    MESSAGE_ID_HEADER,
    ORIGINAL_TOPIC_HEADER,
    REPLAY_GROUP_HEADER,
    REPLAYED_FROM_HEADER,
)
from bento.adapters.shared.wire_headers import WireEncoder
from bento.application.ports.message_bus import DeadLetter, DeadLetterSelection
from bento.domain.events import DomainEvent

#: Headers a dead letter carries about its failure; a requeued copy starts without them.
_FAILURE_HEADERS = frozenset(
    {
        ERROR_TYPE_HEADER,
        ERROR_MESSAGE_HEADER,
        ATTEMPTS_HEADER,
        ORIGINAL_TOPIC_HEADER,
        FAILED_AT_HEADER,
        FIRST_FAILED_AT_HEADER,
        REPLAY_GROUP_HEADER,
        REPLAYED_FROM_HEADER,
    }
)

ALL = DeadLetterSelection()


def letter(topic: str, group: str | None, body: bytes, headers: Mapping[str, str], letter_id: str) -> DeadLetter:
    """A DeadLetter from the headers `Verdict.dead_letter_headers` wrote (missing or garbled
    values, from a letter someone else wrote, read as unknown rather than failing)."""
    attempts = headers.get(ATTEMPTS_HEADER, "0")
    return DeadLetter(
        topic=headers.get(ORIGINAL_TOPIC_HEADER, topic) or topic,
        group=group,
        body=body,
        headers=dict(headers),
        error_type=headers.get(ERROR_TYPE_HEADER, ""),
        error_message=headers.get(ERROR_MESSAGE_HEADER, ""),
        attempts=int(attempts) if attempts.isdigit() else 0,
        message_id=headers.get(MESSAGE_ID_HEADER) or None,
        letter_id=letter_id,
        key=headers.get(KEY_HEADER) or _aggregate_id(body),
        first_failed_at=_time(headers.get(FIRST_FAILED_AT_HEADER)),
        last_failed_at=_time(headers.get(FAILED_AT_HEADER)),
    )


def _aggregate_id(body: bytes) -> str | None:
    """The partition key a bus derives from a message (its aggregate id), read from a Bento envelope."""
    try:
        value = json.loads(body)["message"]["metadata"]["aggregate_id"]
    except Exception:  # not an envelope (or undecodable): no key known
        return None
    return value if isinstance(value, str) and value else None


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ReplayCopy:
    """What goes back to the subscription for one letter."""

    body: bytes
    key: str | None
    headers: dict[str, str]
    #: The decoded message (None when the letter's body still does not decode).
    message: DomainEvent | None = None


def replay_copy(wire: WireEncoder, dead: DeadLetter, *, topic: str) -> ReplayCopy:
    """The letter as the bus would publish it now: decoded with the bus's codec (upcasters applied)
    and encoded again in the bus's wire format, or, when it still does not decode, its body as it
    was (it comes back to the dead-letter queue if the subscriber still cannot read it). Either way
    it is addressed to the letter's group and names the letter it copies."""
    ours = {REPLAY_GROUP_HEADER: dead.group or "", REPLAYED_FROM_HEADER: dead.letter_id}
    try:
        message = wire.codec.decode(dead.body, dead.headers)
    except Exception:  # undecodable stays as it was; the subscriber dead-letters it again with the reason
        kept = {k: v for k, v in dead.headers.items() if k not in _FAILURE_HEADERS}
        return ReplayCopy(dead.body, dead.key, {**kept, **ours})
    body, headers = wire.encode(message, topic=topic)
    return ReplayCopy(body, dead.key or message.metadata.aggregate_id, {**headers, **ours}, message)


class Throttle:
    """At most `rate` calls of `wait` per second (no limit when `rate` is None)."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        self._interval = 1.0 / rate if rate else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self._interval:
            return
        now = time.monotonic()
        if self._next > now:
            await asyncio.sleep(self._next - now)
        self._next = max(now, self._next) + self._interval


async def requeue_each(
    letters: Iterable[DeadLetter],
    selection: DeadLetterSelection | None,
    rate: float | None,
    send: Callable[[DeadLetter], Awaitable[None]],
    remove: Callable[[DeadLetter], Awaitable[None]],
) -> list[DeadLetter]:
    """For each selected letter: wait for the rate limit, `send` it (returns once the broker
    accepted the copy), then `remove` it. One at a time, in the order the messages were created
    (their own timestamp; queue order for ties), so letters of one key go back in their original
    order even where retries let a later message of the key reach the queue first. A failure stops
    the loop with that letter still in the queue (the next requeue sends it once more, which the
    subscriber's inbox absorbs)."""
    chosen = selection or ALL
    throttle = Throttle(rate)
    done: list[DeadLetter] = []
    for dead in sorted((d for d in letters if chosen.matches(d)), key=created_at):
        await throttle.wait()
        await send(dead)
        await remove(dead)
        done.append(dead)
    return done


def created_at(dead: DeadLetter) -> datetime:
    """The message's own creation time from its body (Bento envelope `message.timestamp`, a
    structured CloudEvent's `time`), or the earliest time when the body does not say."""
    try:
        document = json.loads(dead.body)
        stamp = document["message"]["timestamp"] if "message" in document else document["time"]
        moment = datetime.fromisoformat(stamp)
    except Exception:  # undecodable letters have no order to keep; they go first
        return _EARLIEST
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_EARLIEST = datetime.min.replace(tzinfo=UTC)
