"""One message, or one broken piece, must not stop a NATS subscriber: a body that
crashes the decoder, a dead letter at the server's size limit, a client nats-py
closed for good, a pull loop that keeps failing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig
from tests.integration.nats.conftest import SMALL_MAX_PAYLOAD

from bento.adapters.nats import NatsMessageBus, NatsSettings
from bento.adapters.nats._limits import (
    ORIGINAL_SEQUENCE_HEADER,
    ORIGINAL_STREAM_HEADER,
    TRUNCATED_HEADER,
    frame_bytes,
)
from bento.application.errors import BrokerUnavailableError, PublishError
from bento.application.ports.message_bus import DeadLetter
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent
from bento.testing.collector import Collector
from bento.testing.events import make_event

if TYPE_CHECKING:
    from tests.integration.nats.conftest import PrivateNats

Settings = Callable[..., NatsSettings]


async def _dead_letters(bus: NatsMessageBus, topic: str, group: str, count: int = 1) -> list[DeadLetter]:
    for _ in range(100):
        letters = await bus.dead_letters(topic, group=group)
        if len(letters) >= count:
            return letters
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} dead letters on {topic!r} within 10 s")


def _small(server: PrivateNats, **overrides: object) -> NatsSettings:
    fields: dict[str, object] = {
        "servers": [server.url],
        "reconnect_wait": 0.1,
        "connect_timeout": 1.0,
        "publish_timeout": 1.0,
        "fetch_timeout": 0.5,
        "drain_timeout": 1.0,
        "max_attempts": 2,
        "retry_delays": [0.05],
        "partitions": 4,
    }
    fields.update(overrides)
    return NatsSettings.model_validate(fields)


async def test_a_body_that_crashes_the_decoder_is_dead_lettered_and_the_next_is_handled(
    nats_settings: Settings,
) -> None:
    nested = b'{"a":' * 5000 + b"1" + b"}" * 5000  # RecursionError in json.loads
    async with NatsMessageBus(nats_settings()) as bus:
        received = Collector()
        await bus.subscribe("deep.t", received, group="g")
        await bus.publish_raw("deep.t", nested)
        valid = make_event(1)
        await bus.publish("deep.t", valid)
        assert await received.wait_for(1) == {valid.message_id}
        (letter,) = await _dead_letters(bus, "deep.t", "g")
        assert letter.body == nested and letter.error_type
        assert (await bus.health_check()).healthy


class _BrokenCodec(JsonCodec):
    """A codec with a bug: anything starting with `boom` makes it raise."""

    def decode(self, body: bytes | str, headers: Any = None, **options: Any) -> DomainEvent:
        if isinstance(body, bytes) and body.startswith(b"boom"):
            raise LookupError("codec bug")
        return super().decode(body, headers, **options)


async def test_an_unexpected_error_while_processing_dead_letters_with_the_reason(nats_settings: Settings) -> None:
    async with NatsMessageBus(nats_settings(), codec=_BrokenCodec()) as bus:
        received = Collector()
        await bus.subscribe("bug.t", received, group="g")
        await bus.publish_raw("bug.t", b"boom")
        valid = make_event(1)
        await bus.publish("bug.t", valid)
        assert await received.wait_for(1) == {valid.message_id}
        (letter,) = await _dead_letters(bus, "bug.t", "g")
        # handle_delivery types any decoding failure, keeping the original error in the reason.
        assert (letter.body, letter.error_type) == (b"boom", "DeserializationError")
        assert "LookupError: codec bug" in letter.error_message
        assert bus.metrics.dead_lettered == 1


async def test_a_dead_letter_at_max_payload_is_cut_to_fit_and_the_client_lives_on(small_nats: PrivateNats) -> None:
    body = b"not json " + b"x" * (SMALL_MAX_PAYLOAD - 200)  # fits; with the error headers it would not
    async with NatsMessageBus(_small(small_nats)) as bus:
        received = Collector()
        await bus.subscribe("big.t", received, group="g")
        await bus.publish_raw("big.t", body)
        (letter,) = await _dead_letters(bus, "big.t", "g")
        assert frame_bytes(letter.body, letter.headers) <= SMALL_MAX_PAYLOAD
        assert letter.body == body[: len(letter.body)] and len(letter.body) > SMALL_MAX_PAYLOAD // 2
        assert letter.headers[TRUNCATED_HEADER] == str(len(body))
        assert letter.headers[ORIGINAL_STREAM_HEADER] == bus.settings.stream_name
        # The original is still in the stream at the sequence the letter names.
        nc = Client()
        await nc.connect(small_nats.url)
        try:
            original = await nc.jetstream().get_msg(
                bus.settings.stream_name, int(letter.headers[ORIGINAL_SEQUENCE_HEADER])
            )
            assert original.data == body
        finally:
            await nc.close()
        valid = make_event(1)
        await bus.publish("big.t", valid)  # raised BrokerUnavailableError for good before
        assert await received.wait_for(1) == {valid.message_id}
        assert bus.metrics.reconnects == 0


async def test_a_publish_over_max_payload_with_headers_is_refused_before_sending(small_nats: PrivateNats) -> None:
    async with NatsMessageBus(_small(small_nats)) as bus:
        body = b"x" * (SMALL_MAX_PAYLOAD - 50)  # nats-py checks only this against max_payload
        with pytest.raises(PublishError, match="max_payload"):
            await bus.publish_raw("limit.t", body, headers={"x-note": "y" * 100})
        received = Collector()
        await bus.subscribe("limit.t", received, group="g")
        valid = make_event(1)
        await bus.publish("limit.t", valid)
        assert await received.wait_for(1) == {valid.message_id}


async def test_a_client_nats_py_closed_for_good_is_replaced(small_nats: PrivateNats) -> None:
    reconnected = asyncio.Event()
    # A long drain_timeout: moving to the new client must not wait for it.
    async with NatsMessageBus(_small(small_nats, drain_timeout=30.0)) as bus:
        bus.register_reconnect_callback(reconnected.set)
        received = Collector()
        await bus.subscribe("replace.t", received, group="g")
        # A control line over the server's max_control_line: the server answers -ERR and
        # nats-py closes the client instead of reconnecting.
        with pytest.raises((PublishError, BrokerUnavailableError)):
            await bus.publish("t" * 1100, make_event(0))
        async with asyncio.timeout(10):
            await reconnected.wait()
        assert bus.metrics.reconnects >= 1
        valid = make_event(1)
        await bus.publish("replace.t", valid)
        assert await received.wait_for(1, timeout=5) == {valid.message_id}
        assert (await bus.health_check()).healthy


async def test_a_failing_pull_loop_is_counted_reported_and_recovers(nats_settings: Settings) -> None:
    settings = nats_settings()
    async with NatsMessageBus(settings) as bus:
        received = Collector()
        await bus.subscribe("loop.t", received, group="g")
        nc = Client()
        await nc.connect(settings.server_urls()[0])
        try:
            js = nc.jetstream()
            (info,) = await js.consumers_info(settings.stream_name)
            errors_before = bus.metrics.consume_errors
            # Swap the group's pull consumer for a push consumer of the same name: pulling
            # is refused (409) and the puller cannot re-create its consumer.
            await js.delete_consumer(settings.stream_name, info.name)
            push = ConsumerConfig(
                durable_name=info.name,
                ack_policy=AckPolicy.EXPLICIT,
                filter_subject=info.config.filter_subject,
                deliver_subject=f"{settings.subject_prefix}_push.inbox",
            )
            await js.add_consumer(settings.stream_name, push)
            for _ in range(100):  # the loop keeps failing: it cannot re-create its consumer
                status = await bus.health_check()
                if not status.healthy and bus.metrics.consume_errors >= errors_before + 3:
                    break
                await asyncio.sleep(0.1)
            assert not status.healthy and "loop.t" in status.detail, status.detail
            await js.delete_consumer(settings.stream_name, info.name)
        finally:
            await nc.close()
        for _ in range(100):  # the next attempt re-creates the pull consumer
            if (status := await bus.health_check()).healthy:
                break
            await asyncio.sleep(0.1)
        assert status.healthy, status.detail
        valid = make_event(1)
        await bus.publish("loop.t", valid)
        assert await received.wait_for(1, timeout=10) == {valid.message_id}
        assert (await bus.health_check()).healthy
