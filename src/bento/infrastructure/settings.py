"""BentoSettings: environment variables, `.env`, and `config/bento.yaml`.

Precedence: arguments > environment > `.env` > YAML file > defaults, whichever
spelling each source uses (`settings_sources` merges them). Sections are nested
with `__`. Sections that can have several named instances (event, mq, channel,
cache — seed 000) read `{PREFIX}__{INSTANCE}__{FIELD}`; the bare `{PREFIX}__{FIELD}`
and `{PREFIX}__DEFAULT__{FIELD}` are instance `default` (when one source sets a
field both ways, the explicit DEFAULT one wins). An instance whose backend no
source gives is inferred from its URL scheme (amqp → rabbitmq, redis → redis,
pulsar → pulsar, nats → nats), else the in-process default. Invalid settings raise
one ConfigurationError listing every problem, with the environment variable to fix
and the source that set the value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Self, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bento.adapters.clickhouse.settings import ClickHouseSettings
from bento.adapters.memory.settings import (
    InProcessSettings,
    InProcessStreamLockSettings,
    MemoryCheckpointStoreSettings,
    MemoryEventStoreSettings,
    MemoryInboxSettings,
    MemoryReadModelSettings,
    MemorySnapshotStoreSettings,
)
from bento.application.credentials import SecretUrl, mask_credentials
from bento.application.errors import ConfigurationError
from bento.infrastructure import backends
from bento.infrastructure.settings_sources import (
    DEFAULT_INSTANCE,
    Origin,
    SettingPath,
    layered_source,
    origin_of,
)

if TYPE_CHECKING:
    from bento.adapters.shared.settings_base import BackendSettings, MessageBusSettingsBase

#: Sections holding named instances (`{PREFIX}__{INSTANCE}__{FIELD}`).
NAMED_SECTIONS = ("event", "command", "channel", "mq", "cache")

if TYPE_CHECKING:
    # What code may rely on for any member: its `backend`, the catalogue row's name.
    EventBusSettings: TypeAlias = MessageBusSettingsBase
    EventStoreSettings: TypeAlias = BackendSettings
    StreamLockSettings: TypeAlias = BackendSettings
    ReadModelSettings: TypeAlias = BackendSettings
    CheckpointStoreSettings: TypeAlias = BackendSettings
    SnapshotStoreSettings: TypeAlias = BackendSettings
    InboxSettings: TypeAlias = BackendSettings
else:
    # Each port's settings: the discriminated union of its catalogue rows' settings models.
    EventBusSettings = backends.MESSAGE_BUSES.settings_union()
    EventStoreSettings = backends.EVENT_STORES.settings_union()
    StreamLockSettings = backends.STREAM_LOCKS.settings_union()
    ReadModelSettings = backends.READ_MODELS.settings_union()
    CheckpointStoreSettings = backends.CHECKPOINT_STORES.settings_union()
    SnapshotStoreSettings = backends.SNAPSHOT_STORES.settings_union()
    InboxSettings = backends.INBOXES.settings_union()

#: Stores whose backend, when not set, follows another port's: checkpoints live beside the
#: read models they describe, snapshots beside the events they summarise.
FOLLOWS = {"checkpoint_store": "read_model", "snapshot_store": "event_store"}


def split_instances(raw: Any, default_backend: str | None, backend_field: str = "backend") -> Any:
    """Turn `{field: v, name: {field: v}}` (how env vars arrive) into `{name: {...}}`."""
    if not isinstance(raw, dict):
        return raw
    bare = {k.lower(): v for k, v in raw.items() if not isinstance(v, dict)}
    named = {k.lower(): dict(v) for k, v in raw.items() if isinstance(v, dict)}
    if bare or DEFAULT_INSTANCE not in named:
        named[DEFAULT_INSTANCE] = {**bare, **named.get(DEFAULT_INSTANCE, {})}
    if default_backend is not None:
        for instance in named.values():
            instance.setdefault(backend_field, default_backend)
    return named


def _known_backend(catalogue: backends.Catalogue, value: str) -> str:
    name = catalogue.canonical(value)
    if name not in catalogue.names:
        raise ValueError(f"{value!r} is not a {catalogue.port} backend; choose one of: {', '.join(catalogue.names)}")
    return name


class ChannelSettings(BaseModel):
    """A named streaming channel (`CHANNEL__{NAME}__…`), opened by ChannelManager."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    backend: str = Field("memory", description="a channel backend of the catalogue")
    url: SecretUrl = SecretUrl("redis://127.0.0.1:6379/0")
    key_prefix: str = "channel:"
    ttl: int = 86400
    max_queue: int = Field(1000, ge=1, description="messages buffered per subscriber")

    @field_validator("backend")
    @classmethod
    def _known(cls, value: str) -> str:
        return _known_backend(backends.CHANNELS, value)


class MQSettings(BaseModel):
    """A named work queue (`MQ__{NAME}__…`), opened by MQManager."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    backend: str = Field("redis", description="a work queue backend of the catalogue")
    url: SecretUrl = SecretUrl("redis://127.0.0.1:6379/0")
    max_connections: int = 10
    prefetch_count: int = 10

    @field_validator("backend")
    @classmethod
    def _known(cls, value: str) -> str:
        return _known_backend(backends.WORK_QUEUES, value)


class CacheSettings(BaseModel):
    """A named cache (`CACHE__{NAME}__…`), opened by CacheManager; RedisClient uses its `url`
    and `max_connections`. `cache_type` is a cache backend of the catalogue (inferred from
    the URL scheme when not given)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    cache_type: str = Field("memory", description="a cache backend of the catalogue")
    url: SecretUrl = SecretUrl("redis://127.0.0.1:6379/0")
    max_connections: int = 10
    key_prefix: str = Field("cache:", description="redis: keys are {key_prefix}{instance}:…")
    max_size: int = Field(10_000, ge=1, description="entries kept; beyond it the least recently used is evicted")
    default_ttl: float | None = Field(None, gt=0, description="seconds an entry lives when set without a ttl")
    events: str | None = Field(
        "default", description="the EVENT__ instance whose events `@cached(invalidate_on=…)` listens to (none: off)"
    )

    @field_validator("cache_type")
    @classmethod
    def _known(cls, value: str) -> str:
        return _known_backend(backends.CACHES, value)

    @field_validator("events")
    @classmethod
    def _off(cls, value: str | None) -> str | None:
        return None if value is None or value.strip().lower() in {"", "none", "off"} else value.lower()


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: str = "bento-service"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    grace_period: float = Field(
        30.0, gt=0, description="seconds `bento run` lets in-flight handlers finish after SIGTERM"
    )


class TelemetrySettings(BaseModel):
    """What `bento run` turns on for observability (metrics at `/metrics` need no setting)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    tracing: Literal["off", "console", "otlp"] = Field(
        "off",
        description="`bento run` traces with the OpenTelemetry SDK (bento[otel] plus opentelemetry-sdk): "
        "console prints spans on stdout, otlp exports them with opentelemetry-exporter-otlp "
        "(OTEL_EXPORTER_OTLP_ENDPOINT and the other OTEL_* variables apply)",
    )
    gauge_interval: float = Field(
        15.0,
        ge=0,
        description="seconds between samples of the lag, backlog and dead-letter gauges "
        "(0: only when /metrics is scraped)",
    )


class HealthCheckSettings(BaseModel):
    """Seed 003's health-check topic (`HEALTH__…`): with `enabled`, the container's
    `health_checks` resource publishes a health message to `topic` every `interval` seconds
    on the default bus and is unhealthy when none arrived within `max_age` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    enabled: bool = Field(False, description="run the health-check publisher and subscriber checker")
    topic: str = Field("health_check_topic", min_length=1, description="the topic health messages travel on")
    interval: float = Field(30.0, gt=0, description="seconds between two health messages of the publisher")
    max_age: float = Field(
        90.0, gt=0, description="the subscriber checker is unhealthy when the newest health message is older"
    )
    publish: bool = Field(True, description="this process publishes health messages")
    subscribe: bool = Field(True, description="this process checks that health messages arrive")

    @model_validator(mode="after")
    def _age_above_interval(self) -> Self:
        if self.publish and self.subscribe and self.max_age <= self.interval:
            raise ValueError("max_age must be greater than interval, or every gap between two messages is an outage")
        return self


def _default_event_instances() -> dict[str, EventBusSettings]:
    return {DEFAULT_INSTANCE: InProcessSettings()}


class BentoSettings(BaseSettings):
    """Every setting of a Bento service; see the module docstring for sources."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        env_file=None,  # settings_sources reads `.env` itself, refusing lines that do not parse
        extra="ignore",
        case_sensitive=False,
        frozen=True,
        hide_input_in_errors=True,
    )

    service: ServiceSettings = ServiceSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    health: HealthCheckSettings = HealthCheckSettings()
    event: dict[str, EventBusSettings] = Field(default_factory=lambda: _default_event_instances())
    command: dict[str, EventBusSettings] = Field(default_factory=lambda: _default_event_instances())
    event_store: EventStoreSettings = MemoryEventStoreSettings()
    stream_lock: StreamLockSettings = InProcessStreamLockSettings()
    read_model: ReadModelSettings = MemoryReadModelSettings()
    checkpoint_store: CheckpointStoreSettings = MemoryCheckpointStoreSettings()
    snapshot_store: SnapshotStoreSettings = MemorySnapshotStoreSettings()
    inbox: InboxSettings = MemoryInboxSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    channel: dict[str, ChannelSettings] = Field(default_factory=lambda: {DEFAULT_INSTANCE: ChannelSettings()})
    mq: dict[str, MQSettings] = Field(default_factory=lambda: {DEFAULT_INSTANCE: MQSettings()})
    cache: dict[str, CacheSettings] = Field(default_factory=lambda: {DEFAULT_INSTANCE: CacheSettings()})

    @model_validator(mode="before")
    @classmethod
    def _named_instances(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {str(key).lower(): value for key, value in data.items()}
        for section, follows in FOLLOWS.items():
            leader = data.get(follows)
            if section not in data and isinstance(leader, dict) and isinstance(leader.get("backend"), str):
                backend = backends.CATALOGUES[follows].canonical(leader["backend"])
                if backend in backends.CATALOGUES[section].names:
                    data[section] = {"backend": backend}
        for section, catalogue in backends.CATALOGUES.items():
            if section not in data:
                continue
            if section in NAMED_SECTIONS:
                instances = split_instances(data[section], None, catalogue.key_field)
                if isinstance(instances, dict):
                    data[section] = {name: catalogue.normalise(value) for name, value in instances.items()}
            else:
                data[section] = catalogue.normalise(data[section])
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (layered_source(settings_cls, init_settings, env_settings),)

    # -- named instances ------------------------------------------------------------------
    def get_instances(self, section: str) -> dict[str, Any]:
        """All instances of a named section (`event`, `command`, `channel`, `mq`, `cache`)."""
        value = getattr(self, section, None)
        if not isinstance(value, dict):
            raise KeyError(f"{section!r} has no named instances (choose from event, channel, mq, cache)")
        return dict(value)

    def get_event_instances(self) -> dict[str, EventBusSettings]:
        return dict(self.event)

    def event_instance(self, name: str = DEFAULT_INSTANCE) -> EventBusSettings:
        try:
            return self.event[name.lower()]
        except KeyError:
            raise ConfigurationError(
                [f"no event bus instance {name!r}; set EVENT__{name.upper()}__BACKEND (have: {sorted(self.event)})"]
            ) from None

    @property
    def default_event(self) -> EventBusSettings:
        return self.event_instance(DEFAULT_INSTANCE)

    @property
    def event_backend(self) -> str:
        """The default event bus's backend (aliases were resolved when the settings were read)."""
        return self.default_event.backend

    @property
    def default_command(self) -> EventBusSettings:
        """The transport of the remote CommandBus/QueryBus (`COMMAND__…`; in-process by default)."""
        try:
            return self.command[DEFAULT_INSTANCE]
        except KeyError:
            raise ConfigurationError(
                [f"no command bus instance; set COMMAND__BACKEND (have: {sorted(self.command)})"]
            ) from None

    def masked(self) -> dict[str, Any]:
        """Effective settings as JSON-able data, secrets shown as '**********'."""
        return self.model_dump(mode="json")


def load_settings(**overrides: Any) -> BentoSettings:
    """Build BentoSettings, turning validation errors into one ConfigurationError."""
    return explain_settings(**overrides)[0]


def explain_settings(**overrides: Any) -> tuple[BentoSettings, dict[SettingPath, Origin]]:
    """`load_settings`, plus which source set each value (`bento config show --sources`)."""
    source = layered_source(
        BentoSettings, InitSettingsSource(BentoSettings, overrides), EnvSettingsSource(BentoSettings)
    )
    data = source()
    try:
        return BentoSettings.model_validate(data), source.origins
    except ValidationError as exc:
        raise ConfigurationError([_describe(err, source.origins) for err in exc.errors()]) from None


_BACKEND_TAGS = {name for catalogue in backends.CATALOGUES.values() for name in catalogue.names}


def _describe(err: Any, origins: dict[SettingPath, Origin]) -> str:
    loc = [str(p) for p in err["loc"]]
    # Discriminated unions add the backend tag to the path; the env var does not have it.
    path = [p for p in loc if p not in _BACKEND_TAGS]
    if err["type"] in {"union_tag_invalid", "union_tag_not_found"}:
        path.append("backend")  # the section's own field chooses the member
    env = "__".join(p.upper() for p in path)
    value = err.get("input")
    secret = any(word in env.lower() for word in ("secret", "password", "url", "token", "servers", "auth", "dsn"))
    # Values are bounded and URL credentials masked even where the name looks harmless.
    shown = "" if isinstance(value, dict) or secret else f" (got {mask_credentials(repr(value)[:200])})"
    origin = origin_of(origins, tuple(path))
    source = "" if origin.kind == "default" or origin.key == env else f" [set by {origin}]"
    return f"{env or '<root>'}: {err['msg']}{shown}{source}"
