"""Failures of the real thing: a broker restart (private nats-server, so the shared
one is never touched) and a consumer process killed with messages mid-batch."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from bento.adapters.nats import NatsMessageBus, NatsSettings
from bento.application.errors import BrokerUnavailableError, PublishError
from bento.testing.collector import Collector
from bento.testing.events import make_event

if TYPE_CHECKING:
    from tests.integration.nats.conftest import PrivateNats

Settings = Callable[..., NatsSettings]


async def test_reconnects_after_a_broker_restart_and_the_group_resumes(private_nats: PrivateNats) -> None:
    settings = NatsSettings(
        servers=[private_nats.url],
        reconnect_wait=0.2,
        max_reconnect_attempts=-1,
        publish_timeout=1.0,
        connect_timeout=1.0,
        max_attempts=3,
        retry_delays=[0.05],
        fetch_timeout=0.5,
        drain_timeout=1.0,
    )
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    received = Collector()
    async with NatsMessageBus(settings) as bus:
        bus.register_reconnect_callback(on_reconnect)
        await bus.subscribe("restart.t", received, group="g")
        before = [make_event(n) for n in range(5)]
        await bus.publish_batch("restart.t", before)
        await received.wait_for(5)

        await private_nats.kill()
        with pytest.raises((PublishError, BrokerUnavailableError)):
            await bus.publish("restart.t", make_event(99))
        assert not (await bus.health_check()).healthy
        assert bus.metrics.health_check_status == "unhealthy"

        await private_nats.start()  # same port, same store: the stream and the durable survive
        async with asyncio.timeout(15):
            await reconnected.wait()
        after = [make_event(n) for n in range(100, 105)]
        await bus.publish_batch("restart.t", after)
        expected = {m.message_id for m in before + after}
        await received.wait_until(lambda: received.ids() >= expected, timeout=15)
        # The publish that failed during the outage may still arrive: nats-py buffers
        # while reconnecting, which is why PublishError says "may or may not be stored".
        assert (await bus.health_check()).healthy
        assert bus.metrics.reconnects >= 1


_KILLED_CONSUMER = textwrap.dedent(
    """
    import asyncio, sys
    from bento.adapters.nats import NatsMessageBus, NatsSettings
    import bento.testing.events  # registers the events the test publishes

    async def main() -> None:
        settings = NatsSettings.model_validate_json(sys.argv[1])
        async with NatsMessageBus(settings) as bus:
            async def stall(event) -> None:
                print("handling", flush=True)
                await asyncio.sleep(3600)
            await bus.subscribe("killed.t", stall, group="workers")
            print("ready", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def test_messages_of_a_killed_consumer_go_to_another_member(nats_settings: Settings) -> None:
    # ack_wait = handler_timeout + margin = 1.5 s: the server redelivers what the dead
    # process fetched (one message in its handler, the rest waiting in its batch).
    settings = nats_settings(handler_timeout=1.0, ack_wait_margin=0.5)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _KILLED_CONSUMER,
        settings.model_dump_json(),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None
        async with asyncio.timeout(15):
            assert (await child.stdout.readline()).strip() == b"ready"
        async with NatsMessageBus(settings) as bus:
            sent = [make_event(n) for n in range(20)]
            await bus.publish_batch("killed.t", sent)
            async with asyncio.timeout(15):
                assert (await child.stdout.readline()).strip() == b"handling"
            child.send_signal(signal.SIGKILL)
            await child.wait()
            survivor = Collector()
            await bus.subscribe("killed.t", survivor, group="workers")
            assert await survivor.wait_for(20, timeout=15) == {m.message_id for m in sent}
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
