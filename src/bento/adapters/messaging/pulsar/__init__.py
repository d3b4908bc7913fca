"""Pulsar MessageBus adapter (extra: bento-ddd[pulsar]).

Settings import without the client; the adapter class needs it, and a missing
client is a MissingExtraError naming the extra."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bento.adapters.messaging.pulsar.settings import PulsarSettings

if TYPE_CHECKING:
    from bento.adapters.messaging.pulsar.message_bus import PulsarMessageBus

__all__ = ["PulsarMessageBus", "PulsarSettings"]


def __getattr__(name: str) -> Any:
    if name == "PulsarMessageBus":
        try:
            import pulsar  # noqa: F401
        except ImportError as exc:
            from bento.application.errors import MissingExtraError

            raise MissingExtraError("Pulsar", "pulsar", "pulsar") from exc
        from bento.adapters.messaging.pulsar.message_bus import PulsarMessageBus

        return PulsarMessageBus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
