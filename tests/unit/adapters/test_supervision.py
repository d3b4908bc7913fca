"""Supervisor: a consume loop that raises is logged, counted, reported unhealthy and restarted."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bento.adapters.memory import InProcessMessageBus
from bento.adapters.shared.metrics import BusCounters
from bento.adapters.shared.supervision import Supervisor


async def test_a_failing_loop_is_logged_counted_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    counters = BusCounters()
    supervisor = Supervisor("test bus", counters)
    runs: list[int] = []
    done = asyncio.Event()

    async def loop() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RecursionError("maximum recursion depth exceeded")
        done.set()

    assert supervisor.problem() is None
    with caplog.at_level(logging.ERROR):
        task = supervisor.spawn("reader of 'orders'", loop)
        async with asyncio.timeout(5):
            await done.wait()
            await task
    assert len(runs) == 3 and counters.loop_failures == 2 and supervisor.failures == 2
    problem = supervisor.problem()
    assert problem is not None and "reader of 'orders'" in problem and "RecursionError" in problem
    assert "restarting" in caplog.text and "Traceback" in caplog.text


async def test_the_problem_clears_after_unhealthy_for() -> None:
    supervisor = Supervisor("test bus", unhealthy_for=0.05)
    supervisor.failed("callback", ValueError("x" * 100_000))
    problem = supervisor.problem()
    assert problem is not None and len(problem) < 500
    await asyncio.sleep(0.1)
    assert supervisor.problem() is None and supervisor.failures == 1


async def test_a_loop_is_not_restarted_once_its_owner_stops() -> None:
    supervisor = Supervisor("test bus")
    runs = 0

    async def loop() -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError("boom")

    await asyncio.wait_for(supervisor.spawn("loop", loop, stopping=lambda: True), 2)
    assert runs == 1


async def test_bus_health_reports_a_recent_loop_failure() -> None:
    async with InProcessMessageBus() as bus:
        assert (await bus.health_check()).healthy
        bus.supervisor.failed("worker of 'x'", RuntimeError("boom"))
        status = await bus.health_check()
        assert not status.healthy and "worker of 'x'" in status.detail
