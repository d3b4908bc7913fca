"""Confirmed, pipelined publishing that rides out reconnects.

Every publish waits for the broker's confirm. A batch writes up to `publish_window`
messages before waiting, then awaits all their confirms together (one round trip per
window, not per message). Messages whose confirm was lost because the connection
dropped are sent again once the robust channel is restored, until `publish_timeout`:
a lost confirm does not mean a lost message, so this can duplicate, never drop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from aio_pika.abc import AbstractRobustChannel
from aiormq.abc import AbstractChannel
from aiormq.exceptions import DeliveryError
from pamqp.commands import Basic

from bento.adapters.rabbitmq._connection import DRIVER_ERRORS, TRANSIENT_ERRORS
from bento.adapters.rabbitmq.settings import RabbitMQSettings
from bento.adapters.shared.metrics import BusCounters
from bento.application.errors import PublishError

logger = logging.getLogger(__name__)

Item = tuple[bytes, Basic.Properties]
#: Runs on the underlying channel before a window goes out on it (see _direct_reply).
Prepare = Callable[[AbstractChannel], Awaitable[None]]
_RETRY_PAUSE = 0.05


class ConfirmedPublisher:
    """Publishes on one robust confirm channel; driver errors leave as PublishError."""

    def __init__(self, channel: AbstractRobustChannel, settings: RabbitMQSettings, metrics: BusCounters) -> None:
        self._channel, self._metrics = channel, metrics
        self._timeout, self._window = settings.publish_timeout, settings.publish_window

    async def send(
        self,
        exchange: str,
        routing_key: str,
        items: Sequence[Item],
        *,
        topic: str,
        counted: bool = True,
        prepare: Prepare | None = None,
    ) -> None:
        """Return once the broker confirmed every item; raise PublishError otherwise.
        `counted=False` for the bus's own retry and dead-letter copies: they are not messages
        a service published, so they stay out of `messages_published`. `prepare` runs on the
        channel first (again after a reconnect gave a new one)."""
        loop = asyncio.get_running_loop()
        for start in range(0, len(items), self._window):
            pending = list(items[start : start + self._window])
            deadline = loop.time() + self._timeout
            while pending:
                try:
                    async with asyncio.timeout_at(deadline):
                        sent = len(pending)
                        pending = await self._send_window(exchange, routing_key, pending, prepare)
                        if counted:
                            self._metrics.messages_published += sent - len(pending)
                except DeliveryError as exc:
                    self._metrics.publish_errors += 1
                    raise PublishError(topic, f"the broker refused the message (nack): {exc}") from exc
                except TRANSIENT_ERRORS as exc:
                    if loop.time() >= deadline:
                        self._metrics.publish_errors += len(pending)
                        raise PublishError(
                            topic, f"not confirmed within {self._timeout:.1f}s ({type(exc).__name__}: {exc})"
                        ) from exc
                    logger.info("connection lost while publishing to %r (%s); resending", topic, exc)
                except DRIVER_ERRORS as exc:
                    self._metrics.publish_errors += len(pending)
                    raise PublishError(topic, f"{type(exc).__name__}: {exc}") from exc
                if pending:
                    # Confirms lost to a dropped connection: resend once the channel is restored.
                    await asyncio.sleep(_RETRY_PAUSE)

    async def _send_window(
        self, exchange: str, routing_key: str, items: list[Item], prepare: Prepare | None
    ) -> list[Item]:
        """Publish `items` pipelined; return those whose confirm was lost to a transient failure."""
        # Waits while the robust connection is reconnecting, then gives the restored channel.
        channel = await self._channel.get_underlay_channel()
        if prepare is not None:
            await prepare(channel)
        if len(items) == 1:
            body, props = items[0]
            await channel.basic_publish(body, exchange=exchange, routing_key=routing_key, properties=props)
            return []
        # Keep aiormq's default wait=True: with wait=False a publish queued just as the connection
        # dropped was seen to wait for a confirm that never came, instead of failing fast.
        publishing = asyncio.gather(
            *(
                channel.basic_publish(body, exchange=exchange, routing_key=routing_key, properties=props)
                for body, props in items
            ),
            return_exceptions=True,
        )
        await asyncio.wait((publishing, channel.closing), return_when=asyncio.FIRST_COMPLETED)
        if not publishing.done():
            # The channel closed under us and some confirms may never resolve: resend the whole window.
            publishing.cancel()
            await asyncio.gather(publishing, return_exceptions=True)
            return items
        outcomes = publishing.result()
        failed: list[Item] = []
        for item, outcome in zip(items, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                continue
            if isinstance(outcome, DeliveryError):
                raise outcome
            if isinstance(outcome, (*TRANSIENT_ERRORS, asyncio.CancelledError)):
                failed.append(item)
                continue
            raise outcome
        return failed
