"""BacklogProbe on RabbitMQ: queue depths by passive declare (creates nothing).

A passive declare of a missing queue closes its channel, so each queue gets a channel of its
own. `message_count` is the queue's ready messages: ones delivered to a consumer and not yet
acknowledged, and ones waiting in the shared retry queues, are not in it."""

from __future__ import annotations

import contextlib

from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity

from bento.adapters.rabbitmq import _topology
from bento.adapters.rabbitmq._connection import DRIVER_ERRORS
from bento.adapters.rabbitmq.settings import RabbitMQSettings
from bento.application.credentials import mask_url
from bento.application.errors import BrokerUnavailableError
from bento.application.ports.backlog import Backlog


async def probe(connection: AbstractRobustConnection, settings: RabbitMQSettings, topic: str, group: str) -> Backlog:
    waiting = await _ready(connection, settings, _topology.subscription_queue(settings, topic, group))
    dead = await _ready(connection, settings, _topology.dead_letter_queue(settings, topic, group))
    return Backlog(topic, group, waiting, dead)


async def _ready(connection: AbstractRobustConnection, settings: RabbitMQSettings, name: str) -> int | None:
    try:
        channel = await connection.channel(publisher_confirms=False)
    except DRIVER_ERRORS as exc:
        raise BrokerUnavailableError("RabbitMQ", _where(settings), f"opening a channel failed: {exc}") from exc
    try:
        queue = await channel.declare_queue(name, passive=True, robust=False)
        count = queue.declaration_result.message_count
        return int(count) if count is not None else None
    except ChannelNotFoundEntity:
        return None
    except DRIVER_ERRORS as exc:
        raise BrokerUnavailableError("RabbitMQ", _where(settings), f"declaring {name!r} failed: {exc}") from exc
    finally:
        with contextlib.suppress(*DRIVER_ERRORS):  # the broker closed it after a missing queue
            await channel.close()


def _where(settings: RabbitMQSettings) -> str:
    return mask_url(settings.url.get_secret_value())
