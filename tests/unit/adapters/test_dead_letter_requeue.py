"""The requeue loop every bus runs (adapters/shared/dead_letters.py): send, then remove, in the
messages' own order; interrupted, it sends a letter at most once more, which an inbox absorbs."""

from __future__ import annotations

import time

import pytest

from bento.adapters.memory.inbox import InMemoryInbox
from bento.adapters.memory.settings import InProcessSettings
from bento.adapters.shared.dead_letters import Throttle, created_at, letter, replay_copy, requeue_each
from bento.adapters.shared.delivery import (
    ERROR_TYPE_HEADER,
    FIRST_FAILED_AT_HEADER,
    MESSAGE_ID_HEADER,
    REPLAY_GROUP_HEADER,
    REPLAYED_FROM_HEADER,
    Action,
    FirstFailures,
    Verdict,
)
from bento.adapters.shared.wire_headers import INPROCESS, WireEncoder
from bento.application.ports.message_bus import DeadLetter, DeadLetterSelection
from bento.application.serialization import JsonCodec
from bento.testing.events import make_event


def _letters(codec: JsonCodec, count: int) -> list[DeadLetter]:
    events = [make_event(n, key="k") for n in range(count)]
    # The queue holds them out of order (a retry let a later one in first).
    order = [n for n in (2, 0, 3, 1, 4) if n < count]
    return [
        letter(
            "t",
            "g",
            codec.encode(events[n]),
            {ERROR_TYPE_HEADER: "ValueError", MESSAGE_ID_HEADER: events[n].message_id},
            f"L{n}",
        )
        for n in order
    ]


async def test_an_interrupted_requeue_sends_one_letter_twice_and_the_inbox_absorbs_it() -> None:
    codec = JsonCodec()
    queue = _letters(codec, 5)
    ids = {d.letter_id: d.message_id for d in queue}
    sent: list[str] = []
    interrupt = {"L2"}

    async def send(dead: DeadLetter) -> None:
        sent.append(dead.letter_id)

    async def remove(dead: DeadLetter) -> None:
        if dead.letter_id in interrupt:
            interrupt.clear()
            raise ConnectionError("the process died between the send and the removal")
        queue.remove(dead)

    with pytest.raises(ConnectionError):
        await requeue_each(list(queue), None, None, send, remove)
    assert sent == ["L0", "L1", "L2"]  # the messages' own order, not the queue's
    assert [d.letter_id for d in queue] == ["L2", "L3", "L4"]  # nothing removed that was not sent
    done = await requeue_each(list(queue), None, None, send, remove)
    assert [d.letter_id for d in done] == ["L2", "L3", "L4"] and queue == []
    assert sent == ["L0", "L1", "L2", "L2", "L3", "L4"]

    inbox, handled = InMemoryInbox(), []
    for letter_id in sent:
        message_id = ids[letter_id]
        assert message_id is not None
        if await inbox.mark_processed("g", message_id):
            handled.append(letter_id)
    assert handled == ["L0", "L1", "L2", "L3", "L4"]


async def test_selection_and_rate() -> None:
    codec = JsonCodec()
    queue = _letters(codec, 4)
    sent: list[str] = []

    async def send(dead: DeadLetter) -> None:
        sent.append(dead.letter_id)

    async def remove(dead: DeadLetter) -> None:
        return None

    started = time.monotonic()
    await requeue_each(queue, DeadLetterSelection(ids=["L1", "L3"]), 20.0, send, remove)
    assert sent == ["L1", "L3"] and time.monotonic() - started >= 0.045
    assert await requeue_each(queue, DeadLetterSelection(error_type="TypeError"), None, send, remove) == []
    with pytest.raises(ValueError):
        Throttle(0)


def test_a_copy_is_for_the_letters_group_and_an_undecodable_one_keeps_its_body() -> None:
    codec = JsonCodec()
    wire = WireEncoder(codec, InProcessSettings(), INPROCESS)
    [good] = _letters(codec, 1)
    copy = replay_copy(wire, good, topic="t")
    assert copy.message is not None and copy.key == "k"
    assert copy.headers[REPLAY_GROUP_HEADER] == "g" and copy.headers[REPLAYED_FROM_HEADER] == good.letter_id
    assert ERROR_TYPE_HEADER not in copy.headers
    bad = letter("t", None, b"not json", {ERROR_TYPE_HEADER: "DeserializationError", "x-mine": "1"}, "L9")
    raw = replay_copy(wire, bad, topic="t")
    assert (raw.body, raw.message, raw.headers) == (
        b"not json",
        None,
        {"x-mine": "1", REPLAY_GROUP_HEADER: "", REPLAYED_FROM_HEADER: "L9"},
    )
    assert created_at(bad) < created_at(good)


def test_first_failures_are_remembered_until_the_message_settles_and_bounded() -> None:
    failures = FirstFailures(size=2)
    retry, dead = Verdict(Action.RETRY, delay=0.1), Verdict(Action.DEAD, error_type="ValueError")
    failures.settle(retry, "m1")
    first = failures.settle(Verdict(Action.DEAD), "m1")
    assert first.first_failed_at is not None
    assert FIRST_FAILED_AT_HEADER in first.dead_letter_headers(3, "t")
    assert first.dead_letter_headers(3, "t")[FIRST_FAILED_AT_HEADER] == first.first_failed_at
    assert not failures  # forgotten once dead
    failures.settle(retry, "m2")
    assert failures.settle(Verdict(Action.ACK), "m2").first_failed_at is None and not failures
    for n in range(3):
        failures.settle(retry, f"x{n}")
    assert failures.settle(dead, "x0").first_failed_at is None  # the oldest was forgotten
    assert failures.settle(dead, "x2").first_failed_at is not None
    unknown = dead.dead_letter_headers(3, "t")
    assert FIRST_FAILED_AT_HEADER not in unknown  # unknown, not made up
    assert FIRST_FAILED_AT_HEADER in dead.dead_letter_headers(1, "t")  # first delivery: now
