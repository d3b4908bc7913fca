"""What durable (Streams) subscriptions share: one delivery, dead-lettering, group set-up.

An entry's fields are `b` (the encoded body), optionally `k` (the partition key) and
`h` (headers given to `publish_raw`, JSON). Attempts are Redis's own delivery counter
(XPENDING `times_delivered`): XREADGROUP counts 1, each XCLAIM and XAUTOCLAIM adds one,
so the count survives the consumer that made it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bento.adapters.messaging.delivery import Verdict, handle_delivery
from bento.adapters.messaging.redis._keys import Keys
from bento.adapters.messaging.redis.settings import RedisSettings
from bento.adapters.messaging.supervision import Supervisor
from bento.application.ports.message_bus import DeadLetter, MessageHandler
from bento.application.retry import RetryPolicy
from bento.application.serialization import JsonCodec

logger = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]
#: Error type recorded when consumers died (or timed out) on an entry `max_attempts` times.
DELIVERY_LIMIT_ERROR = "DeliveryLimitExceededError"


@dataclass(eq=False)
class DurableContext:
    """The bus-wide pieces a durable subscription needs, and the bus's in-flight count.
    Every reader, reclaim, lease and partition loop runs under `supervisor`."""

    redis: Redis
    keys: Keys
    codec: JsonCodec
    settings: RedisSettings
    policy: RetryPolicy
    supervisor: Supervisor = field(default_factory=lambda: Supervisor("Redis bus"))
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    async def deliver(
        self, handler: MessageHandler, fields: Mapping[bytes, bytes], attempt: int, topic: str
    ) -> Verdict:
        self.in_flight += 1
        self.idle.clear()
        try:
            return await handle_delivery(
                self.codec,
                handler,
                fields.get(b"b", b""),
                attempt=attempt,
                policy=self.policy,
                timeout=self.settings.handler_timeout,
                topic=topic,
                max_bytes=self.settings.max_message_bytes,
            )
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()

    async def create_group(self, stream: str, group: str, start: str) -> None:
        """Create `group` on `stream` (and the stream); an existing group is kept as is."""
        try:
            await self.redis.xgroup_create(stream, group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def attempts_of(self, stream: str, group: str, ids: Sequence[bytes]) -> dict[bytes, int]:
        """Redis's delivery count of each pending id (claimed entries carry no count)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xpending_range(stream, group, entry_id, entry_id, 1)
            replies: list[list[dict[str, Any]]] = await pipe.execute()
        return {row["message_id"]: int(row["times_delivered"]) for reply in replies for row in reply}

    async def dead_letter(
        self,
        stream: str,
        group: str,
        label: tuple[str, str | None],
        entry: Entry,
        topic: str,
        attempts: int,
        verdict: Verdict,
    ) -> None:
        """Copy the entry to the subscription's dead-letter stream with the error, then XACK,
        in one MULTI so a crash in between neither loses nor duplicates it."""
        entry_id, fields = entry
        headers = {**_headers(fields), **verdict.dead_letter_headers(attempts, topic)}
        record: dict[str, str | bytes] = {
            "body": fields.get(b"b", b""),
            "topic": topic,
            "error_type": verdict.error_type,
            "error_message": verdict.error_message[:2000],
            "attempts": str(attempts),
            "headers": json.dumps(headers),
            "entry_id": entry_id,
        }
        if verdict.message is not None:
            record["message_id"] = verdict.message.message_id
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.keys.dead_letters(*label), record)  # type: ignore[arg-type]
            pipe.xack(stream, group, entry_id)
            await pipe.execute()

    async def read_dead_letters(self, topic: str, group: str | None, limit: int) -> list[DeadLetter]:
        rows = entries(await self.redis.xrange(self.keys.dead_letters(topic, group), count=limit))
        return [_letter(topic, group, fields) for _, fields in rows]


def batches(reply: object) -> list[tuple[str, list[Entry]]]:
    """XREADGROUP's reply (RESP2: [[stream, [(id, fields), …]], …]) with its types."""
    rows = cast(list[tuple[bytes, list[Entry]]], reply or [])
    return [(name.decode(), entries(batch)) for name, batch in rows]


def entries(reply: object) -> list[Entry]:
    """Entries of an XRANGE / XCLAIM reply; deleted ones (fields None) are left out."""
    return [entry for entry in cast(list[Entry], reply or []) if entry[1] is not None]


def autoclaimed(reply: object) -> tuple[bytes, list[Entry]]:
    """XAUTOCLAIM's reply: the cursor to continue from, and the claimed entries."""
    cursor, claimed = cast(tuple[bytes, list[Entry]], reply)[:2]
    return cursor, entries(claimed)


def _headers(fields: Mapping[bytes, bytes]) -> dict[str, str]:
    raw = fields.get(b"h")
    if not raw:
        return {}
    value = json.loads(raw)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _letter(topic: str, group: str | None, fields: Mapping[bytes, bytes]) -> DeadLetter:
    text = {k.decode(): v.decode(errors="replace") for k, v in fields.items() if k != b"body"}
    headers = json.loads(text.get("headers", "{}"))
    return DeadLetter(
        topic=topic,
        group=group,
        body=fields.get(b"body", b""),
        headers=headers,
        error_type=text.get("error_type", ""),
        error_message=text.get("error_message", ""),
        attempts=int(text.get("attempts", "0")),
        message_id=text.get("message_id") or None,
    )


class Loop:
    """A background loop that stops gracefully: it is cancelled only while it waits on
    Redis (`waiting()`), never while a handler runs, so a batch in hand is finished and
    acknowledged before the loop ends."""

    def __init__(self) -> None:
        self.stopping = False
        self._waiting = False
        self.task: asyncio.Task[None] | None = None

    def waiting(self) -> _Waiting:
        return _Waiting(self)

    def stopped(self) -> bool:
        """Whether `stop()` was called (the supervisor does not restart a stopping loop)."""
        return self.stopping

    async def stop(self, grace: float) -> None:
        self.stopping = True
        task = self.task
        if task is None or task.done():
            return
        if self._waiting:
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            logger.warning("a Redis consumer loop did not finish within %.1fs; cancelling it", grace)
            task.cancel()
            await asyncio.wait({task})


class _Waiting:
    def __init__(self, loop: Loop) -> None:
        self._loop = loop

    def __enter__(self) -> None:
        self._loop._waiting = True

    def __exit__(self, *exc: object) -> None:
        self._loop._waiting = False
