"""RabbitMQ MessageBus adapter (extra: bento-ddd[rabbitmq]).

Settings import without the client; the adapter class needs it, and a missing
client is a MissingExtraError naming the extra."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bento.adapters.messaging.rabbitmq.settings import RabbitMQSettings

if TYPE_CHECKING:
    from bento.adapters.messaging.rabbitmq.message_bus import RabbitMQMessageBus

__all__ = ["RabbitMQMessageBus", "RabbitMQSettings"]


def __getattr__(name: str) -> Any:
    if name == "RabbitMQMessageBus":
        try:
            import aio_pika  # noqa: F401
        except ImportError as exc:
            from bento.application.errors import MissingExtraError

            raise MissingExtraError("RabbitMQ", "rabbitmq", "aio_pika") from exc
        from bento.adapters.messaging.rabbitmq.message_bus import RabbitMQMessageBus

        return RabbitMQMessageBus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
