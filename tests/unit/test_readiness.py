"""What `bento run`'s /readyz checks: every store and bus the runtime opened, each by a real
call, so one that stops answering is named."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dependency_injector import providers

from bento.adapters.memory.inbox import InMemoryInbox
from bento.application.errors import BrokerUnavailableError
from bento.infrastructure.container import BentoContainer, shutdown
from bento.infrastructure.settings import BentoSettings
from bento.managers.health import collect_health, readiness_checks


@pytest.fixture(autouse=True)
def _no_config_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


class SwitchableInbox(InMemoryInbox):
    """An inbox whose backend can be taken away."""

    def __init__(self) -> None:
        super().__init__()
        self.reachable = True

    async def is_processed(self, consumer: str, message_id: str) -> bool:
        if not self.reachable:
            raise BrokerUnavailableError("Redis", "inbox", "connection refused")
        return await super().is_processed(consumer, message_id)


async def switchable(inbox: SwitchableInbox) -> AsyncIterator[SwitchableInbox]:
    yield inbox


async def test_every_opened_component_is_checked_and_a_failing_one_is_named() -> None:
    inbox = SwitchableInbox()
    container = BentoContainer()
    container.settings.override(providers.Object(BentoSettings()))
    container.inbox.override(providers.Resource(switchable, inbox))
    await container.runtime()
    report = await collect_health(container, timeout=1.0, checks=readiness_checks(container))
    assert {c.name for c in report.components} == {"event:default", "event_store", "inbox", "checkpoint_store"}
    assert report.healthy
    inbox.reachable = False
    report = await collect_health(container, timeout=1.0, checks=readiness_checks(container))
    assert [c.name for c in report.components if not c.healthy] == ["inbox"]
    assert "connection refused" in next(c.detail for c in report.components if c.name == "inbox")
    await shutdown(container)


async def test_nothing_is_opened_to_be_checked() -> None:
    container = BentoContainer()
    container.settings.override(providers.Object(BentoSettings()))
    assert readiness_checks(container) == {}
    assert not container.inbox.providers["memory"].initialized
