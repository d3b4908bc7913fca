"""A wrong password and a missing virtual host are named as such, not as "unreachable"."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from bento.adapters.rabbitmq import RabbitMQMessageBus, RabbitMQSettings
from bento.application.errors import BrokerRefusedError


def _with(url: str, *, password: str | None = None, vhost: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if password is not None:
        user = netloc.rpartition("@")[0].partition(":")[0] or "guest"
        netloc = f"{user}:{password}@{netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{vhost}" if vhost is not None else parts.path))


async def test_a_wrong_password_is_an_authentication_failure(rabbitmq_url: str) -> None:
    settings = RabbitMQSettings(url=_with(rabbitmq_url, password="not-the-password"))
    with pytest.raises(BrokerRefusedError, match="authentication failed") as caught:
        async with RabbitMQMessageBus(settings):
            pass
    assert "not-the-password" not in str(caught.value)


async def test_a_missing_vhost_is_named(rabbitmq_url: str) -> None:
    settings = RabbitMQSettings(url=_with(rabbitmq_url, vhost="bento-no-such-vhost"))
    with pytest.raises(BrokerRefusedError, match="virtual host 'bento-no-such-vhost' does not exist"):
        async with RabbitMQMessageBus(settings):
            pass
