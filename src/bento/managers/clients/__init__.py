"""Client managers: named Redis and RabbitMQ connections held by the container.

Importing this package needs no client library; `initialize()` says which extra is missing."""

from bento.managers.clients.rabbitmq import RabbitMQClient
from bento.managers.clients.redis import RedisClient, RedisCommandError

__all__ = ["RabbitMQClient", "RedisClient", "RedisCommandError"]
