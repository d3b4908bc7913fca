"""ChannelContract: behaviour every ChannelPort adapter shows.

Subclass it as `Test<Adapter>` with a `channel` fixture yielding a started channel
built with `queue_size` (the fixture below) messages per subscriber. Channel names
are unique per test, so runs against a shared server never collide.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from bento.application.errors import BusClosedError, PublishError
from bento.application.ports.channel import ChannelMessage, ChannelPort, ChannelSubscription


class ChannelContract:
    @pytest.fixture
    def queue_size(self) -> int:
        return 100

    @pytest.fixture
    def name(self) -> str:
        return f"contract-{uuid.uuid4().hex[:12]}"

    async def test_subscriber_gets_messages_in_order(self, channel: ChannelPort, name: str) -> None:
        async with channel.subscribe(f"{name}:user:1") as subscription:
            for n in range(20):
                await channel.publish(f"{name}:user:1", {"n": n, "text": "héllo"}, event="tick")
            await channel.publish(f"{name}:user:2", {"n": -1})
            got = await _take(subscription, 20)
        assert [m.data["n"] for m in got] == list(range(20))
        assert {m.channel for m in got} == {f"{name}:user:1"}
        assert {m.event for m in got} == {"tick"}
        assert len({m.id for m in got}) == 20

    async def test_to_sse_is_one_server_sent_event(self, channel: ChannelPort, name: str) -> None:
        async with channel.subscribe(name) as subscription:
            await channel.publish(name, {"a": [1, 2], "s": "x\ny"}, event="update")
            await channel.publish(name, "plain")
            first, second = await _take(subscription, 2)
        frame = first.to_sse()
        assert frame.endswith("\n\n") and frame.count("\n\n") == 1
        fields = dict(line.split(": ", 1) for line in frame.strip().split("\n"))
        assert fields["event"] == "update" and fields["id"] == first.id
        assert json.loads(fields["data"]) == {"a": [1, 2], "s": "x\ny"}
        assert "event:" not in second.to_sse() and json.loads(second.to_sse().split("data: ")[1]) == "plain"

    async def test_psubscribe_patterns(self, channel: ChannelPort, name: str) -> None:
        star = channel.psubscribe(f"{name}:space:1:*")
        one = channel.psubscribe(f"{name}:user:?")
        seq = channel.psubscribe(f"{name}:room:[ab]")
        for subscription in (star, one, seq):
            await subscription.start()
        published = [
            f"{name}:space:1:file_analyzed",
            f"{name}:space:1:comment_added",
            f"{name}:space:2:other",
            f"{name}:user:7",
            f"{name}:user:77",
            f"{name}:room:a",
            f"{name}:room:b",
            f"{name}:room:c",
        ]
        for channel_name in published:
            await channel.publish(channel_name, {"on": channel_name}, event=channel_name.rsplit(":", 1)[-1])
        await channel.publish(f"{name}:end", {})  # nobody listens: must not matter
        got_star, got_one, got_seq = await _take(star, 2), await _take(one, 1), await _take(seq, 2)
        assert [m.channel for m in got_star] == [
            f"{name}:space:1:file_analyzed",
            f"{name}:space:1:comment_added",
        ]
        assert got_star[0].event == "file_analyzed" and got_star[0].pattern == f"{name}:space:1:*"
        assert [m.channel for m in got_one] == [f"{name}:user:7"]
        assert [m.channel for m in got_seq] == [f"{name}:room:a", f"{name}:room:b"]
        await asyncio.sleep(0.2)
        for subscription in (star, one, seq):
            assert await _take(subscription, 1, within=0.2) == []  # nothing else matched
            await subscription.aclose()

    async def test_every_subscriber_gets_every_message(self, channel: ChannelPort, name: str) -> None:
        subscriptions = [channel.subscribe(name) for _ in range(5)]
        for subscription in subscriptions:
            await subscription.start()
        for n in range(10):
            await channel.publish(name, n)
        for subscription in subscriptions:
            assert [m.data for m in await _take(subscription, 10)] == list(range(10))
            await subscription.aclose()

    async def test_thousand_subscribers_one_stalled(self, channel: ChannelPort, name: str, queue_size: int) -> None:
        """A stalled reader drops its oldest messages (bounded memory); the 999 others get everything."""
        total, readers = queue_size * 3, 999
        subscriptions = [channel.subscribe(name) for _ in range(readers + 1)]
        await asyncio.gather(*(s.start() for s in subscriptions))
        stalled, active = subscriptions[0], subscriptions[1:]
        received = [0] * readers
        ordered = [True] * readers

        async def read(index: int, subscription: ChannelSubscription) -> None:
            async for message in subscription:
                ordered[index] &= message.data == received[index]
                received[index] += 1
                if received[index] == total:
                    return

        tasks = [asyncio.create_task(read(i, s)) for i, s in enumerate(active)]
        chunk = max(queue_size // 2, 1)
        async with asyncio.timeout(60):
            for start in range(0, total, chunk):
                for n in range(start, min(start + chunk, total)):
                    await channel.publish(name, n)
                # A live reader keeps up with the publisher: wait for the 999 before the next chunk.
                while min(received) < min(start + chunk, total):  # noqa: ASYNC110 - polling 999 counters
                    await asyncio.sleep(0.01)
            await asyncio.gather(*tasks)
        assert all(ordered) and received == [total] * readers
        assert stalled.dropped == total - queue_size
        kept = await _take(stalled, queue_size)
        assert [m.data for m in kept] == list(range(total - queue_size, total))  # the newest were kept
        await stalled.aclose()

    async def test_late_subscriber_gets_only_what_follows(self, channel: ChannelPort, name: str) -> None:
        """A subscriber joining a channel others already listen to gets nothing published before
        its start() returned, even while earlier messages are still on their way to the others."""
        async with channel.subscribe(name) as early:
            for n in range(50):
                await channel.publish(name, n)
            async with channel.subscribe(name) as late:
                await channel.publish(name, "after")
                assert [m.data for m in await _take(late, 1)] == ["after"]
            assert [m.data for m in await _take(early, 51)] == [*range(50), "after"]

    async def test_leaving_the_loop_unsubscribes(self, channel: ChannelPort, name: str) -> None:
        subscription = channel.subscribe(name)
        await subscription.start()
        await channel.publish(name, 1)
        async for message in subscription:
            assert message.data == 1
            break
        await channel.publish(name, 2)  # no listener left: fine
        async with channel.subscribe(name) as again:
            await channel.publish(name, 3)
            assert [m.data for m in await _take(again, 1)] == [3]

    async def test_close_ends_iteration(self, channel: ChannelPort, name: str) -> None:
        subscription = channel.subscribe(name)
        await subscription.start()
        got: list[ChannelMessage] = []

        async def read() -> None:
            async for message in subscription:
                got.append(message)

        reader = asyncio.create_task(read())
        await channel.publish(name, "last")
        await asyncio.sleep(0.2)
        await channel.close()
        await asyncio.wait_for(reader, 5)
        assert [m.data for m in got] == ["last"]
        with pytest.raises(BusClosedError):
            await subscription.receive(0.1)
        await channel.close()  # idempotent

    async def test_unserialisable_data_is_refused(self, channel: ChannelPort, name: str) -> None:
        with pytest.raises(PublishError):
            await channel.publish(name, {"bad": {1, 2}.__iter__()})

    async def test_health_check(self, channel: ChannelPort) -> None:
        status = await channel.health_check()
        assert status.healthy, status.detail
        assert status.latency_ms >= 0


async def _take(subscription: ChannelSubscription, count: int, within: float = 5.0) -> list[ChannelMessage]:
    """Up to `count` messages; fewer if `within` seconds pass first (the subscription stays open)."""
    got: list[ChannelMessage] = []
    deadline = asyncio.get_running_loop().time() + within
    while len(got) < count:
        message = await subscription.receive(max(deadline - asyncio.get_running_loop().time(), 0))
        if message is None:
            break
        got.append(message)
    return got
