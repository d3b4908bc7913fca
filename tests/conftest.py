"""Top-level test configuration: removes what the run left on the shared RabbitMQ."""

from __future__ import annotations

import pytest

from servers import rabbitmq_litter

_BEFORE = pytest.StashKey[rabbitmq_litter.BrokerNames | None]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.stash[_BEFORE] = rabbitmq_litter.snapshot()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.stash.get(_BEFORE, None)
    if before is not None:
        removed = rabbitmq_litter.remove_litter(before)
        if removed:
            session.config.get_terminal_writer().line(f"removed {removed} queues/exchanges this run left on RabbitMQ")
