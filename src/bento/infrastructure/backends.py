"""THE catalogue: every backend of every port, one row each.

A row names the backend, its settings model (a pydantic model whose `backend` field is a
one-value Literal of that name), its builder (an async generator in `builders`), the pip extra
its client comes from, the URL schemes that imply it and its aliases. Everything that chooses
a backend is derived from these tables: the settings unions and alias normalisation
(`infrastructure.settings`), the container's selectors (`infrastructure.container`),
MessageBusFactory, and the managers. Nothing else holds a list of backend names, and
`tests/unit/test_catalogue.py` checks that every row has a settings member, a builder, an
extra hint and a contract run.

Adding a backend (say Kafka) is its package under `bento/adapters/`, one row here, one
settings model, and its contract run (see docs/adapters.md). Importing this module imports
settings models only: builders import their adapter when called.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Union

from dependency_injector import providers
from pydantic import Field

from bento.adapters.clickhouse.settings import (
    ClickHouseCheckpointStoreSettings,
    ClickHouseEventStoreSettings,
    ClickHouseInboxSettings,
    ClickHouseReadModelSettings,
    ClickHouseSingleWriterSettings,
    ClickHouseSnapshotStoreSettings,
)
from bento.adapters.kafka.settings import KafkaSettings
from bento.adapters.memory.settings import (
    InMemoryCacheSettings,
    InMemoryChannelSettings,
    InProcessSettings,
    InProcessStreamLockSettings,
    MemoryCheckpointStoreSettings,
    MemoryEventStoreSettings,
    MemoryInboxSettings,
    MemoryReadModelSettings,
    MemorySnapshotStoreSettings,
)
from bento.adapters.nats.settings import NatsSettings
from bento.adapters.pulsar.settings import PulsarSettings
from bento.adapters.rabbitmq.settings import RabbitMQSettings
from bento.adapters.redis.settings import (
    RedisCacheSettings,
    RedisChannelSettings,
    RedisSettings,
    RedisStoreSettings,
    RedisStreamLockSettings,
    RedisWorkQueueSettings,
)
from bento.adapters.shared.settings_base import BackendSettings
from bento.application.errors import ConfigurationError
from bento.infrastructure import builders

BACKEND_FIELD = "backend"


@dataclass(frozen=True, slots=True)
class Backend:
    """One way to implement a port. `needs` names what the builder takes from the container
    besides its settings (`codec`, `engine`, `lock`), passed by keyword. `adapter` is the
    adapter class as "package:Class", for code that hands out an unopened adapter
    (MessageBusFactory); it is imported only when asked for."""

    name: str
    settings: type[BackendSettings]
    builder: Callable[..., Any]
    extra: str | None = None
    schemes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    adapter: str | None = None

    def adapter_class(self) -> type[Any]:
        """The adapter class (MissingExtraError when its client library is not installed)."""
        if self.adapter is None:
            raise ConfigurationError([f"backend {self.name!r} names no adapter class"])
        module, _, name = self.adapter.partition(":")
        found: type[Any] = getattr(importlib.import_module(module), name)
        return found


@dataclass(frozen=True)
class Catalogue:
    """The backends of one port, in the order they are documented; `contract` is the port's
    suite in `bento.testing.contracts`, which every row's adapter runs. `key_field` is the
    settings field naming the backend (`backend`; the cache section keeps seed 000's
    `cache_type`)."""

    port: str
    rows: Sequence[Backend]
    default: str
    contract: str
    key_field: str = BACKEND_FIELD
    _index: dict[str, Backend] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, Backend] = {}
        for row in self.rows:
            for name in (row.name, *row.aliases):
                if name in index:
                    raise ValueError(f"{self.port}: {name!r} names two backends")
                index[name] = row
        object.__setattr__(self, "_index", index)
        if self.default not in index:
            raise ValueError(f"{self.port}: default {self.default!r} is not a row")

    def __iter__(self) -> Iterator[Backend]:
        return iter(self.rows)

    @property
    def names(self) -> list[str]:
        return [row.name for row in self.rows]

    def canonical(self, name: str) -> str:
        """The row's name for `name` or one of its aliases (any case); unknown names are
        returned as given, for the settings union to report with the choices."""
        row = self._index.get(name.lower())
        return row.name if row is not None else name

    def get(self, name: str) -> Backend:
        row = self._index.get(name.lower())
        if row is None:
            raise ConfigurationError([f"unknown {self.port} type {name!r}; choose one of: {', '.join(self.names)}"])
        return row

    def by_scheme(self, url: str) -> str | None:
        """The backend a URL's scheme implies (`amqps://…` → rabbitmq), if any."""
        scheme, sep, _ = url.partition("://")
        if not sep:
            return None
        for row in self.rows:
            if scheme.lower() in row.schemes:
                return row.name
        return None

    def infer(self, instance: Mapping[str, Any]) -> str:
        """The backend of a settings mapping: its own `backend` (aliases resolved), else the one
        its URL implies, else the default."""
        given = instance.get(self.key_field)
        if isinstance(given, str):
            return self.canonical(given)
        for key in ("url", "service_url", "servers"):
            value = instance.get(key)
            urls = value if isinstance(value, list) else [value]
            for url in urls:
                if isinstance(url, str) and (found := self.by_scheme(url)):
                    return found
        return self.default

    def normalise(self, instance: Any) -> Any:
        """`instance` with its backend spelled as the row's name (done once, in the settings
        validator, so nothing downstream sees an alias)."""
        if not isinstance(instance, Mapping):
            return instance
        return {**instance, self.key_field: self.infer(instance)}

    def settings_union(self) -> Any:
        """The discriminated union of the rows' settings models, keyed by `backend`."""
        members = tuple(row.settings for row in self.rows)
        union = members[0] if len(members) == 1 else Union[members]  # noqa: UP007 - built at runtime
        return Annotated[union, Field(discriminator=BACKEND_FIELD)]

    def open(self, settings: BackendSettings, **arguments: Any) -> AbstractAsyncContextManager[Any]:
        """Open the backend `settings` describe outside the container (named instances, the
        managers, MessageBusFactory): its builder as an async context manager. `arguments` are
        what the row needs (`codec=…`) and any the builder accepts (`client=…`)."""
        row = self.get(settings.backend)
        if not isinstance(settings, row.settings):
            raise ConfigurationError(
                [f"{self.port} backend {row.name!r} needs {row.settings.__name__}, got {type(settings).__name__}"]
            )
        return asynccontextmanager(row.builder)(settings, **arguments)

    def resource(self, settings: Any) -> providers.Resource[Any]:
        """One Resource that opens whichever backend `settings` names (rows needing nothing
        from the container only). Unlike a Selector, a provider that depends on it depends on
        the Resource itself, so `shutdown_resources` closes the dependant first: the event
        store before its stream lock, whose release needs a live connection."""
        return providers.Resource(open_selected, self, settings)

    def selector(self, key: Any, settings: Any, **needs: Any) -> providers.Selector:
        """A Selector on `key` (a provider of the backend name) whose branches are Resources
        of each row's builder, given `settings` and the providers its row needs."""
        branches = {
            row.name: providers.Resource(row.builder, settings, **{need: needs[need] for need in row.needs})
            for row in self.rows
        }
        return providers.Selector(key, **branches)


async def open_selected(catalogue: Catalogue, settings: BackendSettings) -> AsyncIterator[Any]:
    """The builder of `Catalogue.resource`: opens the row `settings` name, closes it after."""
    async with catalogue.open(settings) as opened:
        yield opened


def bus(
    name: str,
    settings: type[BackendSettings],
    adapter: str,
    extra: str | None = None,
    schemes: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
) -> Backend:
    """A message-bus row: every bus is built the same way from its adapter class."""
    return Backend(name, settings, builders.message_bus(adapter), extra, schemes, aliases, ("codec",), adapter)


MESSAGE_BUSES = Catalogue(
    "message bus",
    [
        bus("inprocess", InProcessSettings, "bento.adapters.memory:InProcessMessageBus", aliases=("memory",)),
        bus("rabbitmq", RabbitMQSettings, "bento.adapters.rabbitmq:RabbitMQMessageBus", "rabbitmq", ("amqp", "amqps")),
        bus("pulsar", PulsarSettings, "bento.adapters.pulsar:PulsarMessageBus", "pulsar", ("pulsar", "pulsar+ssl")),
        bus("redis", RedisSettings, "bento.adapters.redis:RedisMessageBus", "redis", ("redis", "rediss")),
        bus("nats", NatsSettings, "bento.adapters.nats:NatsMessageBus", "nats", ("nats", "tls")),
        bus("kafka", KafkaSettings, "bento.adapters.kafka:KafkaMessageBus", "kafka", ("kafka", "kafka+ssl")),
    ],
    default="inprocess",
    contract="MessageBusContract",
)

#: Remote CommandBus/QueryBus transports (`COMMAND__BACKEND`): request/reply is built on the
#: MessageBus port (`bento.application.remote`), so every message-bus row is a command-bus row
#: too (a new transport, Kafka say, carries commands with no code of its own). `inprocess`
#: keeps the plain in-process buses.
COMMAND_BUSES = Catalogue("command bus", MESSAGE_BUSES.rows, default="inprocess", contract="CommandBusContract")

EVENT_STORES = Catalogue(
    "event store",
    [
        Backend(
            "memory",
            MemoryEventStoreSettings,
            builders.memory_event_store,
            needs=("codec",),
            adapter="bento.adapters.memory.event_store:InMemoryEventStore",
        ),
        Backend(
            "clickhouse",
            ClickHouseEventStoreSettings,
            builders.clickhouse_event_store,
            "clickhouse",
            needs=("codec", "engine", "lock"),
            adapter="bento.adapters.clickhouse.event_store:ClickHouseEventStore",
        ),
    ],
    default="memory",
    contract="EventStoreContract",
)

STREAM_LOCKS = Catalogue(
    "stream lock",
    [
        Backend(
            "inprocess",
            InProcessStreamLockSettings,
            builders.inprocess_stream_lock,
            aliases=("memory",),
            adapter="bento.adapters.memory.stream_lock:InProcessStreamLock",
        ),
        Backend(
            "redis",
            RedisStreamLockSettings,
            builders.redis_stream_lock,
            "redis",
            ("redis", "rediss"),
            adapter="bento.adapters.redis.stream_lock:RedisStreamLock",
        ),
        Backend(
            "single-writer",
            ClickHouseSingleWriterSettings,
            builders.single_writer_lock,
            "clickhouse",
            adapter="bento.adapters.clickhouse.stream_lock:SingleWriterLock",
        ),
    ],
    default="inprocess",
    contract="StreamLockContract",
)

READ_MODELS = Catalogue(
    "read model",
    [
        Backend(
            "memory",
            MemoryReadModelSettings,
            builders.memory_read_models,
            adapter="bento.adapters.memory.read_model:InMemoryReadModel",
        ),
        Backend(
            "clickhouse",
            ClickHouseReadModelSettings,
            builders.clickhouse_read_models,
            "clickhouse",
            needs=("engine",),
            adapter="bento.adapters.clickhouse.read_model:ClickHouseReadModel",
        ),
    ],
    default="memory",
    contract="ReadModelContract",
)

CHECKPOINT_STORES = Catalogue(
    "checkpoint store",
    [
        Backend(
            "memory",
            MemoryCheckpointStoreSettings,
            builders.memory_checkpoints,
            adapter="bento.adapters.memory.checkpoint_store:InMemoryCheckpointStore",
        ),
        Backend(
            "clickhouse",
            ClickHouseCheckpointStoreSettings,
            builders.clickhouse_checkpoints,
            "clickhouse",
            needs=("engine",),
            adapter="bento.adapters.clickhouse.checkpoint_store:ClickHouseCheckpointStore",
        ),
        Backend(
            "redis",
            RedisStoreSettings,
            builders.redis_checkpoints,
            "redis",
            ("redis", "rediss"),
            adapter="bento.adapters.redis.checkpoint_store:RedisCheckpointStore",
        ),
    ],
    default="memory",
    contract="CheckpointStoreContract",
)

SNAPSHOT_STORES = Catalogue(
    "snapshot store",
    [
        Backend(
            "memory",
            MemorySnapshotStoreSettings,
            builders.memory_snapshots,
            adapter="bento.adapters.memory.snapshot_store:InMemorySnapshotStore",
        ),
        Backend(
            "clickhouse",
            ClickHouseSnapshotStoreSettings,
            builders.clickhouse_snapshots,
            "clickhouse",
            needs=("engine",),
            adapter="bento.adapters.clickhouse.snapshot_store:ClickHouseSnapshotStore",
        ),
    ],
    default="memory",
    contract="SnapshotStoreContract",
)

INBOXES = Catalogue(
    "inbox",
    [
        Backend(
            "memory", MemoryInboxSettings, builders.memory_inbox, adapter="bento.adapters.memory.inbox:InMemoryInbox"
        ),
        Backend(
            "redis",
            RedisStoreSettings,
            builders.redis_inbox,
            "redis",
            ("redis", "rediss"),
            adapter="bento.adapters.redis.inbox:RedisInbox",
        ),
        Backend(
            "clickhouse",
            ClickHouseInboxSettings,
            builders.clickhouse_inbox,
            "clickhouse",
            needs=("engine",),
            adapter="bento.adapters.clickhouse.inbox:ClickHouseInbox",
        ),
    ],
    default="memory",
    contract="InboxContract",
)

CHANNELS = Catalogue(
    "channel",
    [
        Backend(
            "memory",
            InMemoryChannelSettings,
            builders.memory_channel,
            aliases=("inprocess",),
            adapter="bento.adapters.memory.channel:InMemoryChannel",
        ),
        Backend(
            "redis",
            RedisChannelSettings,
            builders.redis_channel,
            "redis",
            ("redis", "rediss"),
            adapter="bento.adapters.redis.channel:RedisChannel",
        ),
    ],
    default="memory",
    contract="ChannelContract",
)

WORK_QUEUES = Catalogue(
    "work queue",
    [
        Backend(
            "redis",
            RedisWorkQueueSettings,
            builders.redis_work_queue,
            "redis",
            ("redis", "rediss"),
            adapter="bento.adapters.redis.work_queue:RedisWorkQueue",
        ),
        Backend(
            "rabbitmq",
            RabbitMQSettings,
            builders.rabbitmq_work_queue,
            "rabbitmq",
            ("amqp", "amqps"),
            adapter="bento.adapters.rabbitmq:RabbitMQWorkQueue",
        ),
    ],
    default="redis",
    contract="WorkQueueContract",
)

CACHES = Catalogue(
    "cache",
    [
        Backend(
            "memory",
            InMemoryCacheSettings,
            builders.memory_cache,
            aliases=("inprocess",),
            adapter="bento.adapters.memory.cache:InMemoryCache",
        ),
        Backend(
            "redis",
            RedisCacheSettings,
            builders.redis_cache,
            "redis",
            ("redis", "rediss"),
            adapter="bento.adapters.redis.cache:RedisCache",
        ),
    ],
    default="memory",
    contract="CacheContract",
    key_field="cache_type",
)

#: Every port's catalogue, by the settings section that selects its backend.
CATALOGUES: dict[str, Catalogue] = {
    "event": MESSAGE_BUSES,
    "command": COMMAND_BUSES,
    "event_store": EVENT_STORES,
    "stream_lock": STREAM_LOCKS,
    "read_model": READ_MODELS,
    "checkpoint_store": CHECKPOINT_STORES,
    "snapshot_store": SNAPSHOT_STORES,
    "inbox": INBOXES,
    "channel": CHANNELS,
    "mq": WORK_QUEUES,
    "cache": CACHES,
}
