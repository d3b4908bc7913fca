"""Inbox and CheckpointStore contracts on Redis."""

from collections.abc import AsyncIterator

import pytest

from bento.adapters.redis.checkpoint_store import RedisCheckpointStore
from bento.adapters.redis.inbox import RedisInbox, RedisStoreSettings
from bento.application.ports.checkpoint_store import CheckpointStore
from bento.application.ports.inbox import Inbox
from bento.testing.contracts.checkpoint_store import CheckpointStoreContract
from bento.testing.contracts.inbox import InboxContract


class TestRedisInbox(InboxContract):
    @pytest.fixture
    async def inbox(self, redis_url: str, key_prefix: str) -> AsyncIterator[Inbox]:
        async with RedisInbox(RedisStoreSettings(url=redis_url, key_prefix=key_prefix, retention=600)) as inbox:
            yield inbox


class TestRedisCheckpointStore(CheckpointStoreContract):
    @pytest.fixture
    async def checkpoints(self, redis_url: str, key_prefix: str) -> AsyncIterator[CheckpointStore]:
        async with RedisCheckpointStore(RedisStoreSettings(url=redis_url, key_prefix=key_prefix)) as store:
            yield store
