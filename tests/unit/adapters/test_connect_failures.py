"""A broker or server that is not there is said once, quickly, in Bento's own words: no driver
log lines or tracebacks before the one-line BrokerUnavailableError. (Loopback ports nobody
listens on; no server is needed.)"""

from __future__ import annotations

import logging
import time

import pytest

from bento.application.errors import BrokerUnavailableError
from servers import free_port


async def test_nats_unreachable_is_reported_within_the_connect_timeout(caplog: pytest.LogCaptureFixture) -> None:
    from bento.adapters.nats import NatsMessageBus, NatsSettings

    settings = NatsSettings(servers=[f"nats://127.0.0.1:{free_port()}"])
    assert settings.connect_timeout <= 2.0
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(BrokerUnavailableError):
        async with NatsMessageBus(settings):
            pass
    assert time.monotonic() - started < settings.connect_timeout + 1.0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_pulsar_unreachable_is_said_at_once_without_client_log_lines(capfd: pytest.CaptureFixture[str]) -> None:
    from bento.adapters.pulsar import PulsarMessageBus, PulsarSettings

    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match="unreachable"):
        async with PulsarMessageBus(PulsarSettings(service_url=f"pulsar://127.0.0.1:{free_port()}")):
            pass
    assert time.monotonic() - started < 2.0
    captured = capfd.readouterr()
    assert "ClientConnection" not in captured.out + captured.err


async def test_clickhouse_server_unreachable_logs_no_driver_traceback(caplog: pytest.LogCaptureFixture) -> None:
    from bento.adapters.clickhouse import ClickHouseSettings
    from bento.adapters.clickhouse.engine import open_engine

    settings = ClickHouseSettings(mode="server", port=free_port(), connect_timeout=1.0, pool_size=1)
    with caplog.at_level(logging.WARNING), pytest.raises(BrokerUnavailableError, match="unreachable"):
        async with open_engine(settings):
            pass
    assert not [r for r in caplog.records if r.name.startswith("clickhouse_driver")], caplog.text
    assert logging.getLogger("clickhouse_driver").level == logging.NOTSET  # restored after the attempt
