"""Inbox: processed message ids, for idempotent consumers."""

from __future__ import annotations

from typing import Protocol


class Inbox(Protocol):
    """Remembers which message ids a consumer has processed.

    `mark_processed` returns True the first time an id is marked for a consumer and
    False afterwards; consumers mark after their handler succeeded, and skip (but
    acknowledge) a redelivered message whose id `is_processed`."""

    async def is_processed(self, consumer: str, message_id: str) -> bool: ...

    async def mark_processed(self, consumer: str, message_id: str) -> bool: ...
