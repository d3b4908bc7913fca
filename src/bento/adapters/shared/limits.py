"""The one check of `max_message_bytes` on the publishing side, shared by every adapter.

The consuming side is `handle_delivery(..., max_bytes=...)`, which dead-letters a body
over the limit (one sent by another producer) without decoding it."""

from __future__ import annotations

from collections.abc import Iterable

from bento.application.errors import MessageTooLargeError


def within_limit(body: bytes, limit: int, topic: str) -> bytes:
    """`body`, or MessageTooLargeError when it is longer than `limit` bytes (nothing is sent)."""
    if len(body) > limit:
        raise MessageTooLargeError(len(body), limit, topic=topic)
    return body


def all_within_limit(bodies: Iterable[bytes], limit: int, topic: str) -> None:
    """Check a whole batch before its first send, so an oversized message fails the batch
    with nothing sent."""
    for body in bodies:
        if len(body) > limit:
            raise MessageTooLargeError(len(body), limit, topic=topic)
