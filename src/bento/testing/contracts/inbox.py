"""InboxContract. Subclasses provide an `inbox` fixture."""

from __future__ import annotations

import asyncio
import uuid

from bento.application.ports.inbox import Inbox


class InboxContract:
    async def test_first_mark_wins(self, inbox: Inbox) -> None:
        consumer, message = f"c-{uuid.uuid4().hex}", uuid.uuid4().hex
        assert not await inbox.is_processed(consumer, message)
        assert await inbox.mark_processed(consumer, message) is True
        assert await inbox.is_processed(consumer, message)
        assert await inbox.mark_processed(consumer, message) is False

    async def test_consumers_are_independent(self, inbox: Inbox) -> None:
        message = uuid.uuid4().hex
        await inbox.mark_processed(f"a-{message}", message)
        assert not await inbox.is_processed(f"b-{message}", message)

    async def test_concurrent_marks_have_one_winner(self, inbox: Inbox) -> None:
        consumer, message = f"c-{uuid.uuid4().hex}", uuid.uuid4().hex
        results = await asyncio.gather(*(inbox.mark_processed(consumer, message) for _ in range(20)))
        assert results.count(True) == 1
