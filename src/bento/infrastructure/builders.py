"""Open and close one adapter each. Each imports its adapter only when called, so
`import bento` needs no client library, and only the selected backend is opened.

Every builder is an async generator: the container wraps it in a Resource, and
`await container.shutdown_resources()` closes what was opened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from bento.adapters.memory.settings import InProcessSettings
from bento.application.ports.checkpoint_store import CheckpointStore
from bento.application.ports.event_store import EventStore
from bento.application.ports.message_bus import MessageBus
from bento.application.ports.snapshot_store import SnapshotStore
from bento.application.ports.stream_lock import StreamLock
from bento.application.serialization import JsonCodec

if TYPE_CHECKING:
    from bento.adapters.clickhouse.settings import ClickHouseSettings
    from bento.adapters.nats.settings import NatsSettings
    from bento.adapters.pulsar.settings import PulsarSettings
    from bento.adapters.rabbitmq.settings import RabbitMQSettings
    from bento.adapters.redis.settings import RedisSettings
    from bento.infrastructure.settings import EventBusSettings, EventStoreSettings


# -- message buses ------------------------------------------------------------------------
async def inprocess_bus(settings: InProcessSettings, codec: JsonCodec) -> AsyncIterator[MessageBus]:
    from bento.adapters.memory import InProcessMessageBus

    async with InProcessMessageBus(settings, codec=codec) as bus:
        yield bus


async def rabbitmq_bus(settings: RabbitMQSettings, codec: JsonCodec) -> AsyncIterator[MessageBus]:
    from bento.adapters.rabbitmq import RabbitMQMessageBus  # extra: bento-ddd[rabbitmq]

    async with RabbitMQMessageBus(settings, codec=codec) as bus:
        yield bus


async def pulsar_bus(settings: PulsarSettings, codec: JsonCodec) -> AsyncIterator[MessageBus]:
    from bento.adapters.pulsar import PulsarMessageBus  # extra: bento-ddd[pulsar]

    async with PulsarMessageBus(settings, codec=codec) as bus:
        yield bus


async def redis_bus(settings: RedisSettings, codec: JsonCodec) -> AsyncIterator[MessageBus]:
    from bento.adapters.redis import RedisMessageBus  # extra: bento-ddd[redis]

    async with RedisMessageBus(settings, codec=codec) as bus:
        yield bus


async def nats_bus(settings: NatsSettings, codec: JsonCodec) -> AsyncIterator[MessageBus]:
    from bento.adapters.nats import NatsMessageBus  # extra: bento-ddd[nats]

    async with NatsMessageBus(settings, codec=codec) as bus:
        yield bus


_BUS_BUILDERS: dict[str, Any] = {
    "inprocess": inprocess_bus,
    "memory": inprocess_bus,
    "rabbitmq": rabbitmq_bus,
    "pulsar": pulsar_bus,
    "redis": redis_bus,
    "nats": nats_bus,
}


def open_message_bus(
    settings: EventBusSettings, codec: JsonCodec | None = None
) -> AbstractAsyncContextManager[MessageBus]:
    """Open the bus one settings instance describes (used for named instances and the CLI)."""
    builder = _BUS_BUILDERS[settings.backend]
    return asynccontextmanager(builder)(settings, codec or JsonCodec())


class NamedMessageBuses:
    """Named event-bus instances (`EVENT__{NAME}__…`), each opened on first use and
    closed together. The container holds one; seed-style managers look buses up here."""

    def __init__(self, instances: dict[str, EventBusSettings], codec: JsonCodec) -> None:
        from contextlib import AsyncExitStack

        self._instances, self._codec = instances, codec
        self._open: dict[str, MessageBus] = {}
        self._stack = AsyncExitStack()

    @property
    def names(self) -> list[str]:
        return sorted(self._instances)

    async def get(self, name: str = "default") -> MessageBus:
        from bento.application.errors import ConfigurationError

        key = name.lower()
        if key not in self._open:
            if key not in self._instances:
                raise ConfigurationError(
                    [f"no event bus instance {name!r}; set EVENT__{name.upper()}__BACKEND (have: {self.names})"]
                )
            self._open[key] = await self._stack.enter_async_context(open_message_bus(self._instances[key], self._codec))
        return self._open[key]

    def opened(self) -> dict[str, MessageBus]:
        return dict(self._open)

    async def close(self) -> None:
        await self._stack.aclose()
        self._open.clear()


async def named_message_buses(
    instances: dict[str, EventBusSettings], codec: JsonCodec
) -> AsyncIterator[NamedMessageBuses]:
    buses = NamedMessageBuses(instances, codec)
    try:
        yield buses
    finally:
        await buses.close()


# -- event store, locks, checkpoints --------------------------------------------------------
async def memory_event_store(codec: JsonCodec) -> AsyncIterator[EventStore]:
    from bento.adapters.memory.event_store import InMemoryEventStore

    store = InMemoryEventStore(codec=codec)
    yield store
    await store.close()


async def clickhouse_engine(settings: ClickHouseSettings) -> AsyncIterator[Any]:
    from bento.adapters.clickhouse.engine import open_engine  # extra: bento-ddd[clickhouse] or [embedded]

    async with open_engine(settings) as engine:
        yield engine


async def redis_stream_lock(settings: EventStoreSettings) -> AsyncIterator[StreamLock]:
    from bento.adapters.redis.stream_lock import RedisStreamLock  # extra: bento-ddd[redis]

    lock = RedisStreamLock(settings.lock_url.get_secret_value())
    try:
        yield lock
    finally:
        await lock.close()


async def clickhouse_event_store(
    engine: Any, settings: EventStoreSettings, codec: JsonCodec, lock: StreamLock
) -> AsyncIterator[EventStore]:
    from bento.adapters.clickhouse.event_store import ClickHouseEventStore

    store = ClickHouseEventStore(
        engine, lock=lock, codec=codec, table=settings.table,
        group_commit_window_ms=settings.group_commit_window_ms,
        group_commit_max_events=settings.group_commit_max_events,
        version_cache_size=settings.version_cache_size,
    )
    async with store:
        yield store


async def clickhouse_checkpoints(engine: Any) -> AsyncIterator[CheckpointStore]:
    from bento.adapters.clickhouse.checkpoint_store import ClickHouseCheckpointStore

    store = ClickHouseCheckpointStore(engine)
    await store.start()
    yield store


async def memory_checkpoints() -> AsyncIterator[CheckpointStore]:
    from bento.adapters.memory.checkpoint_store import InMemoryCheckpointStore

    yield InMemoryCheckpointStore()


async def inprocess_stream_lock() -> AsyncIterator[StreamLock]:
    from bento.adapters.memory.stream_lock import InProcessStreamLock

    yield InProcessStreamLock()


async def memory_snapshots() -> AsyncIterator[SnapshotStore]:
    from bento.adapters.memory.snapshot_store import InMemorySnapshotStore

    yield InMemorySnapshotStore()


async def clickhouse_snapshots(engine: Any) -> AsyncIterator[SnapshotStore]:
    from bento.adapters.clickhouse.snapshot_store import ClickHouseSnapshotStore

    store = ClickHouseSnapshotStore(engine)
    await store.start()
    yield store
