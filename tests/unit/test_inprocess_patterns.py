"""Seed 000's psubscribe wildcards on the in-process bus: `*`, `?` and `[seq]`."""

import pytest

from bento.adapters.memory import InProcessMessageBus
from bento.testing.collector import Collector
from bento.testing.events import make_event


@pytest.mark.parametrize(
    ("pattern", "matching", "other"),
    [
        ("space:123:*", ["space:123:file_analyzed", "space:123:comment_added"], ["space:124:file_analyzed"]),
        ("user:?", ["user:1", "user:x"], ["user:12", "user:"]),
        ("shard.[ab]", ["shard.a", "shard.b"], ["shard.c", "shard.ab"]),
    ],
)
async def test_wildcards_match_like_fnmatch(pattern: str, matching: list[str], other: list[str]) -> None:
    async with InProcessMessageBus() as bus:
        received = Collector()
        await bus.subscribe(pattern, received)
        expected = set()
        for topic in other + matching:
            event = make_event(len(expected))
            await bus.publish(topic, event)
            if topic in matching:
                expected.add(event.message_id)
        assert await received.wait_for(len(expected), timeout=2) == expected
        await bus.close()
        assert received.ids() == expected
