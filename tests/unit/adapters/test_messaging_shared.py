"""The pieces every broker adapter shares: seed 003 counters, reconnect callbacks, lifecycle, lazy imports."""

from __future__ import annotations

import dataclasses
import logging
import sys

import pytest

from bento.adapters.shared.lazy import lazy_classes
from bento.adapters.shared.lifecycle import StartsAndCloses, opened
from bento.adapters.shared.metrics import BusCounters, BusMetrics
from bento.adapters.shared.reconnect import ReconnectCallbacks
from bento.application.errors import BusClosedError, MissingExtraError

SEED_003_FIELDS = {
    "messages_published",
    "messages_consumed",
    "publish_errors",
    "consume_errors",
    "connection_errors",
    "last_health_check",
    "health_check_status",
}


def test_counters_snapshot_is_a_frozen_copy_with_the_seed_003_fields() -> None:
    counters = BusCounters()
    assert counters.health_check_status == "unknown" and counters.last_health_check is None
    counters.messages_published += 3
    counters.record_health_check(False)
    snapshot = counters.snapshot()
    counters.messages_published += 1
    assert isinstance(snapshot, BusMetrics) and snapshot.messages_published == 3
    assert snapshot.health_check_status == "unhealthy" and snapshot.last_health_check is not None
    assert snapshot.last_health_check.tzinfo is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.messages_published = 0  # type: ignore[misc]
    assert set(counters.as_dict()) >= SEED_003_FIELDS
    assert counters.as_dict().keys() == snapshot.as_dict().keys()


async def test_reconnect_callbacks_run_in_order_and_a_failure_is_counted_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counters = BusCounters()
    callbacks = ReconnectCallbacks(counters)
    calls: list[str] = []

    def failing() -> None:
        raise RuntimeError("re-initialisation failed")

    async def async_one() -> None:
        calls.append("async")

    def sync_one() -> None:
        calls.append("sync")

    callbacks.register(failing)
    callbacks.register(async_one)
    callbacks.register(sync_one)
    with caplog.at_level(logging.ERROR):
        await callbacks.run()
    assert calls == ["async", "sync"]
    assert counters.connection_errors == 1
    assert "re-initialisation failed" in caplog.text


class _Thing(StartsAndCloses):
    def __init__(self) -> None:
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def close(self) -> None:
        self.events.append("close")


async def test_async_with_starts_and_closes_even_on_error() -> None:
    thing = _Thing()
    with pytest.raises(ValueError):
        async with thing as entered:
            assert entered is thing
            raise ValueError("boom")
    assert thing.events == ["start", "close"]


def test_opened_names_the_state() -> None:
    assert opened("the X bus", "publish to 't'", 42, closed=False) == 42
    with pytest.raises(BusClosedError, match="cannot publish to 't': the X bus is closed"):
        opened("the X bus", "publish to 't'", 42, closed=True)
    with pytest.raises(BusClosedError, match="not started"):
        opened("the X bus", "publish to 't'", None, closed=False)


def test_lazy_classes_imports_on_demand_and_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    getattr_ = lazy_classes(
        "bento.adapters.memory",
        adapter="Demo",
        extra="demo",
        client="json",
        classes={"InProcessMessageBus": ".message_bus"},
    )
    assert getattr_("InProcessMessageBus").__name__ == "InProcessMessageBus"
    with pytest.raises(AttributeError, match="no attribute 'Other'"):
        getattr_("Other")
    monkeypatch.setitem(sys.modules, "json", None)
    with pytest.raises(MissingExtraError, match=r"bento-ddd\[demo\]"):
        getattr_("InProcessMessageBus")
