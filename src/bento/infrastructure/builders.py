"""Open and close one adapter each: the builders the catalogue's rows name.

Every builder is an async generator taking the row's settings first and, by keyword, what
the row `needs` from the container (`codec`, `engine`, `lock`). The container wraps it in a
Resource, so `await container.shutdown_resources()` closes what was opened, and the managers
open one with `asynccontextmanager(builder)`. Each imports its adapter only when called, so
`import bento` needs no client library and only the selected backend is opened.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from bento.application.errors import ConfigurationError
from bento.application.ports.cache import Cache
from bento.application.ports.channel import ChannelPort
from bento.application.ports.checkpoint_store import CheckpointStore
from bento.application.ports.event_store import EventStore
from bento.application.ports.inbox import Inbox
from bento.application.ports.message_bus import MessageBus
from bento.application.ports.read_model import ReadModels
from bento.application.ports.snapshot_store import SnapshotStore
from bento.application.ports.stream_lock import StreamLock
from bento.application.ports.work_queue import WorkQueue
from bento.application.serialization import JsonCodec

if TYPE_CHECKING:
    from bento.adapters.clickhouse.engine import ClickHouseEngine
    from bento.adapters.clickhouse.settings import (
        ClickHouseEventStoreSettings,
        ClickHouseInboxSettings,
        ClickHouseSettings,
        ClickHouseSingleWriterSettings,
    )
    from bento.adapters.memory.settings import InMemoryCacheSettings, InMemoryChannelSettings
    from bento.adapters.rabbitmq.settings import RabbitMQSettings
    from bento.adapters.redis.settings import (
        RedisCacheSettings,
        RedisChannelSettings,
        RedisStoreSettings,
        RedisStreamLockSettings,
        RedisWorkQueueSettings,
    )
    from bento.adapters.shared.settings_base import MessageBusSettingsBase


# -- message buses ------------------------------------------------------------------------
def message_bus(adapter: str) -> Callable[..., AsyncIterator[MessageBus]]:
    """The builder of the MessageBus adapter class `adapter` ("package:Class"): every bus takes
    its settings and the codec, and opens and closes as an async context manager, so one
    builder serves every row of the message-bus catalogue."""
    module, _, name = adapter.partition(":")

    async def open_bus(settings: MessageBusSettingsBase, *, codec: JsonCodec) -> AsyncIterator[MessageBus]:
        bus_class = getattr(importlib.import_module(module), name)  # a missing client: MissingExtraError
        async with bus_class(settings, codec=codec) as bus:
            yield bus

    open_bus.__qualname__ = f"message_bus[{name}]"
    return open_bus


# -- the ClickHouse engine every ClickHouse store shares ----------------------------------
async def clickhouse_engine(settings: ClickHouseSettings) -> AsyncIterator[ClickHouseEngine]:
    from bento.adapters.clickhouse.engine import open_engine

    async with open_engine(settings) as engine:
        yield engine


# -- event stores ---------------------------------------------------------------------------
async def memory_event_store(settings: object, *, codec: JsonCodec) -> AsyncIterator[EventStore]:
    from bento.adapters.memory.event_store import InMemoryEventStore

    store = InMemoryEventStore(codec=codec)
    yield store
    await store.close()


async def clickhouse_event_store(
    settings: ClickHouseEventStoreSettings, *, codec: JsonCodec, engine: ClickHouseEngine, lock: StreamLock
) -> AsyncIterator[EventStore]:
    from bento.adapters.clickhouse.event_store import ClickHouseEventStore
    from bento.adapters.clickhouse.stream_lock import SingleWriterLock
    from bento.adapters.shared.inprocess_lock import InProcessStreamLock

    shared = not isinstance(lock, InProcessStreamLock) or isinstance(lock, SingleWriterLock)
    if engine.mode == "server" and not shared:
        raise ConfigurationError(
            [
                "a ClickHouse server event store needs STREAM_LOCK__BACKEND=redis (several writer processes; "
                "set STREAM_LOCK__URL) or STREAM_LOCK__BACKEND=single-writer (one writer process; a second "
                "fails before it commits), not the in-process lock"
            ]
        )
    store = ClickHouseEventStore(
        engine,
        lock=lock,
        codec=codec,
        table=settings.table,
        group_commit_window_ms=settings.group_commit_window_ms,
        group_commit_max_events=settings.group_commit_max_events,
        version_cache_size=settings.version_cache_size,
    )
    async with store:
        yield store


# -- stream locks -----------------------------------------------------------------------------
async def inprocess_stream_lock(settings: object) -> AsyncIterator[StreamLock]:
    from bento.adapters.memory.stream_lock import InProcessStreamLock

    yield InProcessStreamLock()


async def single_writer_lock(settings: ClickHouseSingleWriterSettings) -> AsyncIterator[StreamLock]:
    from bento.adapters.clickhouse.stream_lock import SingleWriterLock

    yield SingleWriterLock(lease=settings.lease)


async def redis_stream_lock(settings: RedisStreamLockSettings) -> AsyncIterator[StreamLock]:
    from bento.adapters.redis.stream_lock import RedisStreamLock

    async with RedisStreamLock(settings.url.get_secret_value()) as lock:
        yield lock


# -- read models ------------------------------------------------------------------------------
async def memory_read_models(settings: object) -> AsyncIterator[ReadModels]:
    from bento.adapters.memory.read_model import InMemoryReadModels

    yield InMemoryReadModels()


async def clickhouse_read_models(settings: object, *, engine: ClickHouseEngine) -> AsyncIterator[ReadModels]:
    from bento.adapters.clickhouse.read_model import ClickHouseReadModels

    yield ClickHouseReadModels(engine)


# -- checkpoint stores ------------------------------------------------------------------------
async def memory_checkpoints(settings: object) -> AsyncIterator[CheckpointStore]:
    from bento.adapters.memory.checkpoint_store import InMemoryCheckpointStore

    yield InMemoryCheckpointStore()


async def clickhouse_checkpoints(settings: object, *, engine: ClickHouseEngine) -> AsyncIterator[CheckpointStore]:
    from bento.adapters.clickhouse.checkpoint_store import ClickHouseCheckpointStore

    store = ClickHouseCheckpointStore(engine)
    await store.start()
    yield store


async def redis_checkpoints(settings: RedisStoreSettings) -> AsyncIterator[CheckpointStore]:
    from bento.adapters.redis.checkpoint_store import RedisCheckpointStore

    async with RedisCheckpointStore(settings) as store:
        yield store


# -- snapshot stores --------------------------------------------------------------------------
async def memory_snapshots(settings: object) -> AsyncIterator[SnapshotStore]:
    from bento.adapters.memory.snapshot_store import InMemorySnapshotStore

    yield InMemorySnapshotStore()


async def clickhouse_snapshots(settings: object, *, engine: ClickHouseEngine) -> AsyncIterator[SnapshotStore]:
    from bento.adapters.clickhouse.snapshot_store import ClickHouseSnapshotStore

    store = ClickHouseSnapshotStore(engine)
    await store.start()
    yield store


# -- inboxes ----------------------------------------------------------------------------------
async def memory_inbox(settings: object) -> AsyncIterator[Inbox]:
    from bento.adapters.memory.inbox import InMemoryInbox

    yield InMemoryInbox()


async def redis_inbox(settings: RedisStoreSettings) -> AsyncIterator[Inbox]:
    from bento.adapters.redis.inbox import RedisInbox

    async with RedisInbox(settings) as inbox:
        yield inbox


async def clickhouse_inbox(settings: ClickHouseInboxSettings, *, engine: ClickHouseEngine) -> AsyncIterator[Inbox]:
    from bento.adapters.clickhouse.inbox import ClickHouseInbox

    async with ClickHouseInbox(engine, table=settings.table) as inbox:
        yield inbox


# -- channels (streaming, SSE) ----------------------------------------------------------------
async def memory_channel(settings: InMemoryChannelSettings, **options: Any) -> AsyncIterator[ChannelPort]:
    from bento.adapters.memory.channel import InMemoryChannel

    async with InMemoryChannel(settings) as channel:
        yield channel


async def redis_channel(settings: RedisChannelSettings, **options: Any) -> AsyncIterator[ChannelPort]:
    """`client=` shares an existing redis.asyncio client (not closed here)."""
    from bento.adapters.redis.channel import RedisChannel

    async with RedisChannel(settings, **options) as channel:
        yield channel


# -- work queues ------------------------------------------------------------------------------
async def redis_work_queue(settings: RedisWorkQueueSettings, **options: Any) -> AsyncIterator[WorkQueue]:
    from bento.adapters.redis.work_queue import RedisWorkQueue

    async with RedisWorkQueue(settings, **options) as queue:
        yield queue


async def rabbitmq_work_queue(settings: RabbitMQSettings, **options: Any) -> AsyncIterator[WorkQueue]:
    from bento.adapters.rabbitmq import RabbitMQWorkQueue

    queue = RabbitMQWorkQueue(settings, **options)
    await queue.start()
    try:
        yield queue
    finally:
        await queue.close()


# -- caches -----------------------------------------------------------------------------------
async def memory_cache(settings: InMemoryCacheSettings, **options: Any) -> AsyncIterator[Cache]:
    from bento.adapters.memory.cache import InMemoryCache

    async with InMemoryCache(settings) as cache:
        yield cache


async def redis_cache(settings: RedisCacheSettings, **options: Any) -> AsyncIterator[Cache]:
    """`client=` shares an existing redis.asyncio client (not closed here)."""
    from bento.adapters.redis.cache import RedisCache

    async with RedisCache(settings, **options) as cache:
        yield cache
