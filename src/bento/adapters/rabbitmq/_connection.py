"""Opening the robust aio-pika connection, and which driver errors mean "connection lost"."""

from __future__ import annotations

import asyncio
import logging
import ssl
from urllib.parse import unquote, urlsplit

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustConnection

from bento.adapters.rabbitmq.settings import RabbitMQSettings
from bento.adapters.shared.connecting import quiet_driver_logs
from bento.adapters.shared.metrics import BusCounters
from bento.application.credentials import mask_url
from bento.application.errors import BrokerRefusedError, BrokerUnavailableError

logger = logging.getLogger(__name__)

#: Failures after which a retry on a restored channel may succeed (the broker or socket went away).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.ConnectionClosed,
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.AMQPConnectionError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)
#: Everything the driver raises; translated at the port boundary.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    *TRANSIENT_ERRORS,
    aiormq.exceptions.AMQPError,
    RuntimeError,
)


def ssl_context(settings: RabbitMQSettings) -> ssl.SSLContext | None:
    if not settings.url.get_secret_value().startswith("amqps://"):
        return None
    context = ssl.create_default_context(cafile=settings.ssl_ca_file)
    if settings.ssl_cert_file:
        context.load_cert_chain(settings.ssl_cert_file, settings.ssl_key_file)
    if not settings.ssl_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def open_connection(settings: RabbitMQSettings, metrics: BusCounters, role: str) -> AbstractRobustConnection:
    """A robust connection: aio-pika re-opens it and restores channels, queues and consumers."""
    url = settings.url.get_secret_value()
    try:
        with quiet_driver_logs("aiormq", "aio_pika"):
            connection = await aio_pika.connect_robust(
                url,
                ssl_context=ssl_context(settings),
                timeout=settings.connect_timeout,
                client_properties={"connection_name": f"{settings.connection_name}:{role}"},
                heartbeat=settings.heartbeat,
                reconnect_interval=settings.reconnect_interval,
            )
    except DRIVER_ERRORS as exc:
        metrics.connection_errors += 1
        raise connect_error(url, exc) from exc

    def on_close(_sender: object, exc: BaseException | None = None) -> None:
        if exc is not None and not isinstance(exc, asyncio.CancelledError):
            metrics.connection_errors += 1
            logger.warning("RabbitMQ connection %s lost: %s; reconnecting", role, exc)

    connection.close_callbacks.add(on_close)
    return connection


def connect_error(url: str, exc: BaseException) -> BrokerUnavailableError:
    """The typed error for a failed connect: a refused login and a virtual host the broker
    will not open are named as such (retrying cannot fix either), anything else is unreachable."""
    where = mask_url(url)
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
        return BrokerRefusedError(
            "RabbitMQ", where, "authentication failed: check the user name and password in the URL (ACCESS_REFUSED)"
        )
    if isinstance(exc, aiormq.exceptions.InvalidFrameError) and "Connection.Close" in str(exc):
        # RabbitMQ answers Connection.Open on an unknown (or forbidden) vhost with
        # Connection.Close (530 NOT_ALLOWED), which aiormq reports as an unexpected frame.
        vhost = unquote(urlsplit(url).path[1:]) or "/"
        return BrokerRefusedError(
            "RabbitMQ",
            where,
            f"virtual host {vhost[:100]!r} does not exist or the user may not use it "
            f"(create it with `rabbitmqctl add_vhost {vhost[:100]}` and grant permissions, or fix the URL's path)",
        )
    return BrokerUnavailableError("RabbitMQ", where, f"{type(exc).__name__}: {exc}")


async def close_connection(connection: AbstractRobustConnection | None) -> None:
    """Close the bus's connection at shutdown; one the broker already dropped is only logged."""
    if connection is None:
        return
    try:
        await connection.close()
    except DRIVER_ERRORS as exc:
        logger.info("RabbitMQ connection was already closed: %s", exc)
