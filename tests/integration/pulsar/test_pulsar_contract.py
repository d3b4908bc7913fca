"""The MessageBus contract against a real Pulsar-protocol broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bento.adapters.pulsar import PulsarMessageBus, PulsarSettings
from bento.application.ports.message_bus import MessageBus
from bento.testing.contracts.message_bus import MessageBusContract


class TestPulsarMessageBus(MessageBusContract):
    @pytest.fixture
    async def bus(
        self, pulsar_url: str, pulsar_is_real: bool, max_attempts: int, max_message_bytes: int
    ) -> AsyncIterator[MessageBus]:
        settings = PulsarSettings(
            service_url=pulsar_url,
            max_attempts=max_attempts,
            retry_delays=[0.05, 0.1],
            max_message_bytes=max_message_bytes,
            drain_timeout=2.0,
            pattern_subscriptions=pulsar_is_real,
        )
        async with PulsarMessageBus(settings) as bus:
            yield bus

    # pulsar-lite has no regex subscriptions: against it the bus reports
    # pattern_subscriptions=False; against Apache Pulsar the contract test runs.
    @pytest.mark.real_pulsar(lacks="regex subscriptions")
    async def test_pattern_subscription_matches_sub_topics(self, bus: MessageBus, topic: str, group: str) -> None:
        await super().test_pattern_subscription_matches_sub_topics(bus, topic, group)

    async def test_a_broadcast_subscriptions_letters_go_back_to_broadcast_subscribers_only(
        self, bus: MessageBus, topic: str, group: str, pulsar_url: str, pulsar_is_real: bool
    ) -> None:
        """pulsar-lite never redelivers a negative-acked message on an Exclusive subscription (the
        default `broadcast_subscription_type`), so a failing broadcast subscriber there never
        reaches its dead letter; against it the same test runs with Shared broadcast subscriptions."""
        if pulsar_is_real:
            await super().test_a_broadcast_subscriptions_letters_go_back_to_broadcast_subscribers_only(
                bus, topic, group
            )
            return
        settings = PulsarSettings(
            service_url=pulsar_url, max_attempts=3, retry_delays=[0.05, 0.1], broadcast_subscription_type="shared"
        )
        async with PulsarMessageBus(settings) as shared:
            await super().test_a_broadcast_subscriptions_letters_go_back_to_broadcast_subscribers_only(
                shared, topic, group
            )
