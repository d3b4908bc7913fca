"""The Inbox contract on chdb and on a private ClickHouse server, and what the claim scheme
promises beyond it: a redelivery reaching another instance (another process, or this one after
a restart) is absorbed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.adapters.clickhouse.inbox import ClickHouseInbox
from bento.application.ports.inbox import Inbox
from bento.testing.contracts.inbox import InboxContract


@pytest.fixture(params=["embedded", "server"])
def engine(request: pytest.FixtureRequest) -> ClickHouseEngine:
    found: ClickHouseEngine = request.getfixturevalue(f"{request.param}_engine")
    return found


class TestClickHouseInbox(InboxContract):
    @pytest.fixture
    async def inbox(self, engine: ClickHouseEngine, table_name: str) -> AsyncIterator[Inbox]:
        async with ClickHouseInbox(engine, table=table_name) as inbox:
            yield inbox


async def test_a_redelivery_to_another_instance_is_absorbed(engine: ClickHouseEngine, table_name: str) -> None:
    consumer, message = "orders.shipping", uuid.uuid4().hex
    async with ClickHouseInbox(engine, table=table_name) as first:
        assert await first.mark_processed(consumer, message) is True
    async with ClickHouseInbox(engine, table=table_name) as restarted:  # another process, or a restart
        assert await restarted.is_processed(consumer, message)
        assert await restarted.mark_processed(consumer, message) is False


async def test_racing_instances_never_both_lose(engine: ClickHouseEngine, table_name: str) -> None:
    """Two instances (as two processes would) racing on the same ids: each id is handled at least
    once — a race may let both win (documented), never both lose — and afterwards both agree."""
    ids = [uuid.uuid4().hex for _ in range(20)]
    async with ClickHouseInbox(engine, table=table_name) as a, ClickHouseInbox(engine, table=table_name) as b:
        results = await asyncio.gather(*(inbox.mark_processed("c", i) for i in ids for inbox in (a, b)))
        wins = [results[2 * n] + results[2 * n + 1] for n in range(len(ids))]
        assert all(w >= 1 for w in wins), wins
        assert [await a.is_processed("c", i) for i in ids] == [True] * len(ids)
        assert not any([await b.mark_processed("c", i) for i in ids])
