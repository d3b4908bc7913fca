"""Broker-free checks of the adapter's naming and ack coalescing (kept beside the integration tests
because they are specific to this adapter)."""

from __future__ import annotations

import asyncio
from typing import Any

from bento.adapters.rabbitmq import RabbitMQSettings
from bento.adapters.rabbitmq._acks import AckBatcher
from bento.adapters.rabbitmq._topology import (
    dead_letter_queue,
    legacy_queue,
    retry_name,
    subscription_queue,
)


class FakeAckChannel:
    """Records the acks an AckBatcher writes (the only channel method it calls)."""

    def __init__(self) -> None:
        self.acks: list[tuple[int, bool]] = []

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        self.acks.append((delivery_tag, multiple))


async def _turn() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_acks_of_one_loop_turn_go_out_as_one_multiple_ack() -> None:
    channel = FakeAckChannel()
    batcher = AckBatcher(channel)  # type: ignore[arg-type]
    for tag in (1, 2, 3, 4):
        batcher.settle(tag)
    await _turn()
    assert channel.acks == [(4, True)]


async def test_a_slow_delivery_never_holds_back_the_acks_of_later_ones() -> None:
    channel = FakeAckChannel()
    batcher = AckBatcher(channel)  # type: ignore[arg-type]
    batcher.settle(2)
    batcher.settle(3)
    await _turn()
    assert channel.acks == [(2, False), (3, False)]  # 1 still running: acked one by one
    batcher.settle(1)
    batcher.settle(4)
    await _turn()
    # One multiple ack on 4 covers 1 and 4; its tag must be one not yet acked (the broker refuses
    # a multiple ack on an acked tag), so it is never 2 or 3.
    assert channel.acks[2:] == [(4, True)]


async def test_flush_sends_pending_acks_before_a_channel_closes() -> None:
    channel = FakeAckChannel()
    batcher = AckBatcher(channel)  # type: ignore[arg-type]
    batcher.settle(1)
    await batcher.flush()
    assert channel.acks == [(1, True)]


async def test_a_handed_back_delivery_is_never_acked_and_does_not_stall_the_floor() -> None:
    """A delivery the subscription rejected (handed back after an unexpected failure) is settled
    without an ack: acking it too would be a channel error, and without settling it every later
    delivery would be acked one by one."""
    channel = FakeAckChannel()
    batcher = AckBatcher(channel)  # type: ignore[arg-type]
    batcher.settle(1)
    batcher.settled_elsewhere(2)
    batcher.settle(3)
    batcher.settle(4)
    await _turn()
    assert channel.acks == [(4, True)]
    batcher.settled_elsewhere(6)
    batcher.settle(7)
    await _turn()
    assert channel.acks[1:] == [(7, False)]
    batcher.settle(5)
    await _turn()
    assert channel.acks[2:] == [(5, True)]  # the floor passes 6 (rejected) and 7 (acked alone)


def test_queue_names_are_scoped_to_the_exchange_and_pattern_and_legal() -> None:
    settings = RabbitMQSettings(exchange_name="shop")
    assert subscription_queue(settings, "order.*", "billing") == "shop/billing/order.+"
    assert subscription_queue(settings, "order.#", "billing") == "shop/billing/order.#"
    assert subscription_queue(settings, "a+b:c", "g") == "shop/g/a:2bb:3ac"  # escaped, never colliding
    assert dead_letter_queue(settings, "order.*", "billing") == "shop/billing/order.+.dlq"
    assert dead_letter_queue(settings, "order.*", None) == "shop/_broadcast/order.+.dlq"
    assert subscription_queue(settings, "x", None).startswith("shop/_broadcast/x.")
    assert retry_name(settings, 0.5) == "shop/bento.retry.500ms"


def test_distinct_exchanges_and_groups_never_share_a_queue() -> None:
    # `/` inside the exchange or the group is escaped, so the first two `/` always split the name.
    names = {
        subscription_queue(RabbitMQSettings(exchange_name=exchange), pattern, group)
        for exchange, group, pattern in [("a/b", "c", "d"), ("a", "b/c", "d"), ("a", "b", "c/d"), ("a:2f", "b", "d")]
    }
    assert len(names) == 4
    assert retry_name(RabbitMQSettings(exchange_name="a"), 1) != retry_name(RabbitMQSettings(exchange_name="b"), 1)


def test_legacy_names_are_the_unscoped_ones_of_earlier_versions() -> None:
    settings = RabbitMQSettings(exchange_name="shop", legacy_queue_names=True)
    assert subscription_queue(settings, "order.*", "billing") == legacy_queue("order.*", "billing") == "billing.order.+"
    assert dead_letter_queue(settings, "order.*", "billing") == "billing.order.+.dlq"
    assert dead_letter_queue(settings, "order.*", None) == "_broadcast.order.+.dlq"
    assert subscription_queue(settings, "x", None).startswith("_broadcast.x.")
    assert retry_name(settings, 0.5) == "bento.retry.500ms"


def test_metrics_are_plain_numbers() -> None:
    from bento.adapters.shared.metrics import BusCounters as RabbitMQMetrics

    values: dict[str, Any] = RabbitMQMetrics().as_dict()
    assert set(values) >= {
        "messages_published",
        "messages_consumed",
        "publish_errors",
        "consume_errors",
        "connection_errors",
        "last_health_check",
        "health_check_status",
    }
