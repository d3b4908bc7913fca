"""RabbitMQ MessageBus and work-queue adapters (extra: bento-ddd[rabbitmq]).

Settings import without the client; the adapter class imports it (see `bento.adapters.shared.lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bento.adapters.rabbitmq.settings import RabbitMQSettings
from bento.adapters.shared.lazy import lazy_classes

if TYPE_CHECKING:
    from bento.adapters.rabbitmq.message_bus import RabbitMQMessageBus
    from bento.adapters.rabbitmq.work_queue import RabbitMQWorkQueue

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
