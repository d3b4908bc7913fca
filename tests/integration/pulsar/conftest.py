"""A private pulsar-lite broker per test module (its own port and data folder).

`BENTO_TEST_PULSAR_URL` points the tests at an Apache Pulsar instead; then the
`real_pulsar` tests (features pulsar-lite lacks) run too. Without it they are
reported as skipped with the reason. Under CI=true a broker that cannot be started
or reached fails the run (require_tcp)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from servers import require_tcp
from servers.pulsar_lite import PulsarLite

REAL_PULSAR_URL = os.environ.get("BENTO_TEST_PULSAR_URL", "")
START_COMMAND = "pip install pulsar-lite (the tests start it), or set BENTO_TEST_PULSAR_URL"


def real_pulsar_reason(missing: str) -> str:
    return f"needs Apache Pulsar (pulsar-lite lacks {missing}); set BENTO_TEST_PULSAR_URL"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if REAL_PULSAR_URL:
        return
    for item in items:
        marker = item.get_closest_marker("real_pulsar")
        if marker is not None:
            missing = marker.kwargs.get("lacks", "this feature")
            item.add_marker(pytest.mark.skip(reason=real_pulsar_reason(missing)))


@pytest.fixture(scope="module")
def pulsar_broker() -> Iterator[PulsarLite | None]:
    """The private broker, or None when the tests run against BENTO_TEST_PULSAR_URL."""
    if REAL_PULSAR_URL:
        yield None
        return
    broker = PulsarLite()
    try:
        broker.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        broker.cleanup()
        require_tcp(f"pulsar-lite ({exc})", "127.0.0.1", broker.port, START_COMMAND)
        raise
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture(scope="module")
def pulsar_url(pulsar_broker: PulsarLite | None) -> str:
    url = REAL_PULSAR_URL or (pulsar_broker.url if pulsar_broker else "")
    parsed = urlparse(url)
    require_tcp("Pulsar", parsed.hostname or "127.0.0.1", parsed.port or 6650, START_COMMAND)
    return url


@pytest.fixture(scope="session")
def pulsar_is_real() -> bool:
    """True when the tests run against an Apache Pulsar (BENTO_TEST_PULSAR_URL)."""
    return bool(REAL_PULSAR_URL)


@pytest.fixture
def unique_topic() -> str:
    return f"it.{uuid.uuid4().hex[:12]}"
