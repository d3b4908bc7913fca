"""Nats MessageBus adapter (extra: bento-ddd[nats]).

Settings import without the client; the adapter class needs it, and a missing
client is a MissingExtraError naming the extra."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bento.adapters.messaging.nats.settings import NatsSettings

if TYPE_CHECKING:
    from bento.adapters.messaging.nats.message_bus import NatsMessageBus

__all__ = ["NatsMessageBus", "NatsSettings"]


def __getattr__(name: str) -> Any:
    if name == "NatsMessageBus":
        try:
            import nats  # noqa: F401
        except ImportError as exc:
            from bento.application.errors import MissingExtraError

            raise MissingExtraError("Nats", "nats", "nats") from exc
        from bento.adapters.messaging.nats.message_bus import NatsMessageBus

        return NatsMessageBus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
