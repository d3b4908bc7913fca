"""Coalesced acknowledgements for one consumer channel.

Writing one `basic.ack` frame per message costs a socket write per message, which on a busy
queue is the largest per-message cost left after decoding. Handlers that finish in the same
event-loop turn are acked together: one `multiple=True` ack up to the highest delivery tag
below which every delivery is settled. A delivery that finished while an older one is still
running is acked on its own at once, so a slow handler never holds back the acks (and the
prefetch window) of the others. Acks stay fire-and-forget, as in AMQP: one lost with the
connection means a redelivery, never a loss.

Delivery tags are per channel and start at 1; the subscription's channel carries only its
one consumer, so they are contiguous. A reopened channel gets a new `AckBatcher`.
"""

from __future__ import annotations

import asyncio
import logging

from aiormq.abc import AbstractChannel

from bento.adapters.rabbitmq._connection import DRIVER_ERRORS

logger = logging.getLogger(__name__)


class AckBatcher:
    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        self._floor = 0  # every tag <= floor is acked
        self._done: set[int] = set()  # settled above the floor, not yet covered by a multiple ack
        self._acked_alone: set[int] = set()
        self._scheduled = False
        self._sending: set[asyncio.Task[None]] = set()

    def settle(self, tag: int) -> None:
        """Mark `tag` handled; its ack goes out at the end of this loop turn."""
        self._done.add(tag)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def settled_elsewhere(self, tag: int) -> None:
        """`tag` was rejected (handed back) on its own: never ack it, but let the floor pass it."""
        self._done.add(tag)
        self._acked_alone.add(tag)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        floor, done, alone = self._floor, self._done, self._acked_alone
        multiple = 0  # RabbitMQ refuses a multiple ack whose own tag was already acked: skip those
        while floor + 1 in done:
            floor += 1
            done.discard(floor)
            if floor in alone:
                alone.discard(floor)
            else:
                multiple = floor
        self._floor = floor
        singles = sorted(done - alone)
        alone.update(singles)
        if multiple or singles:
            task = asyncio.get_running_loop().create_task(self._send(multiple, singles))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, multiple: int, singles: list[int]) -> None:
        try:
            if multiple:
                await self.channel.basic_ack(multiple, multiple=True, wait=False)
            for tag in singles:
                await self.channel.basic_ack(tag, wait=False)
        except DRIVER_ERRORS as exc:
            # The channel died; the broker requeues everything it did not see acked.
            logger.info("acks lost with a closed channel (those messages will be redelivered): %s", exc)

    async def flush(self) -> None:
        """Send what is pending now and wait until it was handed to the connection (before closing)."""
        if self._scheduled:
            self._flush()
        if self._sending:
            await asyncio.gather(*self._sending)
