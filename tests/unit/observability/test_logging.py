"""Structured logging: message facts as `extra` fields, BENTO_LOG_FORMAT=json, service.log_level."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from bento.adapters.memory import InProcessMessageBus, InProcessSettings
from bento.infrastructure.logging import configure_logging
from bento.testing.events import ContractEvent, make_event


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    monkeypatch.setenv("BENTO_LOG_FORMAT", "json")
    out = io.StringIO()
    configure_logging("INFO", stream=out)
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("bento").setLevel(logging.NOTSET)


async def _fail_once_then_give_up() -> ContractEvent:
    async def handle(message: ContractEvent) -> None:
        raise ValueError("no stock")

    sent = make_event(7, key="k").with_metadata(correlation_id="corr-7")
    async with InProcessMessageBus(InProcessSettings(max_attempts=2, retry_delays=[0.0])) as bus:
        await bus.subscribe("logged", handle, group="billing")  # type: ignore[arg-type]
        await bus.publish("logged", sent)
        for _ in range(200):
            if await bus.dead_letters("logged", group="billing"):
                break
            await asyncio.sleep(0.01)
    return sent


async def test_json_lines_carry_the_message_facts(stream: io.StringIO) -> None:
    sent = await _fail_once_then_give_up()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    about = [line for line in lines if line.get("message_id") == sent.message_id]
    assert [line["attempt"] for line in about] == [1, 2]
    assert [line["level"] for line in about] == ["WARNING", "ERROR"]
    for line in about:
        assert line["topic"] == "logged" and line["group"] == "billing"
        assert line["correlation_id"] == "corr-7" and line["error_type"] == "ValueError"
        assert line["logger"] == "bento.adapters.shared.delivery" and "no stock" in line["message"]


async def test_log_level_filters(stream: io.StringIO) -> None:
    configure_logging("ERROR", stream=stream)
    await _fail_once_then_give_up()
    levels = [json.loads(line)["level"] for line in stream.getvalue().splitlines()]
    assert levels == ["ERROR"]


def test_text_format_is_the_default(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO) -> None:
    monkeypatch.delenv("BENTO_LOG_FORMAT")
    out = io.StringIO()
    configure_logging("INFO", stream=out)
    logging.getLogger("bento.test").info("hello %s", "there", extra={"topic": "t"})
    assert out.getvalue().rstrip().endswith("INFO bento.test: hello there")
    assert sum(1 for h in logging.getLogger().handlers if h.get_name() == "bento") == 1
