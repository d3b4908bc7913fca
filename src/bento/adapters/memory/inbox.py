"""InMemoryInbox."""

from __future__ import annotations


class InMemoryInbox:
    """Processed ids per consumer in sets (lost on exit; bounded only by memory)."""

    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {}

    async def is_processed(self, consumer: str, message_id: str) -> bool:
        return message_id in self._seen.get(consumer, ())

    async def mark_processed(self, consumer: str, message_id: str) -> bool:
        seen = self._seen.setdefault(consumer, set())
        if message_id in seen:
            return False
        seen.add(message_id)
        return True
