"""What durable (Streams) subscriptions share: one delivery, dead-lettering, group set-up.

An entry's fields are `b` (the encoded body), optionally `k` (the partition key) and
`h` (headers given to `publish_raw`, JSON). Attempts are Redis's own delivery counter
(XPENDING `times_delivered`): XREADGROUP counts 1, each XCLAIM and XAUTOCLAIM adds one,
so the count survives the consumer that made it.

Anyone can XADD to a topic's stream, so an entry is untrusted input: one without `b`
(another library's layout, e.g. faststream's `__data__`) or with an `h` that is not a
JSON object is dead-lettered with a reason naming the field, never handed to the handler
and never allowed to raise out of the consumer loop. A dead letter of an entry without
`b` keeps the whole raw entry (see `raw_entry`), bounded, so nothing is lost silently.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bento.adapters.redis._foreign import FASTSTREAM_FIELD, faststream_message
from bento.adapters.redis._keys import Keys
from bento.adapters.redis.settings import RedisSettings
from bento.adapters.shared.dead_letters import letter
from bento.adapters.shared.delivery import (
    ATTEMPTS_HEADER,
    ERROR_MESSAGE_HEADER,
    ERROR_TYPE_HEADER,
    MESSAGE_ID_HEADER,
    Action,
    FirstFailures,
    Verdict,
    handle_delivery,
)
from bento.adapters.shared.supervision import Supervisor
from bento.application.errors import DeserializationError
from bento.application.ports.message_bus import DeadLetter, MessageHandler
from bento.application.retry import RetryPolicy
from bento.application.serialization import JsonCodec
from bento.application.wire import TransportFacts

logger = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]
#: Error type recorded when consumers died (or timed out) on an entry `max_attempts` times.
DELIVERY_LIMIT_ERROR = "DeliveryLimitExceededError"
#: Header on a dead letter whose body is the raw entry (JSON of its fields), not a message.
RAW_ENTRY_HEADER = "x-bento-raw-entry"
#: Bounds of the raw entry a dead letter keeps: fields, and characters per field value.
RAW_ENTRY_MAX_FIELDS = 64
RAW_ENTRY_MAX_VALUE = 64 * 1024
#: Characters of an untrusted field name or value quoted in a reason.
_QUOTE = 80


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
    failures: FirstFailures = field(default_factory=FirstFailures)

    def __post_init__(self) -> None:
        self.idle.set()

    async def deliver(
        self,
        handler: MessageHandler,
        fields: Mapping[bytes, bytes],
        attempt: int,
        topic: str,
        entry_id: bytes | None = None,
        group: str | None = None,
    ) -> Verdict:
        """Run `handler` on one entry. Its `h` field is the transport headers, and its entry id
        the transport id and time of a plain foreign payload (the same on every redelivery)."""
        malformed = _malformed(fields)
        if malformed is None:
            try:
                body, headers = _body_and_headers(fields)
            except DeserializationError as exc:
                malformed = exc
        counters = self.supervisor.counters
        if malformed is not None:
            counters.consume_errors += 1
            logger.error("dead-lettering a malformed entry on %r: %s", topic, malformed)
            return Verdict(Action.DEAD, error_type=type(malformed).__name__, error_message=str(malformed))
        self.in_flight += 1
        self.idle.clear()
        try:
            verdict = await handle_delivery(
                self.codec,
                handler,
                body,
                attempt=attempt,
                policy=self.policy,
                timeout=self.settings.handler_timeout,
                topic=topic,
                max_bytes=self.settings.max_message_bytes,
                system="redis",
                group=group,
                headers=headers,
                transport=None if entry_id is None else functools.partial(entry_facts, entry_id),
                failures=self.failures,
            )
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()
        if verdict.action is Action.ACK:
            counters.messages_consumed += 1
        else:
            counters.consume_errors += 1
            counters.retries += verdict.action is Action.RETRY
        return verdict

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
        try:
            kept = _headers(fields)
        except DeserializationError:
            kept = {}  # the reason is already in the verdict (see `_malformed`)
        if b"b" in fields:
            body = fields[b"b"]
        else:
            body, kept = raw_entry(fields), {**kept, RAW_ENTRY_HEADER: "1"}
        headers = {**kept, **verdict.dead_letter_headers(attempts, topic)}
        record: dict[str, str | bytes] = {
            "body": body,
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
        self.supervisor.counters.dead_lettered += 1

    async def read_dead_letters(self, topic: str, group: str | None, limit: int | None) -> list[DeadLetter]:
        """Oldest first; every letter when `limit` is None (read in pages of 1,000)."""
        key, start = self.keys.dead_letters(topic, group), "-"
        found: list[DeadLetter] = []
        while limit is None or len(found) < limit:
            page = 1000 if limit is None else min(1000, limit - len(found))
            rows = entries(await self.redis.xrange(key, min=start, count=page))
            found.extend(_letter(topic, group, entry_id, fields) for entry_id, fields in rows)
            if len(rows) < page:
                break
            start = "(" + rows[-1][0].decode("ascii")
        return found


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


def _malformed(fields: Mapping[bytes, bytes]) -> DeserializationError | None:
    """Why an entry cannot be a Bento message (None when it can): no `b` nor FastStream's
    `__data__` (a bad `h` is found when `deliver` reads it)."""
    if b"b" not in fields and FASTSTREAM_FIELD not in fields:
        names = ", ".join(repr(_quote(name)) for name in list(fields)[:8])
        return DeserializationError(
            f"the entry has no 'b' field (its fields: {names or 'none'}); Bento reads the body from 'b', "
            "so it was probably written by another library; the raw entry is kept in the dead letter"
        )
    return None


def entry_facts(entry_id: bytes) -> TransportFacts:
    """An entry's id, and the milliseconds in it as the time Redis stored it."""
    text = entry_id.decode("ascii", errors="replace")
    millis = text.partition("-")[0]
    stamp = datetime.fromtimestamp(int(millis) / 1000, UTC) if millis.isdigit() else None
    return TransportFacts(message_id=text, timestamp=stamp)


def _body_and_headers(fields: Mapping[bytes, bytes]) -> tuple[bytes, dict[str, str]]:
    body = fields.get(b"b")
    if body is None:
        return faststream_message(fields[FASTSTREAM_FIELD])
    return body, _headers(fields)


def _headers(fields: Mapping[bytes, bytes]) -> dict[str, str]:
    """The `h` field as a dict; DeserializationError, whatever went wrong decoding it."""
    raw = fields.get(b"h")
    if not raw:
        return {}
    try:
        value = json.loads(raw.decode("utf-8"))
    except Exception as exc:  # any failure decoding untrusted input is the same typed error
        raise DeserializationError(
            f"the 'h' (headers) field is not JSON ({type(exc).__name__}); it starts {_quote(raw)!r}"
        ) from None
    if not isinstance(value, dict):
        raise DeserializationError(f"the 'h' (headers) field is JSON {type(value).__name__}, not an object")
    return {str(k): str(v) for k, v in value.items()}


def raw_entry(fields: Mapping[bytes, bytes]) -> bytes:
    """The whole entry as a JSON object (name -> value, undecodable bytes escaped), at most
    RAW_ENTRY_MAX_FIELDS fields of at most RAW_ENTRY_MAX_VALUE characters each; a
    `"…truncated"` key counts what was cut, so a reader knows the copy is partial."""
    items = list(fields.items())
    kept: dict[str, str] = {}
    cut = max(0, len(items) - RAW_ENTRY_MAX_FIELDS)
    for name, value in items[:RAW_ENTRY_MAX_FIELDS]:
        text = value.decode("utf-8", errors="backslashreplace")
        if len(text) > RAW_ENTRY_MAX_VALUE:
            text, cut = text[:RAW_ENTRY_MAX_VALUE], cut + 1
        kept[name.decode("utf-8", errors="backslashreplace")[:RAW_ENTRY_MAX_VALUE]] = text
    if cut:
        kept["…truncated"] = f"{cut} field(s) cut or shortened"
    return json.dumps(kept, ensure_ascii=False).encode()


def _quote(raw: bytes) -> str:
    return raw[:_QUOTE].decode("utf-8", errors="backslashreplace")


def _letter(topic: str, group: str | None, entry_id: bytes, fields: Mapping[bytes, bytes]) -> DeadLetter:
    text = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items() if k != b"body"}
    try:
        headers = json.loads(text.get("headers", "{}"))
    except ValueError:  # only this adapter writes dead letters, but their stream is writable by anyone
        headers = {"x-bento-headers": text.get("headers", "")[:2000]}
    if not isinstance(headers, dict):
        headers = {}
    # The record's own fields win: they are what this adapter wrote beside the headers.
    headers = {str(k): str(v) for k, v in headers.items()}
    for name, header in _RECORD_HEADERS.items():
        if text.get(name):
            headers[header] = text[name]
    return letter(topic, group, fields.get(b"body", b""), headers, entry_id.decode("ascii", "replace"))


_RECORD_HEADERS = {
    "error_type": ERROR_TYPE_HEADER,
    "error_message": ERROR_MESSAGE_HEADER,
    "attempts": ATTEMPTS_HEADER,
    "message_id": MESSAGE_ID_HEADER,
}


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
