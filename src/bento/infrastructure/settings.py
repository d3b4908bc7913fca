"""BentoSettings: environment variables, `.env`, and `config/bento.yaml`.

Precedence: arguments > environment > `.env` > YAML file > defaults. Sections are
nested with `__`. Sections that can have several named instances (event, mq,
channel, cache — seed 000) read `{PREFIX}__{INSTANCE}__{FIELD}`; the bare
`{PREFIX}__{FIELD}` and `{PREFIX}__DEFAULT__{FIELD}` are instance `default` (when
both set a field, the explicit DEFAULT one wins). An instance whose backend is not
given is inferred from its URL scheme (amqp → rabbitmq, redis → redis, pulsar →
pulsar, nats → nats), else the in-process default. Invalid settings raise one
ConfigurationError listing every problem, with the environment variable to fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from bento.adapters.clickhouse.settings import ClickHouseSettings
from bento.adapters.memory.settings import InProcessSettings
from bento.adapters.nats.settings import NatsSettings
from bento.adapters.pulsar.settings import PulsarSettings
from bento.adapters.rabbitmq.settings import RabbitMQSettings
from bento.adapters.redis.settings import RedisSettings
from bento.application.errors import ConfigurationError

DEFAULT_INSTANCE = "default"
CONFIG_FILE_ENV = "BENTO_CONFIG"
DEFAULT_CONFIG_FILE = Path("config/bento.yaml")

EventBusSettings = Annotated[
    InProcessSettings | RabbitMQSettings | PulsarSettings | RedisSettings | NatsSettings,
    Field(discriminator="backend"),
]

_SCHEMES = {"amqp": "rabbitmq", "amqps": "rabbitmq", "redis": "redis", "rediss": "redis",
            "pulsar": "pulsar", "pulsar+ssl": "pulsar", "nats": "nats", "tls": "nats"}


def _scheme_backend(instance: dict[str, Any]) -> str | None:
    for field in ("url", "service_url"):
        value = instance.get(field)
        if isinstance(value, str) and "://" in value:
            return _SCHEMES.get(value.split("://", 1)[0].lower())
    servers = instance.get("servers")
    if isinstance(servers, str) and servers.startswith("nats://"):
        return "nats"
    return None


def split_instances(raw: Any, default_backend: str, backend_field: str = "backend") -> Any:
    """Turn `{field: v, name: {field: v}}` (how env vars arrive) into `{name: {...}}`."""
    if not isinstance(raw, dict):
        return raw
    bare = {k.lower(): v for k, v in raw.items() if not isinstance(v, dict)}
    named = {k.lower(): dict(v) for k, v in raw.items() if isinstance(v, dict)}
    if bare or DEFAULT_INSTANCE not in named:
        named[DEFAULT_INSTANCE] = {**bare, **named.get(DEFAULT_INSTANCE, {})}
    for instance in named.values():
        if backend_field not in instance:
            instance[backend_field] = _scheme_backend(instance) or default_backend
    return named


class EventStoreSettings(BaseModel):
    """`backend: clickhouse` uses the `clickhouse` section (embedded or server)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["memory", "clickhouse"] = "memory"
    table: str = "events"
    group_commit_window_ms: float = Field(2.0, ge=0)
    group_commit_max_events: int = Field(1000, ge=1)
    version_cache_size: int = Field(100_000, ge=1, description="stream versions kept in memory per store")
    lock: Literal["inprocess", "redis"] = "inprocess"
    lock_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")


class ReadModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["memory", "clickhouse"] = "memory"


class ChannelSettings(BaseModel):
    """Streaming channel instance (seed 000 CHANNEL__…)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["memory", "redis"] = "memory"
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    key_prefix: str = "channel:"
    ttl: int = 86400
    max_queue: int = Field(1000, ge=1, description="messages buffered per subscriber")


class MQSettings(BaseModel):
    """Work-queue instance (seed 000 MQ__…)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["redis", "rabbitmq"] = "redis"
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    max_connections: int = 10
    prefetch_count: int = 10


class CacheSettings(BaseModel):
    """Cache / client instance (seed 000 CACHE__…)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cache_type: Literal["memory", "redis"] = "memory"
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    max_connections: int = 10


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "bento-service"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


def _default_event_instances() -> dict[str, EventBusSettings]:
    return {DEFAULT_INSTANCE: InProcessSettings()}


class BentoSettings(BaseSettings):
    """Every setting of a Bento service; see the module docstring for sources."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        frozen=True,
    )

    service: ServiceSettings = ServiceSettings()
    event: dict[str, EventBusSettings] = Field(default_factory=lambda: _default_event_instances())
    event_store: EventStoreSettings = EventStoreSettings()
    read_model: ReadModelSettings = ReadModelSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    channel: dict[str, ChannelSettings] = Field(default_factory=lambda: {DEFAULT_INSTANCE: ChannelSettings()})
    mq: dict[str, MQSettings] = Field(default_factory=lambda: {DEFAULT_INSTANCE: MQSettings()})
    cache: dict[str, CacheSettings] = Field(default_factory=lambda: {DEFAULT_INSTANCE: CacheSettings()})

    @model_validator(mode="before")
    @classmethod
    def _named_instances(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for section, default_backend, field in (
            ("event", "inprocess", "backend"),
            ("channel", "memory", "backend"),
            ("mq", "redis", "backend"),
            ("cache", "memory", "cache_type"),
        ):
            if section in data:
                data[section] = split_instances(data[section], default_backend, field)
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
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        config_file = Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
        if config_file.is_file():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        elif CONFIG_FILE_ENV in os.environ:
            raise ConfigurationError([f"{CONFIG_FILE_ENV}={config_file} does not exist"])
        sources.append(file_secret_settings)
        return tuple(sources)

    # -- named instances ------------------------------------------------------------------
    def get_instances(self, section: str) -> dict[str, Any]:
        """All instances of a named section (`event`, `channel`, `mq`, `cache`)."""
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
        """The default event bus's backend, with seed 000's `memory` spelled `inprocess`."""
        backend = self.default_event.backend
        return "inprocess" if backend == "memory" else backend

    def masked(self) -> dict[str, Any]:
        """Effective settings as JSON-able data, secrets shown as '**********'."""
        return self.model_dump(mode="json")


def load_settings(**overrides: Any) -> BentoSettings:
    """Build BentoSettings, turning validation errors into one ConfigurationError."""
    try:
        return BentoSettings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError([_describe(err) for err in exc.errors()]) from None


def _describe(err: Any) -> str:
    loc = [str(p) for p in err["loc"]]
    # Discriminated unions add the backend tag to the path; the env var does not have it.
    path = [p for p in loc if p not in {"inprocess", "memory", "rabbitmq", "pulsar", "redis", "nats"}]
    env = "__".join(p.upper() for p in path)
    value = err.get("input")
    secret = any(word in env.lower() for word in ("secret", "password", "url", "token"))
    shown = "" if isinstance(value, dict) or secret else f" (got {value!r})"
    return f"{env or '<root>'}: {err['msg']}{shown}"
