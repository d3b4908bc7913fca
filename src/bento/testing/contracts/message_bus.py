"""MessageBusContract: behaviour every MessageBus adapter shows.

Subclass it as `Test<Adapter>` and provide a `bus` fixture yielding a started bus
built with `max_attempts=3` (the `max_attempts` fixture), `max_message_bytes=65536`
(the `max_message_bytes` fixture) and retry delays of at most 0.2 s. Malformed and
hostile bodies are injected with `publish_raw`, which sends bytes as given. Each test
gets its own `topic` (and derived group names), so runs against a shared broker never
collide. Behaviour that only some adapters have is gated on
`bus.capabilities` and skips with the reason, never by adapter name.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from bento.application.errors import BusClosedError, MessageTooLargeError
from bento.application.ports.message_bus import DeadLetter, MessageBus
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent
from bento.testing.collector import Collector
from bento.testing.contracts.dead_letters import DeadLetterContract
from bento.testing.contracts.wire_format import WireFormatContract
from bento.testing.events import ContractEvent, make_event


class MessageBusContract(WireFormatContract, DeadLetterContract):
    """The MessageBus promises, as tests. Subclasses provide the `bus` fixture."""

    @pytest.fixture
    def max_attempts(self) -> int:
        return 3

    @pytest.fixture
    def max_message_bytes(self) -> int:
        return 65_536

    @pytest.fixture
    def topic(self) -> str:
        return f"contract.{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def group(self, topic: str) -> str:
        return f"g-{topic.rsplit('.', 1)[-1]}"

    # -- delivery ---------------------------------------------------------------------
    async def test_every_message_reaches_the_group(self, bus: MessageBus, topic: str, group: str) -> None:
        received = Collector()
        await bus.subscribe(topic, received, group=group)
        sent = [make_event(n) for n in range(20)]
        for message in sent:
            await bus.publish(topic, message)
        assert await received.wait_for(20) == {m.message_id for m in sent}

    async def test_decoded_message_equals_the_published_one(self, bus: MessageBus, topic: str, group: str) -> None:
        received = Collector()
        await bus.subscribe(topic, received, group=group)
        sent = make_event(7, key="k-1", blob="ünïcødé ✓").with_metadata(tenant_id="t-9", correlation_id="c-1")
        await bus.publish(topic, sent, headers={"x-origin": "contract"})
        await received.wait_for(1)
        got = received.received[0]
        assert isinstance(got, ContractEvent)
        assert (got.seq, got.key, got.blob) == (7, "k-1", "ünïcødé ✓")
        assert got.message_id == sent.message_id
        assert got.timestamp == sent.timestamp
        assert got.metadata.tenant_id == "t-9"
        assert got.metadata.correlation_id == "c-1"
        assert got.metadata.headers.get("x-origin") == "contract"

    async def test_each_group_gets_every_message(self, bus: MessageBus, topic: str, group: str) -> None:
        first, second = Collector(), Collector()
        await bus.subscribe(topic, first, group=f"{group}-a")
        await bus.subscribe(topic, second, group=f"{group}-b")
        sent = [make_event(n) for n in range(10)]
        await bus.publish_batch(topic, sent)
        expected = {m.message_id for m in sent}
        assert await first.wait_for(10) == expected
        assert await second.wait_for(10) == expected

    async def test_group_members_share_the_work(self, bus: MessageBus, topic: str, group: str) -> None:
        if not bus.capabilities.consumer_groups:
            pytest.skip("adapter does not offer consumer groups")
        one, two = Collector(), Collector()
        await bus.subscribe(topic, one, group=group)
        await bus.subscribe(topic, two, group=group)
        sent = [make_event(n, key=f"k{n}") for n in range(200)]
        await bus.publish_batch(topic, sent)
        expected = {m.message_id for m in sent}
        await one.wait_until(lambda: (one.ids() | two.ids()) >= expected, timeout=20)
        assert one.ids() | two.ids() == expected
        # Competing consumers: no message handled by both members (no failure happened).
        assert not (one.ids() & two.ids())

    async def test_broadcast_subscribers_each_get_everything(self, bus: MessageBus, topic: str) -> None:
        if not bus.capabilities.broadcast:
            pytest.skip("adapter does not offer broadcast subscriptions")
        one, two = Collector(), Collector()
        await bus.subscribe(topic, one)
        await bus.subscribe(topic, two)
        sent = [make_event(n) for n in range(10)]
        for message in sent:
            await bus.publish(topic, message)
        expected = {m.message_id for m in sent}
        assert await one.wait_for(10) == expected
        assert await two.wait_for(10) == expected

    async def test_pattern_subscription_matches_sub_topics(self, bus: MessageBus, topic: str, group: str) -> None:
        if not bus.capabilities.pattern_subscriptions:
            pytest.skip("adapter does not offer pattern subscriptions")
        received = Collector()
        await bus.subscribe(f"{topic}.*", received, group=group)
        a, b, other = make_event(1), make_event(2), make_event(3)
        await bus.publish(f"{topic}x.a", other)
        await bus.publish(f"{topic}.a", a)
        await bus.publish(f"{topic}.b", b)
        assert await received.wait_for(2) == {a.message_id, b.message_id}
        await asyncio.sleep(0.3)
        assert other.message_id not in received.ids()

    async def test_publish_batch_delivers_every_message(self, bus: MessageBus, topic: str, group: str) -> None:
        received = Collector()
        await bus.subscribe(topic, received, group=group)
        sent = [make_event(n, key=f"k{n % 7}", blob="x" * 200) for n in range(300)]
        await bus.publish_batch(topic, sent)
        assert await received.wait_for(300, timeout=20) == {m.message_id for m in sent}

    # -- failure path -----------------------------------------------------------------
    async def test_failed_handler_gets_the_message_again(self, bus: MessageBus, topic: str, group: str) -> None:
        if not bus.capabilities.redelivery:
            pytest.skip("adapter does not redeliver")

        def fail_twice(event: DomainEvent, attempt: int) -> None:
            if attempt < 3:
                raise RuntimeError(f"transient failure {attempt}")

        received = Collector(fail_twice)
        await bus.subscribe(topic, received, group=group)
        sent = make_event(1)
        await bus.publish(topic, sent)
        await received.wait_for(1, timeout=20)
        assert received.attempts[sent.message_id] == 3
        assert await bus.dead_letters(topic, group=group) == []

    async def test_poison_message_is_dead_lettered_after_max_attempts(
        self, bus: MessageBus, topic: str, group: str, max_attempts: int
    ) -> None:
        if not bus.capabilities.dead_letter:
            pytest.skip("adapter has no dead-letter path")
        poison = make_event(-1, blob="poison")

        def refuse_poison(event: DomainEvent, attempt: int) -> None:
            if event.message_id == poison.message_id:
                raise ValueError("cannot handle the poison message")

        received = Collector(refuse_poison)
        await bus.subscribe(topic, received, group=group)
        good = [make_event(n) for n in range(50)]
        await bus.publish(topic, poison, headers={"x-case": "poison"})
        await bus.publish_batch(topic, good)
        await received.wait_for(50, timeout=20)
        letters = await _wait_for_dead_letters(bus, topic, group, 1)
        assert received.attempts[poison.message_id] == max_attempts
        assert len(letters) == 1
        letter = letters[0]
        assert letter.message_id == poison.message_id
        assert letter.error_type == "ValueError"
        assert "cannot handle the poison message" in letter.error_message
        assert letter.attempts == max_attempts
        assert bus_decodes(bus, letter.body).message_id == poison.message_id
        assert letter.headers.get("x-case") == "poison" or b'"x-case":"poison"' in letter.body
        await asyncio.sleep(0.5)
        assert received.attempts[poison.message_id] == max_attempts  # it never loops

    async def test_undecodable_bodies_are_dead_lettered_with_the_reason(
        self, bus: MessageBus, topic: str, group: str
    ) -> None:
        if not bus.capabilities.dead_letter:
            pytest.skip("adapter has no dead-letter path")
        received = Collector()
        await bus.subscribe(topic, received, group=group)
        await bus.publish_raw(topic, b"this is not json")
        await bus.publish_raw(topic, b'{"type":"no.such.event","version":1,"message":{}}')
        await bus.publish_raw(topic, b'{"type":"bento.testing.contract_event","version":1,"message":{"seq":"x"}}')
        good = make_event(1)
        await bus.publish(topic, good)
        await received.wait_for(1)
        letters = await _wait_for_dead_letters(bus, topic, group, 3)
        by_body = {letter.body: letter for letter in letters}
        assert by_body[b"this is not json"].error_type == "DeserializationError"
        unknown = by_body[b'{"type":"no.such.event","version":1,"message":{}}']
        assert unknown.error_type == "UnknownMessageTypeError"
        assert "no.such.event" in unknown.error_message
        invalid = next(v for k, v in by_body.items() if b'"seq":"x"' in k)
        assert invalid.error_type == "DeserializationError" and "seq" in invalid.error_message
        assert received.ids() == {good.message_id}

    async def test_deeply_nested_bodies_are_dead_lettered_and_the_consumer_goes_on(
        self, bus: MessageBus, topic: str, group: str
    ) -> None:
        """A few KB of nesting overflow the JSON parser's recursion; that is a decode error,
        not a dead consumer (20 of them: more than any adapter's worker count)."""
        if not bus.capabilities.dead_letter:
            pytest.skip("adapter has no dead-letter path")
        received = Collector()
        await bus.subscribe(topic, received, group=group)
        nested = b'{"type":"bento.testing.contract_event","version":1,"message":{"seq":1,"blob":'
        nested += b"[" * 5000 + b"]" * 5000 + b"}}"
        for _ in range(20):
            await bus.publish_raw(topic, nested)
        good = [make_event(n) for n in range(5)]
        await bus.publish_batch(topic, good)
        assert await received.wait_for(5, timeout=20) == {m.message_id for m in good}
        letters = await _wait_for_dead_letters(bus, topic, group, 20)
        assert len(letters) == 20
        assert {letter.error_type for letter in letters} == {"DeserializationError"}
        assert all(letter.body == nested and "nested" in letter.error_message for letter in letters)
        status = await bus.health_check()
        assert status.healthy, status.detail

    async def test_invalid_utf8_is_dead_lettered_as_undecodable(self, bus: MessageBus, topic: str, group: str) -> None:
        """The wire format is UTF-8: a lone surrogate (b'\\xed\\xa0\\x80') never reaches a handler."""
        if not bus.capabilities.dead_letter:
            pytest.skip("adapter has no dead-letter path")
        received = Collector()
        await bus.subscribe(topic, received, group=group)
        bad = JsonCodec().encode(make_event(1, blob="BAD")).replace(b"BAD", b"B\xed\xa0\x80D")
        escaped = JsonCodec().encode(make_event(2, blob="BAD")).replace(b"BAD", b"B\\ud800D")
        await bus.publish_raw(topic, bad)
        await bus.publish_raw(topic, escaped)
        good = make_event(3, blob="ünïcødé ✓ 😀")
        await bus.publish(topic, good)
        await received.wait_for(1)
        letters = await _wait_for_dead_letters(bus, topic, group, 2)
        by_body = {letter.body: letter for letter in letters}
        assert by_body[bad].error_type == "DeserializationError" and "UTF-8" in by_body[bad].error_message
        assert by_body[escaped].error_type == "DeserializationError"
        assert "surrogate" in by_body[escaped].error_message
        await asyncio.sleep(0.2)
        assert received.ids() == {good.message_id}
        assert isinstance(received.received[0], ContractEvent) and received.received[0].blob == "ünïcødé ✓ 😀"

    async def test_oversized_message_is_refused_at_publish(
        self, bus: MessageBus, topic: str, group: str, max_message_bytes: int
    ) -> None:
        received = Collector()
        await bus.subscribe(topic, received, group=group)
        big = make_event(1, blob="x" * max_message_bytes)
        with pytest.raises(MessageTooLargeError) as refused:
            await bus.publish(topic, big)
        assert refused.value.limit == max_message_bytes and refused.value.size > max_message_bytes
        with pytest.raises(MessageTooLargeError):
            await bus.publish_batch(topic, [make_event(2), big])  # nothing of the batch is sent
        after = make_event(3)
        await bus.publish(topic, after)
        await received.wait_for(1)
        await asyncio.sleep(0.3)
        assert received.ids() == {after.message_id}

    async def test_oversized_body_from_another_producer_is_dead_lettered(
        self, bus: MessageBus, topic: str, group: str, max_message_bytes: int
    ) -> None:
        if not bus.capabilities.dead_letter:
            pytest.skip("adapter has no dead-letter path")
        received = Collector()
        await bus.subscribe(topic, received, group=group)
        big = JsonCodec().encode(make_event(1, blob="x" * max_message_bytes))
        await bus.publish_raw(topic, big)
        good = make_event(2)
        await bus.publish(topic, good)
        await received.wait_for(1)
        letters = await _wait_for_dead_letters(bus, topic, group, 1)
        assert letters[0].error_type == "MessageTooLargeError"
        assert str(max_message_bytes) in letters[0].error_message and len(letters[0].error_message) < 500
        assert len(letters[0].body) == len(big)
        assert received.ids() == {good.message_id}

    # -- ordering ---------------------------------------------------------------------
    async def test_same_key_keeps_order(self, bus: MessageBus, topic: str, group: str) -> None:
        if not bus.capabilities.ordered_per_key:
            pytest.skip("adapter does not promise per-key order")
        seen: dict[str, list[int]] = defaultdict(list)

        async def slow_and_jittery(event: DomainEvent, attempt: int) -> None:
            assert isinstance(event, ContractEvent)
            await asyncio.sleep(random.random() / 1000)
            seen[event.key].append(event.seq)

        one, two = Collector(slow_and_jittery), Collector(slow_and_jittery)
        await bus.subscribe(topic, one, group=group, ordered=True)
        await bus.subscribe(topic, two, group=group, ordered=True)
        sent = [make_event(n, key=f"key-{n % 5}") for n in range(250)]
        await bus.publish_batch(topic, sent)
        await one.wait_until(lambda: len(one.ids() | two.ids()) >= 250, timeout=30)
        for key, seqs in seen.items():
            expected = [m.seq for m in sent if m.key == key]
            assert _dedupe_keep_first(seqs) == expected, f"order broken for {key}"

    # -- lifecycle --------------------------------------------------------------------
    async def test_cancelled_subscription_gets_nothing_more(self, bus: MessageBus, topic: str, group: str) -> None:
        received = Collector()
        subscription = await bus.subscribe(topic, received, group=group)
        first = make_event(1)
        await bus.publish(topic, first)
        await received.wait_for(1)
        await subscription.cancel()
        await bus.publish(topic, make_event(2))
        await asyncio.sleep(0.5)
        assert received.ids() == {first.message_id}

    async def test_health_check_is_a_real_round_trip(self, bus: MessageBus) -> None:
        status = await bus.health_check()
        assert status.healthy, status.detail
        assert status.latency_ms >= 0

    # -- seed 003 counters and connection callbacks -------------------------------------
    async def test_counters_follow_a_known_workload(
        self, bus: MessageBus, topic: str, group: str, max_message_bytes: int
    ) -> None:
        """Publish 10 (one at a time and as a batch), refuse one too large, consume all 10
        with one handler failure on the way: each counter moves by exactly that much."""
        before = bus.metrics
        flaky = make_event(0)
        fails = 1 if bus.capabilities.redelivery else 0

        def fail_first_delivery(event: DomainEvent, attempt: int) -> None:
            if fails and event.message_id == flaky.message_id and attempt == 1:
                raise RuntimeError("first delivery refused")

        received = Collector(fail_first_delivery)
        await bus.subscribe(topic, received, group=group)
        for message in [flaky, *(make_event(n) for n in range(1, 5))]:
            await bus.publish(topic, message)
        await bus.publish_batch(topic, [make_event(n) for n in range(5, 10)])
        with pytest.raises(MessageTooLargeError):
            await bus.publish(topic, make_event(99, blob="x" * max_message_bytes))
        await received.wait_for(10, timeout=20)
        await received.wait_until(lambda: bus.metrics.messages_consumed - before.messages_consumed >= 10, timeout=10)
        await asyncio.sleep(0.2)  # a stray extra count would show up here
        after = bus.metrics
        fields = ["messages_published", "publish_errors", "messages_consumed", "consume_errors", "retries"]
        fields += ["dead_lettered", "connection_errors"]
        moved = {name: getattr(after, name) - getattr(before, name) for name in fields}
        assert moved == {
            "messages_published": 10,
            "publish_errors": 1,
            "messages_consumed": 10,
            "consume_errors": fails,
            "retries": fails,
            "dead_lettered": 0,
            "connection_errors": 0,
        }

    async def test_health_check_is_recorded_in_the_counters(self, bus: MessageBus) -> None:
        assert bus.metrics.health_check_status in ("unknown", "healthy")
        status = await bus.health_check()
        metrics = bus.metrics
        assert status.healthy, status.detail
        assert metrics.health_check_status == "healthy"
        assert metrics.last_health_check is not None
        assert (datetime.now(UTC) - metrics.last_health_check).total_seconds() < 10

    async def test_connection_callbacks_stay_quiet_while_the_broker_is_up(
        self, bus: MessageBus, topic: str, group: str
    ) -> None:
        """Registering works on every bus; the calls themselves are tested per broker by
        stopping a private server (tests/integration/*/…restart…, tests/integration/health)."""
        calls: list[str] = []

        async def reconnected() -> None:
            calls.append("reconnected")

        bus.register_reconnect_callback(reconnected)
        bus.register_disconnect_callback(lambda: calls.append("disconnected"))
        received = Collector()
        await bus.subscribe(topic, received, group=group)
        await bus.publish(topic, make_event(1))
        await received.wait_for(1)
        await bus.health_check()
        assert calls == []
        assert bus.metrics.reconnects == 0

    async def test_stress_many_publishers_and_consumers(self, bus: MessageBus, topic: str, group: str) -> None:
        members = [Collector() for _ in range(3)]
        for member in members:
            await bus.subscribe(topic, member, group=group)
        batches = [[make_event(p * 1000 + n, key=f"k{n % 13}") for n in range(500)] for p in range(4)]

        async def publisher(batch: list[ContractEvent]) -> None:
            for start in range(0, len(batch), 50):
                await bus.publish_batch(topic, batch[start : start + 50])

        await asyncio.gather(*(publisher(b) for b in batches))
        expected = {m.message_id for b in batches for m in b}

        def all_ids() -> set[str]:
            return set().union(*(m.ids() for m in members))

        await members[0].wait_until(lambda: all_ids() >= expected, timeout=60)
        assert all_ids() == expected

    async def test_close_is_idempotent_and_refuses_new_work(self, bus: MessageBus, topic: str) -> None:
        await bus.close()
        await bus.close()
        with pytest.raises(BusClosedError):
            await bus.publish(topic, make_event(1))


def bus_decodes(bus: MessageBus, body: bytes) -> DomainEvent:
    return JsonCodec().decode(body)


def _dedupe_keep_first(seqs: list[int]) -> list[int]:
    # At-least-once may redeliver; order is about first deliveries.
    return list(dict.fromkeys(seqs))


async def _wait_for_dead_letters(
    bus: MessageBus, topic: str, group: str, count: int, timeout: float = 20.0
) -> list[DeadLetter]:
    async with asyncio.timeout(timeout):
        while True:
            letters = await bus.dead_letters(topic, group=group)
            if len(letters) >= count:
                return letters
            await asyncio.sleep(0.1)
