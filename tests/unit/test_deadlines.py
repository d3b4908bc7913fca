import asyncio
import time

import pytest

from bento.adapters.shared.deadlines import run_with_deadline


async def test_a_handler_over_its_deadline_raises_timeout_error() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"longer than 0\.2"):
        await run_with_deadline(asyncio.sleep(10), 0.2)
    assert time.monotonic() - started < 2
    # The task is not left cancelled: it can keep awaiting.
    await asyncio.sleep(0.01)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_a_quick_handler_returns_its_result() -> None:
    async def answer() -> int:
        await asyncio.sleep(0.01)
        return 42

    assert await run_with_deadline(answer(), 5) == 42


async def test_an_outside_cancel_is_not_turned_into_a_timeout() -> None:
    task = asyncio.create_task(run_with_deadline(asyncio.sleep(10), 30))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_deadlines_of_concurrent_handlers_are_independent() -> None:
    slow = asyncio.create_task(run_with_deadline(asyncio.sleep(10), 0.3))
    fast = asyncio.create_task(run_with_deadline(asyncio.sleep(0.6), 5))
    with pytest.raises(TimeoutError):
        await slow
    await fast


async def test_handle_delivery_turns_an_overrunning_handler_into_a_retry() -> None:
    from bento.adapters.shared.delivery import Action, handle_delivery
    from bento.application.retry import RetryPolicy
    from bento.application.serialization import JsonCodec
    from bento.testing.events import make_event

    async def stuck(message: object) -> None:
        await asyncio.sleep(10)

    codec = JsonCodec()
    verdict = await handle_delivery(
        codec, stuck, codec.encode(make_event(1)), attempt=1, policy=RetryPolicy(max_attempts=2), timeout=0.2
    )
    assert verdict.action is Action.RETRY and verdict.error_type == "TimeoutError"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
