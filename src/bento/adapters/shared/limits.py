"""The one check of `max_message_bytes` on the publishing side, shared by every adapter.

The consuming side is `handle_delivery(..., max_bytes=...)`, which dead-letters a body
over the limit (one sent by another producer) without decoding it."""

from __future__ import annotations

from collections.abc import Iterable

from bento.application.bus_metrics import BusCounters
from bento.application.errors import MessageTooLargeError


def within_limit(body: bytes, limit: int, topic: str, counters: BusCounters | None = None) -> bytes:
    """`body`, or MessageTooLargeError when it is longer than `limit` bytes (nothing is sent,
    and the refusal counts as a publish error in `counters`)."""
    if len(body) > limit:
        if counters is not None:
            counters.publish_errors += 1
        raise MessageTooLargeError(len(body), limit, topic=topic)
    return body


def all_within_limit(bodies: Iterable[bytes], limit: int, topic: str, counters: BusCounters | None = None) -> None:
    """Check a whole batch before its first send, so an oversized message fails the batch
    with nothing sent (every message of it counts as a publish error in `counters`)."""
    batch = list(bodies)
    for body in batch:
        if len(body) > limit:
            if counters is not None:
                counters.publish_errors += len(batch)
            raise MessageTooLargeError(len(body), limit, topic=topic)
