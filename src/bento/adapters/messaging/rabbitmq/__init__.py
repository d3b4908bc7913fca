"""RabbitMQ MessageBus and work-queue adapters (extra: bento-ddd[rabbitmq]).

Settings import without the client; the adapter class imports it (see `bento.adapters._lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bento.adapters._lazy import lazy_classes
from bento.adapters.messaging.rabbitmq.settings import RabbitMQSettings

if TYPE_CHECKING:
    from bento.adapters.messaging.rabbitmq.message_bus import RabbitMQMessageBus
    from bento.adapters.messaging.rabbitmq.work_queue import RabbitMQWorkQueue

__all__ = ["RabbitMQMessageBus", "RabbitMQSettings", "RabbitMQWorkQueue"]

__getattr__ = lazy_classes(
    __name__,
    adapter="RabbitMQ",
    extra="rabbitmq",
    client="aio_pika",
    classes={
        "RabbitMQMessageBus": ".message_bus",
        "RabbitMQWorkQueue": ".work_queue",
    },
)
