"""One delivery attempt, decided the same way by every MessageBus adapter.

An adapter receives a body, calls `handle_delivery`, and acts on the verdict:
ACK it, RETRY it after `verdict.delay` seconds, or DEAD-letter it with
`verdict.error_type` / `verdict.error_message` (header names below). Keeping the
decision here means every broker classifies poison and undecodable messages alike.
"""

from __future__ import annotations

import enum
import logging
from asyncio import CancelledError, current_task
from dataclasses import dataclass

from bento.adapters.shared.deadlines import watchdog
from bento.application.errors import DeserializationError
from bento.application.ports.message_bus import MessageHandler
from bento.application.retry import RetryPolicy
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent
from bento.domain.metadata import current_message

logger = logging.getLogger(__name__)

#: Header names a dead-lettered message carries, on every broker.
ERROR_TYPE_HEADER = "x-bento-error-type"
ERROR_MESSAGE_HEADER = "x-bento-error-message"
ATTEMPTS_HEADER = "x-bento-attempts"
ORIGINAL_TOPIC_HEADER = "x-bento-original-topic"
MESSAGE_ID_HEADER = "x-bento-message-id"
KEY_HEADER = "x-bento-key"


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

    def dead_letter_headers(self, attempts: int, topic: str) -> dict[str, str]:
        headers = {
            ERROR_TYPE_HEADER: self.error_type,
            ERROR_MESSAGE_HEADER: self.error_message[:2000],
            ATTEMPTS_HEADER: str(attempts),
            ORIGINAL_TOPIC_HEADER: topic,
        }
        if self.message is not None:
            headers[MESSAGE_ID_HEADER] = self.message.message_id
        return headers


_ACK = Verdict(Action.ACK)


async def handle_delivery(
    codec: JsonCodec,
    handler: MessageHandler,
    body: bytes,
    *,
    attempt: int,
    policy: RetryPolicy,
    timeout: float | None = None,
    topic: str = "",
) -> Verdict:
    """Decode `body`, run `handler`, and say what the transport must do with it.

    `attempt` is 1 for the first delivery. The handler runs with the message set as
    current, so messages it creates inherit correlation and causation ids."""
    try:
        message = codec.decode(body)
    except DeserializationError as exc:
        logger.error("dead-lettering undecodable message on %r: %s", topic, exc)
        return Verdict(Action.DEAD, error_type=type(exc).__name__, error_message=str(exc))
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
        error_type, error_message = type(exc).__name__, str(exc) or repr(exc)
        if policy.gives_up_after(attempt):
            logger.error(
                "handler failed on %r for message %s (attempt %d of %d), dead-lettering: %s",
                topic, message.message_id, attempt, policy.max_attempts, error_message,
            )
            return Verdict(Action.DEAD, error_type=error_type, error_message=error_message, message=message)
        logger.warning(
            "handler failed on %r for message %s (attempt %d of %d), retrying: %s",
            topic, message.message_id, attempt, policy.max_attempts, error_message,
        )
        return Verdict(
            Action.RETRY, delay=policy.delay_after(attempt), error_type=error_type,
            error_message=error_message, message=message,
        )
    finally:
        current_message.reset(token)
    return _ACK
