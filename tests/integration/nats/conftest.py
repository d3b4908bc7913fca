"""Fixtures for the NATS JetStream adapter: a real server at 127.0.0.1:4222, and a
stream plus subject prefix of its own per test, deleted afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import nats.errors
import pytest
from nats.aio.client import Client

from bento.adapters.nats import NatsSettings
from bento.testing.services import require_tcp

NATS_URL = "nats://127.0.0.1:4222"
START_COMMAND = "nats-server -js (JetStream enabled) on 127.0.0.1:4222"


@pytest.fixture
def nats_url() -> str:
    require_tcp("NATS JetStream", "127.0.0.1", 4222, START_COMMAND)
    return NATS_URL


@pytest.fixture
async def nats_settings(nats_url: str) -> AsyncIterator[Callable[..., NatsSettings]]:
    """A factory of settings sharing one unique stream and prefix; streams deleted after."""
    suffix = uuid.uuid4().hex[:10]
    stream, prefix = f"BT_{suffix}", f"bt{suffix}"

    def make(**overrides: object) -> NatsSettings:
        fields: dict[str, object] = {
            "servers": [nats_url],
            "stream_name": stream,
            "subject_prefix": prefix,
            "max_attempts": 3,
            "retry_delays": [0.05, 0.1],
            "fetch_timeout": 0.5,
            "drain_timeout": 2.0,
            "partitions": 8,
        }
        fields.update(overrides)
        return NatsSettings.model_validate(fields)

    yield make
    nc = Client()
    await nc.connect(nats_url)
    js = nc.jetstream()
    for name in (stream, f"{stream}_DLQ"):
        with contextlib.suppress(nats.errors.Error):  # a test may never have created it
            await js.delete_stream(name)
    await nc.close()
