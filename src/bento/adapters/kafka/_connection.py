"""The client options every aiokafka object of one bus shares, topic naming, and topic creation.

Security (TLS and SASL) is built once from the settings; the credentials come from the
settings or the URL and never appear in a message (`settings.address` is masked).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from bento.adapters.kafka.settings import KafkaSettings
from bento.application.errors import BrokerUnavailableError

logger = logging.getLogger(__name__)

_TOPIC = re.compile(r"^[A-Za-z0-9._-]+$")
#: Kafka's limit on a topic name.
MAX_TOPIC_LENGTH = 249
#: CreateTopics error code meaning "it is there already".
TOPIC_ALREADY_EXISTS = 36


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Bootstrap servers, client id and security, for producer, consumers and admin alike."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers(),
        "client_id": settings.client_id,
        "security_protocol": settings.protocol(),
    }
    if settings.protocol() in {"SSL", "SASL_SSL"}:
        options["ssl_context"] = _ssl_context(settings)
    credentials = settings.credentials()
    if settings.protocol().startswith("SASL") and credentials is not None:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"], options["sasl_plain_password"] = credentials
    return options


def _ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.ssl_cafile, certfile=settings.ssl_certfile, keyfile=settings.ssl_keyfile
    )
    context.check_hostname = settings.ssl_check_hostname
    return context


def topic_problem(topic: str) -> str | None:
    """Why `topic` cannot be a Kafka topic name, or None."""
    if not topic:
        return "the topic is empty"
    if not _TOPIC.match(topic):
        return "Kafka topic names hold only letters, digits, '.', '_' and '-'"
    if len(topic) > MAX_TOPIC_LENGTH:
        return f"Kafka topic names are at most {MAX_TOPIC_LENGTH} characters"
    return None


class Topics:
    """Names topics and makes sure they exist before the first send or subscribe.

    Known topics are remembered so the hot path is one set look-up; `forget()` after a
    reconnect (a broker that lost its memory, like tansu, lost its topics too)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._known: set[str] = set()
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._admin: AIOKafkaAdminClient | None = None

    def name(self, topic: str) -> str:
        return f"{self._settings.topic_prefix}{topic}"

    def dead_letter_name(self, topic: str, group: str | None) -> str:
        """`<topic>.<group>.dlq` (broadcast subscribers share `<topic>.broadcast.dlq`)."""
        return f"{self.name(topic)}.{group if group is not None else 'broadcast'}.dlq"

    def is_known(self, name: str) -> bool:
        return name in self._known

    def forget(self) -> None:
        self._known.clear()

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(
            **client_options(self._settings), request_timeout_ms=int(self._settings.publish_timeout * 1000)
        )
        try:
            await admin.start()
        except (KafkaError, OSError) as exc:
            await admin.close()
            raise BrokerUnavailableError("Kafka", self._settings.address, f"{type(exc).__name__}: {exc}") from exc
        self._admin = admin

    async def close(self) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            await admin.close()

    async def ensure(self, name: str, *, partitions: int | None = None) -> None:
        """Create `name` unless it exists (or check it exists, when `create_topics` is off).
        Concurrent callers for one topic share one request."""
        if name in self._known:
            return
        pending = self._pending.get(name)
        if pending is None:
            pending = self._pending[name] = asyncio.ensure_future(self._ensure(name, partitions))
            pending.add_done_callback(lambda _: self._pending.pop(name, None))
        await asyncio.shield(pending)

    async def _ensure(self, name: str, partitions: int | None) -> None:
        admin = self._admin
        if admin is None:
            raise BrokerUnavailableError("Kafka", self._settings.address, "the admin client is not started")
        settings = self._settings
        if not settings.create_topics:
            if name not in await admin.list_topics():
                raise LookupError(f"topic {name!r} does not exist and create_topics is off; create it first")
            self._known.add(name)
            return
        topic = NewTopic(name, partitions or settings.partitions, settings.replication_factor)
        response = await admin.create_topics([topic], timeout_ms=int(settings.publish_timeout * 1000))
        for _, code, message in _topic_errors(response):
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise LookupError(f"the broker refused to create topic {name!r}: error {code} ({message})")
            if code == 0:
                logger.info("created Kafka topic %s", name)
        self._known.add(name)

    async def delete(self, names: list[str]) -> list[str]:
        """Delete those of `names` that exist; the names deleted."""
        admin = self._admin
        if admin is None:
            raise BrokerUnavailableError("Kafka", self._settings.address, "the admin client is not started")
        present = set(await admin.list_topics())
        doomed = [name for name in names if name in present]
        if doomed:
            await admin.delete_topics(doomed, timeout_ms=int(self._settings.publish_timeout * 1000))
        self._known.difference_update(names)
        return doomed

    async def exists(self, name: str) -> bool:
        if name in self._known:
            return True
        admin = self._admin
        if admin is None:
            return False
        return name in await admin.list_topics()


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    """(topic, error code, message) from any CreateTopics response version."""
    found: list[tuple[str, int, str | None]] = []
    for entry in response.topic_errors:
        topic, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        found.append((topic, code, message))
    return found
