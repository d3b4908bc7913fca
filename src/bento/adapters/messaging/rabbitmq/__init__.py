"""RabbitMQ MessageBus and work-queue adapters (extra: bento-ddd[rabbitmq]).

Settings import without the client; the adapter class needs it, and a missing
client is a MissingExtraError naming the extra."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bento.adapters.messaging.rabbitmq.settings import RabbitMQSettings

if TYPE_CHECKING:
    from bento.adapters.messaging.rabbitmq.message_bus import RabbitMQMessageBus
    from bento.adapters.messaging.rabbitmq.work_queue import RabbitMQWorkQueue

__all__ = ["RabbitMQMessageBus", "RabbitMQSettings", "RabbitMQWorkQueue"]
_LAZY = {
    "RabbitMQMessageBus": "bento.adapters.messaging.rabbitmq.message_bus",
    "RabbitMQWorkQueue": "bento.adapters.messaging.rabbitmq.work_queue",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            import aio_pika  # noqa: F401
        except ImportError as exc:
            from bento.application.errors import MissingExtraError

            raise MissingExtraError("RabbitMQ", "rabbitmq", "aio_pika") from exc
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
