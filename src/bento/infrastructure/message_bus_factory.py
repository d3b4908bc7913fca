"""MessageBusFactory: build a MessageBus by backend name, for scripts and small services.

`MessageBusFactory.create("pulsar", service_url="pulsar://broker:6650")` builds a
PulsarMessageBus (not started: use `async with` or `await bus.start()`). Keyword
options become the backend's settings object (`PulsarSettings(**options)`), or
override fields of a `settings` object given explicitly. Names, aliases and settings
models come from the message-bus catalogue (`infrastructure.backends`); an adapter is
imported only when asked for, so a missing client library is a MissingExtraError for
that backend alone. The DI container is the main way to build buses; this factory keeps
the shape of Bento's original integration plan (a comment in seeds/002 cites it).
"""

from __future__ import annotations

import enum
from typing import Any, cast

from pydantic import ValidationError

from bento.adapters.shared.settings_base import MessageBusSettingsBase
from bento.application.errors import ConfigurationError
from bento.application.ports.message_bus import MessageBus
from bento.application.serialization import JsonCodec
from bento.infrastructure.backends import MESSAGE_BUSES

#: Backend names, as used in settings (`EVENT__BACKEND=pulsar`), derived from the catalogue:
#: one member per row (aliases are members with the same value), and IN_PROCESS, the original
#: plan's spelling of the default.
MessageBusType = enum.StrEnum(  # type: ignore[misc]
    "MessageBusType",
    [(name.upper(), row.name) for row in MESSAGE_BUSES for name in (row.name, *row.aliases)]
    + [("IN_PROCESS", MESSAGE_BUSES.default)],
)


class MessageBusFactory:
    """Creates MessageBus adapters by backend name (see the module docstring)."""

    @classmethod
    def backends(cls) -> list[str]:
        """Every name `create` accepts, aliases included."""
        return sorted(name for row in MESSAGE_BUSES for name in (row.name, *row.aliases))

    @classmethod
    def create(
        cls,
        bus_type: str | MessageBusType = MESSAGE_BUSES.default,
        settings: MessageBusSettingsBase | None = None,
        *,
        codec: JsonCodec | None = None,
        **options: Any,
    ) -> MessageBus:
        row = MESSAGE_BUSES.get(str(bus_type))
        bus_class = row.adapter_class()  # a missing client raises MissingExtraError here
        settings_class = row.settings
        if settings is not None and not isinstance(settings, settings_class):
            raise ConfigurationError(
                [f"backend {row.name!r} needs {settings_class.__name__}, got {type(settings).__name__}"]
            )
        try:
            if settings is None:
                settings = cast(MessageBusSettingsBase, settings_class(**options))
            elif options:
                settings = cast(
                    MessageBusSettingsBase, settings_class.model_validate({**settings.model_dump(), **options})
                )
        except ValidationError as exc:
            problems = [f"{row.name}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
            raise ConfigurationError(problems) from exc
        return cast(MessageBus, bus_class(settings, codec=codec))
