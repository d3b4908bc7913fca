"""Seed 003's health-check publisher and subscriber checker on the in-process bus (the same
code runs on every bus: it uses the MessageBus port only; the broker outage is tested in
tests/integration/health)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bento.adapters.memory import InProcessMessageBus
from bento.application.errors import ConfigurationError
from bento.application.health_check import HealthCheckPublisher, HealthCheckSubscriber
from bento.application.ports.capabilities import HealthStatus
from bento.infrastructure.container import BentoContainer, shutdown
from bento.infrastructure.health import collect_health
from bento.infrastructure.settings import load_settings


async def _until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_subscriber_is_healthy_while_messages_arrive_and_fails_once_they_stop() -> None:
    failures: list[HealthStatus] = []
    recoveries: list[HealthStatus] = []

    async def recovered(status: HealthStatus) -> None:
        recoveries.append(status)

    async with InProcessMessageBus() as bus:
        checker = HealthCheckSubscriber(
            bus, topic="hc.unit", max_age=0.3, check_interval=0.02, on_failure=failures.append, on_recovery=recovered
        )
        async with checker:
            publisher = HealthCheckPublisher(bus, topic="hc.unit", interval=0.05, source="unit-test")
            async with publisher:
                await _until(lambda: checker.received >= 3)
                status = await checker.status()
                assert status.healthy, status.detail
                assert "unit-test" in status.detail and checker.last_source == "unit-test"
                assert (await publisher.status()).healthy
            stopped = time.monotonic()
            await _until(lambda: checker.healthy is False, timeout=2.0)
            took = time.monotonic() - stopped
            assert 0.25 <= took <= 0.3 + 0.2, took  # max age, plus at most a few check intervals
            assert len(failures) == 1 and not failures[0].healthy
            assert "max age 0.3s" in failures[0].detail
            await asyncio.sleep(0.1)
            assert len(failures) == 1  # once per outage, not once per check
            async with HealthCheckPublisher(bus, topic="hc.unit", interval=0.05):
                await _until(lambda: checker.healthy is True)
            assert len(recoveries) == 1 and recoveries[0].healthy
            assert checker.failures == 1


async def test_subscriber_without_any_publisher_turns_unhealthy_after_max_age() -> None:
    async with InProcessMessageBus() as bus, HealthCheckSubscriber(bus, topic="hc.none", max_age=0.1) as checker:
        assert (await checker.status()).healthy  # within the first max_age
        await asyncio.sleep(0.15)
        status = await checker.status()
        assert not status.healthy and "no health message" in status.detail


async def test_publisher_reports_a_failed_round_and_calls_back_once() -> None:
    failures: list[HealthStatus] = []
    bus = InProcessMessageBus()
    await bus.start()
    publisher = HealthCheckPublisher(bus, topic="hc.pub", interval=0.02, on_failure=failures.append)
    async with publisher:
        assert (await publisher.status()).healthy
        await bus.close()
        await _until(lambda: bool(failures))
        await asyncio.sleep(0.1)
    assert len(failures) == 1
    assert "closed" in failures[0].detail
    assert not (await publisher.status()).healthy


async def test_a_failing_callback_is_logged_and_the_checker_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    def broken(status: HealthStatus) -> None:
        raise RuntimeError("callback bug")

    async with (
        InProcessMessageBus() as bus,
        HealthCheckSubscriber(bus, topic="hc.cb", max_age=0.05, check_interval=0.01, on_failure=broken) as checker,
    ):
        await _until(lambda: checker.healthy is False)
        await asyncio.sleep(0.05)
        assert not (await checker.status()).healthy
    assert "callback bug" in caplog.text


def test_max_age_must_exceed_the_interval(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEALTH__INTERVAL", "10")
    monkeypatch.setenv("HEALTH__MAX_AGE", "5")
    with pytest.raises(ConfigurationError, match="max_age"):
        load_settings()


async def test_container_runs_the_checkers_and_reports_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no config/bento.yaml
    monkeypatch.setenv("HEALTH__ENABLED", "true")
    monkeypatch.setenv("HEALTH__TOPIC", "hc.container")
    monkeypatch.setenv("HEALTH__INTERVAL", "0.05")
    monkeypatch.setenv("HEALTH__MAX_AGE", "1")
    container = BentoContainer()
    try:
        checks = await container.health_checks()
        assert checks.publisher is not None and checks.subscriber is not None
        subscriber = checks.subscriber
        await _until(lambda: subscriber.received >= 2)
        report = await collect_health(container)
        by_name = {c.name: c for c in report.components}
        assert by_name["health_check:publisher"].healthy
        assert by_name["health_check:subscriber"].healthy
        assert by_name["event:default"].healthy
        assert report.healthy
    finally:
        await shutdown(container)


async def test_disabled_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    container = BentoContainer()
    try:
        checks = await container.health_checks()
        assert checks.publisher is None and checks.subscriber is None
        assert "health_check:subscriber" not in {c.name for c in (await collect_health(container)).components}
    finally:
        await shutdown(container)


async def test_a_health_message_older_than_max_age_does_not_count() -> None:
    """What a broker redelivers after an outage was sent before it: it proves nothing now."""
    from datetime import timedelta

    from bento.application.health_check import HealthCheckMessage
    from bento.domain.metadata import utc_now

    async with (
        InProcessMessageBus() as bus,
        HealthCheckSubscriber(bus, topic="hc.stale", max_age=0.2, check_interval=0.01) as checker,
    ):
        old = HealthCheckMessage(source="before-outage", sequence=1, timestamp=utc_now() - timedelta(seconds=5))
        await asyncio.sleep(0.25)
        await bus.publish("hc.stale", old)
        await _until(lambda: checker.stale == 1)
        assert checker.received == 0
        assert not (await checker.status()).healthy
        await bus.publish("hc.stale", HealthCheckMessage(source="after", sequence=2))
        await _until(lambda: checker.healthy is True)
        assert checker.last_source == "after"
