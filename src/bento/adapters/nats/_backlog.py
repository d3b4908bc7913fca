"""BacklogProbe on NATS JetStream: the durable consumer's `num_pending` and the dead-letter
subject's message count (JetStream API calls only; nothing is created or consumed).

A per-key ordered group is one consumer per partition subject, so its figure is their sum."""

from __future__ import annotations

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from bento.adapters.nats._subjects import Layout
from bento.adapters.nats.settings import NatsSettings
from bento.application.errors import BrokerUnavailableError
from bento.application.ports.backlog import Backlog


async def probe(js: JetStreamContext, settings: NatsSettings, layout: Layout, topic: str, group: str) -> Backlog:
    try:
        waiting = await _pending(js, settings, layout.consumer_name(group, topic))
        if waiting is None:
            parts = [
                await _pending(js, settings, layout.consumer_name(group, topic, p)) for p in range(settings.partitions)
            ]
            known = [n for n in parts if n is not None]
            waiting = sum(known) if known else None
        subject = layout.dead_letter_subject(group, topic)
        info = await js.stream_info(settings.dead_letter_stream, subjects_filter=subject)
    except nats.js.errors.NotFoundError:
        return Backlog(topic, group, None, None)
    except nats.errors.Error as exc:
        raise BrokerUnavailableError("NATS JetStream", settings.address, f"{type(exc).__name__}: {exc}") from exc
    dead = (info.state.subjects or {}).get(subject, 0)
    return Backlog(topic, group, waiting, dead)


async def _pending(js: JetStreamContext, settings: NatsSettings, consumer: str) -> int | None:
    try:
        info = await js.consumer_info(settings.stream_name, consumer)
    except nats.js.errors.NotFoundError:
        return None
    return int(info.num_pending or 0)
