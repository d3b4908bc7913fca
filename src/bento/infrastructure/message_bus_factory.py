"""Seed 002's MessageBusFactory: build a MessageBus by backend name.

`MessageBusFactory.create("pulsar", service_url="pulsar://broker:6650")` builds a
PulsarMessageBus (not started: use `async with` or `await bus.start()`). Keyword
options become the backend's settings object (`PulsarSettings(**options)`), or
override fields of a `settings` object given explicitly. Adapters are imported by
name only when asked for, so a missing client library is a MissingExtraError for
that backend alone. The DI container (infrastructure) is the main way to build
buses; this factory keeps the seed's shape for scripts and small services.
"""

from __future__ import annotations

import enum
import importlib
from typing import Any, cast

from pydantic import ValidationError

from bento.adapters.shared.settings_base import MessageBusSettingsBase
from bento.application.errors import ConfigurationError
from bento.application.ports.message_bus import MessageBus
from bento.application.serialization import JsonCodec


class MessageBusType(enum.StrEnum):
    """Backend names, as used in settings (`EVENT__BACKEND=pulsar`)."""

    IN_PROCESS = "inprocess"
    PULSAR = "pulsar"
    RABBITMQ = "rabbitmq"
    REDIS = "redis"
    NATS = "nats"


#: backend name → (package, bus class, settings class); imported lazily by name.
_BACKENDS: dict[str, tuple[str, str, str]] = {
    "inprocess": ("bento.adapters.memory", "InProcessMessageBus", "InProcessSettings"),
    "memory": ("bento.adapters.memory", "InProcessMessageBus", "InProcessSettings"),
    "pulsar": ("bento.adapters.pulsar", "PulsarMessageBus", "PulsarSettings"),
    "rabbitmq": ("bento.adapters.rabbitmq", "RabbitMQMessageBus", "RabbitMQSettings"),
    "redis": ("bento.adapters.redis", "RedisMessageBus", "RedisSettings"),
    "nats": ("bento.adapters.nats", "NatsMessageBus", "NatsSettings"),
}


class MessageBusFactory:
    """Creates MessageBus adapters by backend name (see the module docstring)."""

    @classmethod
    def backends(cls) -> list[str]:
        return sorted(_BACKENDS)

    @classmethod
    def create(
        cls,
        bus_type: str | MessageBusType = MessageBusType.IN_PROCESS,
        settings: MessageBusSettingsBase | None = None,
        *,
        codec: JsonCodec | None = None,
        **options: Any,
    ) -> MessageBus:
        name = str(bus_type.value if isinstance(bus_type, MessageBusType) else bus_type).lower()
        if name not in _BACKENDS:
            raise ConfigurationError(
                [f"unknown message bus type {bus_type!r}; choose one of: {', '.join(cls.backends())}"]
            )
        package, bus_name, settings_name = _BACKENDS[name]
        module = importlib.import_module(package)
        settings_class = getattr(module, settings_name)
        bus_class = getattr(module, bus_name)  # a missing client raises MissingExtraError here
        if settings is not None and not isinstance(settings, settings_class):
            raise ConfigurationError(
                [f"backend {name!r} needs {settings_name}, got {type(settings).__name__}"]
            )
        try:
            if settings is None:
                settings = settings_class(**options)
            elif options:
                settings = settings_class.model_validate({**settings.model_dump(), **options})
        except ValidationError as exc:
            problems = [f"{name}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
            raise ConfigurationError(problems) from exc
        return cast(MessageBus, bus_class(settings, codec=codec))
