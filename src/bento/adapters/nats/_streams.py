"""Streams created or updated from settings, and dead letters read back from theirs.

Two streams: `{stream_name}` captures `{prefix}.>` (every topic and partition) and
`{stream_name}_DLQ` captures `{prefix}_dlq.>` (dead letters by group and topic). Both
are (re)declared at start and after a reconnect, so a server that lost a memory
stream, or settings that changed retention, converge without an operator.
"""

from __future__ import annotations

import logging

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from bento.adapters.nats._subjects import Layout
from bento.adapters.nats.settings import NatsSettings
from bento.adapters.shared.dead_letters import letter
from bento.application.errors import BrokerUnavailableError, ConfigurationError
from bento.application.ports.message_bus import DeadLetter

logger = logging.getLogger(__name__)


def stream_configs(settings: NatsSettings) -> list[StreamConfig]:
    storage = StorageType.FILE if settings.storage == "file" else StorageType.MEMORY
    main = StreamConfig(
        name=settings.stream_name,
        description="Bento topics: {prefix}.p{partition}.{topic}",
        subjects=[f"{settings.subject_prefix}.>"],
        storage=storage,
        num_replicas=settings.replicas,
        max_age=settings.max_age,
        max_bytes=settings.max_bytes,
        max_msgs=settings.max_msgs,
        duplicate_window=settings.duplicate_window,
    )
    dead = StreamConfig(
        name=settings.dead_letter_stream,
        description="Bento dead letters: {prefix}_dlq.{group}.{topic}",
        subjects=[f"{settings.dead_letter_prefix}.>"],
        storage=storage,
        num_replicas=settings.replicas,
        max_age=settings.dead_letter_max_age,
        duplicate_window=settings.duplicate_window,
    )
    return [main, dead]


async def ensure_streams(js: JetStreamContext, settings: NatsSettings) -> None:
    """Update each stream to match the settings, creating it when missing.

    A refused change (another stream already captures the subjects, or a field
    JetStream cannot change such as storage) is a ConfigurationError naming both."""
    where = settings.address
    for config in stream_configs(settings):
        try:
            try:
                await js.update_stream(config)
            except nats.js.errors.NotFoundError:
                await js.add_stream(config)
        except nats.js.errors.ServiceUnavailableError as exc:
            raise BrokerUnavailableError("NATS JetStream", where, f"JetStream is disabled ({exc})") from exc
        except nats.js.errors.APIError as exc:
            raise ConfigurationError(
                [
                    f"stream {config.name!r} (subjects {config.subjects}) was refused by the server: "
                    f"{exc.description or exc}"
                ]
            ) from exc
        except nats.errors.NoRespondersError as exc:
            raise BrokerUnavailableError("NATS JetStream", where, "JetStream is not enabled") from exc
        except nats.errors.Error as exc:
            raise BrokerUnavailableError("NATS JetStream", where, f"{type(exc).__name__}: {exc}") from exc


async def read_dead_letters(
    js: JetStreamContext, settings: NatsSettings, layout: Layout, topic: str, group: str | None, limit: int | None
) -> list[DeadLetter]:
    """Oldest first (every letter when `limit` is None), without removing anything: a
    throw-away consumer with no acks reads the dead-letter subject of (group, topic) and is
    deleted afterwards. A letter's id is its sequence in the dead-letter stream."""
    stream = settings.dead_letter_stream
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.NONE,
        filter_subject=layout.dead_letter_subject(group, topic),
        inactive_threshold=30.0,
    )
    info = await js.add_consumer(stream, config)
    wanted = info.num_pending or 0 if limit is None else min(limit, info.num_pending or 0)
    letters: list[DeadLetter] = []
    psub = None
    try:
        if wanted:
            psub = await js.pull_subscribe_bind(info.name, stream)
        while len(letters) < wanted:
            try:
                batch = await psub.fetch(wanted - len(letters), timeout=2.0) if psub else []
            except (nats.errors.TimeoutError, TimeoutError):
                logger.warning("dead letters of %r ended early: %d of %d read", topic, len(letters), wanted)
                break
            letters.extend(_to_dead_letter(msg, topic, group) for msg in batch)
    finally:
        if psub is not None:
            try:
                await psub.unsubscribe()
            except nats.errors.Error as exc:  # the consumer is deleted next anyway
                logger.debug("reader subscription already gone: %s", exc)
        try:
            await js.delete_consumer(stream, info.name)
        except nats.errors.Error as exc:
            logger.info("reader consumer %s not deleted (%s); it expires in 30 s", info.name, exc)
    return letters if limit is None else letters[:limit]


def _to_dead_letter(msg: Msg, topic: str, group: str | None) -> DeadLetter:
    return letter(topic, group, msg.data, dict(msg.headers or {}), str(msg.metadata.sequence.stream))
