"""Publishing to the stream: subjects and headers per message, single and pipelined sends,
and the translation of nats-py failures into PublishError / BrokerUnavailableError."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from bento.adapters.nats._limits import fits, frame_bytes
from bento.adapters.nats._subjects import Layout, check_topic
from bento.adapters.nats.settings import NatsSettings
from bento.adapters.shared.delivery import KEY_HEADER
from bento.adapters.shared.limits import all_within_limit
from bento.adapters.shared.metrics import BusCounters
from bento.adapters.shared.wire_headers import WireEncoder
from bento.application.errors import BrokerUnavailableError, PublishError
from bento.domain.events import DomainEvent

logger = logging.getLogger(__name__)

#: Messages `batch` sends before awaiting their acks (below nats-py's 4000 in flight).
PUBLISH_WINDOW = 1000

_Prepared = tuple[str, bytes, dict[str, str] | None]


def _breaks_lines(text: str) -> bool:
    return "\r" in text or "\n" in text


class Publisher:
    """Stateless apart from the counters it bumps; the bus hands it a live JetStream context."""

    def __init__(
        self,
        settings: NatsSettings,
        layout: Layout,
        counters: BusCounters,
        wire: WireEncoder,
        max_payload: Callable[[], int],
    ) -> None:
        self.settings, self._layout, self._counters, self._wire = settings, layout, counters, wire
        self._max_payload = max_payload

    async def one(
        self,
        js: JetStreamContext,
        topic: str,
        body: bytes,
        key: str | None,
        key_header: str | None,
        headers: Mapping[str, str] | None,
        message_id: str | None,
    ) -> None:
        check_publish_topic(topic)
        prepared = self._prepare(topic, body, key, key_header, headers, message_id)
        self._check_size(topic, [prepared])
        subject, body, nats_headers = prepared
        try:
            ack = await js.publish(subject, body, headers=nats_headers, timeout=self.settings.publish_timeout)
        except (nats.errors.Error, TimeoutError) as exc:
            self._counters.publish_errors += 1
            raise self._error(topic, exc) from exc
        self._counters.messages_published += 1
        if ack.duplicate:
            logger.debug("JetStream dropped a duplicate of %s on %r (Nats-Msg-Id)", message_id, topic)

    async def batch(self, js: JetStreamContext, topic: str, messages: Sequence[DomainEvent]) -> None:
        check_publish_topic(topic)
        prepared = [
            self._prepare(topic, body, m.metadata.aggregate_id, None, headers, m.message_id)
            for m in messages
            for body, headers in (self._wire.encode(m, topic=topic),)
        ]
        all_within_limit((body for _, body, _ in prepared), self.settings.max_message_bytes, topic, self._counters)
        self._check_size(topic, prepared)  # body and headers against the server's max_payload
        confirmed = 0
        for start in range(0, len(prepared), PUBLISH_WINDOW):
            window = prepared[start : start + PUBLISH_WINDOW]
            try:
                failed = await self._window(js, window)
            except (nats.errors.Error, TimeoutError) as exc:
                self._counters.publish_errors += len(prepared) - confirmed
                raise self._error(topic, exc, sent=confirmed, total=len(prepared)) from exc
            confirmed += len(window) - len(failed)
            self._counters.messages_published += len(window) - len(failed)
            if failed:
                self._counters.publish_errors += len(failed)
                raise PublishError(
                    topic,
                    f"{len(failed)} of {len(window)} messages in a window were not acknowledged by the "
                    f"stream ({confirmed} of {len(prepared)} confirmed; first: "
                    f"{type(failed[0]).__name__}: {failed[0]})",
                )

    async def _window(self, js: JetStreamContext, window: list[_Prepared]) -> list[BaseException]:
        # No `wait_stall`: with it nats-py wraps every send in a task, which yields to the
        # loop per message and turns the pipeline into one socket write per message.
        futures: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self.settings.publish_timeout):
                for subject, body, headers in window:
                    futures.append(await js.publish_async(subject, body, headers=headers))
                results = await asyncio.gather(*futures, return_exceptions=True)
        except BaseException:
            for future in futures:
                future.cancel()  # releases nats-py's in-flight slots
            raise
        return [r for r in results if isinstance(r, BaseException)]

    def _prepare(
        self,
        topic: str,
        body: bytes,
        key: str | None,
        key_header: str | None,
        headers: Mapping[str, str] | None,
        message_id: str | None,
    ) -> _Prepared:
        """Subject (partition from the key, else the id or body, so a retry lands on the
        same subject) and NATS headers (user headers, made line-safe, and Nats-Msg-Id)."""
        partition = self._layout.partition_of(key or message_id or body)
        nats_headers = dict(headers) if headers else {}
        if headers and _breaks_lines("".join(headers.values())):
            nats_headers = {k: v.replace("\r", " ").replace("\n", " ") for k, v in headers.items()}
        if key_header:
            nats_headers[KEY_HEADER] = key_header
        if message_id:
            nats_headers.setdefault("Nats-Msg-Id", f"{message_id}:{topic}")
        return self._layout.publish_subject(topic, partition), body, nats_headers or None

    def _check_size(self, topic: str, prepared: list[_Prepared]) -> None:
        """Refuse, before anything is sent, a message the server would answer with -ERR
        (which makes nats-py close the client): body plus headers over `max_payload`."""
        limit = self._max_payload()
        for position, (_, body, headers) in enumerate(prepared):
            if fits(body, headers, limit):
                continue
            size = frame_bytes(body, headers)
            if size > limit:
                self._counters.publish_errors += len(prepared)
                where = "" if len(prepared) == 1 else f"message {position} of the batch "
                raise PublishError(
                    topic,
                    f"{where}is {size} bytes with its headers; the server accepts at most {limit} "
                    "(its max_payload); nothing was sent",
                )

    def _error(self, topic: str, exc: BaseException, *, sent: int = 0, total: int = 1) -> Exception:
        if isinstance(exc, nats.js.errors.NoStreamResponseError):
            return PublishError(
                topic,
                f"no JetStream stream captures '{self.settings.subject_prefix}.>'; "
                "was the stream deleted? restart the bus to re-declare it",
            )
        if isinstance(exc, nats.errors.ConnectionClosedError):
            return BrokerUnavailableError("NATS", self.settings.address, "connection closed")
        if isinstance(exc, TimeoutError):
            what = "the message" if total == 1 else f"{total - sent} of {total} messages"
            return PublishError(
                topic,
                f"no acknowledgement within {self.settings.publish_timeout}s "
                f"(server down or reconnecting); {what} may or may not be stored",
            )
        return PublishError(topic, f"{type(exc).__name__}: {exc}")


def check_publish_topic(topic: str) -> None:
    problem = check_topic(topic, allow_wildcards=False)
    if problem is not None:
        raise PublishError(topic, problem)
