"""DirectReplyPort: a broker's own route for replies, which a MessageBus adapter may offer.

A remote CommandBus stamps each request with REPLY_TO_HEADER, the address its reply goes to,
and the server answers with `bus.publish(address, reply)`. Without this port the address is
a topic of its own that the caller subscribes to: each reply is then stored, delivered and
acknowledged like an event. An adapter whose broker routes replies more cheaply offers
`bus.direct_reply`:

- `open_replies(handler)` starts receiving this process's replies and returns a Subscription
  whose `topic` is the address requests carry (RabbitMQ: direct reply-to,
  `amq.rabbitmq.reply-to`, which the broker turns into the caller's channel on delivery;
  Redis: a private stream read without a consumer group).
- The same adapter's `publish(address, reply)` (in any process) routes a reply there.

Only replies take this route: requests stay on the durable, at-least-once topic of their
command. A reply is delivered at most once, with no retries and no dead letters: one whose
caller is gone is dropped, and a caller whose reply is lost gets CommandTimeoutError.
"""

from __future__ import annotations

from typing import Protocol

from bento.application.ports.message_bus import MessageHandler, Subscription

#: Header of a request naming where its reply goes (a topic, or a direct reply address).
REPLY_TO_HEADER = "bento-reply-to"


class DirectReplyPort(Protocol):
    async def open_replies(self, handler: MessageHandler) -> Subscription:
        """Receive this process's replies with `handler`; the Subscription's `topic` is the
        address for REPLY_TO_HEADER, and `cancel` stops receiving."""
        ...


class PrivateTopicDisposal(Protocol):
    """A MessageBus adapter whose broker keeps topics until they are deleted (Kafka) may offer
    `delete_private_topic`: a remote CommandBus without a direct reply route subscribes a reply
    topic of its own per process, and deletes it (with the dead-letter topic the bus made for
    it) when the process closes its link, so process restarts do not pile up topics."""

    async def delete_private_topic(self, topic: str) -> None:
        """Delete `topic` and what the bus created for it; a topic that is gone already is fine."""
        ...
