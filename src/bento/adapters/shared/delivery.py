"""One delivery attempt, decided the same way by every MessageBus adapter.

An adapter receives a body, calls `handle_delivery`, and acts on the verdict:
ACK it, RETRY it after `verdict.delay` seconds, or DEAD-letter it with
`verdict.error_type` / `verdict.error_message` (header names below). Keeping the
decision here means every broker classifies poison and undecodable messages alike.

`handle_delivery` never raises (except CancelledError): a body over `max_bytes`, or one
that fails to decode in any way, is dead-lettered at once; a handler's failure is
retried or dead-lettered. What remains for an adapter's loop to guard against is its
own bugs and the broker, which `supervision.Supervisor` does.
"""

from __future__ import annotations

import enum
import logging
from asyncio import CancelledError, current_task
from collections import OrderedDict
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, replace
from time import perf_counter
from typing import Any

from bento.adapters.shared.deadlines import watchdog
from bento.application import telemetry
from bento.application.errors import DeserializationError, MessageTooLargeError
from bento.application.ports.message_bus import MessageHandler
from bento.application.retry import RetryPolicy
from bento.application.serialization import JsonCodec
from bento.application.wire import Transport
from bento.domain.errors import clipped, quoted
from bento.domain.events import DomainEvent
from bento.domain.metadata import current_message, utc_now

logger = logging.getLogger(__name__)

#: Header names a dead-lettered message carries, on every broker.
ERROR_TYPE_HEADER = "x-bento-error-type"
ERROR_MESSAGE_HEADER = "x-bento-error-message"
ATTEMPTS_HEADER = "x-bento-attempts"
ORIGINAL_TOPIC_HEADER = "x-bento-original-topic"
MESSAGE_ID_HEADER = "x-bento-message-id"
KEY_HEADER = "x-bento-key"
#: When the message was dead-lettered (its last failure), ISO 8601 UTC.
FAILED_AT_HEADER = "x-bento-failed-at"
#: When its first delivery failed; set by the retry paths that carry headers (and at once for a
#: message dead-lettered on its first delivery).
FIRST_FAILED_AT_HEADER = "x-bento-first-failed-at"
#: A requeued dead letter is for this group only ("" for broadcast subscribers); the other groups
#: on the topic acknowledge it without running their handler (see `handle_delivery`).
REPLAY_GROUP_HEADER = "x-bento-replay-group"
#: The dead letter (its `letter_id`) a requeued message is a copy of.
REPLAYED_FROM_HEADER = "x-bento-replayed-from"


class Action(enum.Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    delay: float = 0.0
    error_type: str = ""
    error_message: str = ""
    message: DomainEvent | None = None
    #: When the message's first delivery failed, where `FirstFailures` saw it (ISO 8601).
    first_failed_at: str | None = None

    def dead_letter_headers(self, attempts: int, topic: str) -> dict[str, str]:
        """The error headers merged over the message's own: a `FIRST_FAILED_AT_HEADER` the retry
        path put there survives; on a first delivery it is the failure time itself."""
        now = utc_now().isoformat()
        headers = {
            ERROR_TYPE_HEADER: self.error_type,
            ERROR_MESSAGE_HEADER: self.error_message[:2000],
            ATTEMPTS_HEADER: str(attempts),
            ORIGINAL_TOPIC_HEADER: topic,
            FAILED_AT_HEADER: now,
        }
        if self.first_failed_at is not None:
            headers[FIRST_FAILED_AT_HEADER] = self.first_failed_at
        elif attempts <= 1:
            headers[FIRST_FAILED_AT_HEADER] = now
        if self.message is not None:
            headers[MESSAGE_ID_HEADER] = self.message.message_id
        return headers


_ACK = Verdict(Action.ACK)


class FirstFailures:
    """When each message now being retried first failed, for brokers that redeliver the same
    message without Bento rewriting its headers (Redis, NATS, Pulsar). Kept in the process that
    saw the failure, at most `size` messages (oldest forgotten first): a retry delivered to another
    process leaves the dead letter's `first_failed_at` unknown rather than wrong."""

    __slots__ = ("_seen", "_size")

    def __init__(self, size: int = 10_000) -> None:
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._size = size

    def settle(self, verdict: Verdict, message_id: str) -> Verdict:
        """Note a failed attempt; forget a settled message; give a dead verdict the first
        failure's time."""
        if verdict.action is Action.RETRY:
            if message_id not in self._seen:
                self._seen[message_id] = utc_now().isoformat()
                if len(self._seen) > self._size:
                    self._seen.popitem(last=False)
            return verdict
        first = self._seen.pop(message_id, None)
        if verdict.action is Action.DEAD and first is not None:
            return replace(verdict, first_failed_at=first)
        return verdict

    def __bool__(self) -> bool:
        return bool(self._seen)


def _for_this_group(headers: Mapping[str, Any], group: str | None) -> bool:
    target = headers.get(REPLAY_GROUP_HEADER)
    if target is None:
        return True
    if isinstance(target, bytes):
        target = target.decode("utf-8", "replace")
    return str(target) == (group or "")


async def handle_delivery(
    codec: JsonCodec,
    handler: MessageHandler,
    body: bytes,
    *,
    attempt: int,
    policy: RetryPolicy,
    timeout: float | None = None,
    topic: str = "",
    max_bytes: int | None = None,
    headers: Mapping[str, Any] | None = None,
    transport: Transport = None,
    system: str = "",
    group: str | None = None,
    failures: FirstFailures | None = None,
) -> Verdict:
    """Decode `body`, run `handler`, and say what the transport must do with it.

    `attempt` is 1 for the first delivery. A body longer than `max_bytes` (the bus's
    `max_message_bytes`) is dead-lettered undecoded. `headers` (the transport's) and `transport`
    (its id and time) let the codec read CloudEvents in binary mode and foreign plain payloads
    (decoded into the handler's `message_type`, see `typed_handler`). The handler runs with the message set
    as current, so messages it creates inherit correlation and causation ids. With tracing on
    (bento.application.telemetry) it runs inside a CONSUMER `process <topic>` span whose parent
    is the message's trace context; `system` and `group` name the bus and the subscriber's group
    in that span.

    A requeued dead letter names the one group it is for (`REPLAY_GROUP_HEADER`); any other group
    acknowledges it unhandled, since on a log (Redis, NATS, Kafka, Pulsar) every group reads the copy.
    `failures` (one per subscription, on brokers whose redeliveries carry no Bento header) gives a
    dead letter the time its message first failed."""
    if headers and not _for_this_group(headers, group):
        return _ACK
    if max_bytes is not None and len(body) > max_bytes:
        too_large = MessageTooLargeError(len(body), max_bytes, topic=topic)
        logger.error(
            "dead-lettering a message on %s: %s",
            quoted(topic),
            too_large,
            extra={"topic": topic, "group": group, "attempt": attempt},
        )
        if telemetry.metrics is not None:
            telemetry.metrics.dead_lettered(system, topic, group, type(too_large).__name__)
        return Verdict(Action.DEAD, error_type=type(too_large).__name__, error_message=str(too_large))
    try:
        message = codec.decode(body, headers, transport=transport, message_type=getattr(handler, "message_type", None))
    except Exception as exc:
        error = exc if isinstance(exc, DeserializationError) else DeserializationError(f"{type(exc).__name__}: {exc}")
        logger.error(
            "dead-lettering undecodable message on %s: %s",
            quoted(topic),
            error,
            extra={"topic": topic, "group": group, "attempt": attempt},
        )
        if telemetry.metrics is not None:
            telemetry.metrics.dead_lettered(system, topic, group, type(error).__name__)
        return Verdict(Action.DEAD, error_type=type(error).__name__, error_message=str(error))
    if telemetry.tracer is not None or telemetry.metrics is not None:
        verdict = await _observed(
            handler,
            message,
            len(body),
            attempt=attempt,
            policy=policy,
            timeout=timeout,
            topic=topic,
            system=system,
            group=group,
        )
    else:
        verdict = await _run(
            handler, message, attempt=attempt, policy=policy, timeout=timeout, topic=topic, group=group
        )
    if failures is not None and (verdict is not _ACK or failures):
        return failures.settle(verdict, message.message_id)
    return verdict


async def _observed(
    handler: MessageHandler,
    message: DomainEvent,
    size: int,
    *,
    attempt: int,
    policy: RetryPolicy,
    timeout: float | None,
    topic: str,
    system: str,
    group: str | None,
) -> Verdict:
    """`_run` measured (telemetry.metrics) and inside a CONSUMER span (telemetry.tracer)."""
    started = perf_counter()
    if telemetry.tracer is None:
        verdict = await _run(
            handler, message, attempt=attempt, policy=policy, timeout=timeout, topic=topic, group=group
        )
    else:
        verdict = await _traced(
            handler,
            message,
            size,
            attempt=attempt,
            policy=policy,
            timeout=timeout,
            topic=topic,
            system=system,
            group=group,
        )
    recorder = telemetry.metrics
    if recorder is not None:
        recorder.processed(
            system,
            topic,
            group,
            type(message).__wire_name__,
            verdict.action.value,
            perf_counter() - started,
            verdict.error_type,
        )
    return verdict


async def _traced(
    handler: MessageHandler,
    message: DomainEvent,
    size: int,
    *,
    attempt: int,
    policy: RetryPolicy,
    timeout: float | None,
    topic: str,
    system: str,
    group: str | None,
) -> Verdict:
    """`_run` inside a CONSUMER span; the handler sees the message with the span's context as
    its trace context, so the messages it creates (stored events too) are parented on it."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    attributes: dict[str, Any] = {
        telemetry.SYSTEM: system,
        telemetry.DESTINATION: topic,
        telemetry.OPERATION_TYPE: "process",
        telemetry.OPERATION_NAME: "process",
        telemetry.MESSAGE_ID: message.message_id,
        telemetry.CONVERSATION_ID: message.correlation_id,
        telemetry.BODY_SIZE: size,
        "bento.delivery.attempt": attempt,
        "bento.message.type": type(message).__wire_name__,
    }
    if group:
        attributes[telemetry.CONSUMER_GROUP] = group
    parent = telemetry.extract(message.metadata.trace_context)
    span = telemetry.tracer.start_span(
        f"process {topic}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    )
    with trace.use_span(span, end_on_exit=True):
        traced = message.with_metadata(trace_context=telemetry.inject())
        verdict = await _run(handler, traced, attempt=attempt, policy=policy, timeout=timeout, topic=topic, group=group)
        if verdict.action is not Action.ACK:
            span.set_status(Status(StatusCode.ERROR, verdict.error_message[:200]))
            span.set_attribute("error.type", verdict.error_type)
            span.set_attribute("bento.delivery.outcome", verdict.action.value)
        return verdict


async def _run(
    handler: MessageHandler,
    message: DomainEvent,
    *,
    attempt: int,
    policy: RetryPolicy,
    timeout: float | None,
    topic: str,
    group: str | None = None,
) -> Verdict:
    token = current_message.set(message)
    try:
        if timeout is None:
            await handler(message)
        else:
            # Inlined run_with_deadline: this runs once per delivery on every broker.
            task, dog = current_task(), watchdog()
            assert task is not None  # consumers always run inside a task
            previous = dog.enter(task, timeout)
            try:
                await handler(message)
            except CancelledError:
                if dog.expired(task, previous):
                    raise TimeoutError(f"handler ran longer than {timeout:g} s") from None
                raise
            finally:
                dog.leave(task, previous)
    except Exception as exc:
        error_type, error_message = type(exc).__name__, clipped(str(exc) or repr(exc), 2000)
        extra = {
            "message_id": message.message_id,
            "topic": topic,
            "group": group,
            "attempt": attempt,
            "correlation_id": message.correlation_id,
            "error_type": error_type,
        }
        if policy.gives_up_after(attempt):
            logger.error(
                "handler failed on %s for message %s (attempt %d of %d), dead-lettering: %s",
                quoted(topic),
                message.message_id,
                attempt,
                policy.max_attempts,
                error_message,
                extra=extra,
            )
            return Verdict(Action.DEAD, error_type=error_type, error_message=error_message, message=message)
        logger.warning(
            "handler failed on %s for message %s (attempt %d of %d), retrying: %s",
            quoted(topic),
            message.message_id,
            attempt,
            policy.max_attempts,
            error_message,
            extra=extra,
        )
        return Verdict(
            Action.RETRY,
            delay=policy.delay_after(attempt),
            error_type=error_type,
            error_message=error_message,
            message=message,
        )
    finally:
        current_message.reset(token)
    return _ACK


class _TypedHandler:
    """A subscriber's handler with the type a plain JSON payload decodes into."""

    __slots__ = ("handler", "message_type")

    def __init__(self, handler: MessageHandler, message_type: type[DomainEvent]) -> None:
        self.handler, self.message_type = handler, message_type

    def __call__(self, message: DomainEvent) -> Awaitable[None]:
        return self.handler(message)


def typed_handler(handler: MessageHandler, message_type: type[DomainEvent] | None) -> MessageHandler:
    """`handler` as `subscribe(..., message_type=X)` hands it to the consume loop: unchanged
    without a type, else marked so `handle_delivery` decodes plain payloads into X."""
    return handler if message_type is None else _TypedHandler(handler, message_type)
