"""The wire layout: how topics, keys and groups become subjects and consumer names.

Every message is published to `{prefix}.p{n}.{topic}`, where `n` is the CRC32 of its
key modulo `partitions`. Putting the partition token *before* the topic keeps the
topic's own tokens intact, so a pattern topic `orders.*` maps to the filter
`{prefix}.*.orders.*` and can never match a partition token by accident (which a
`{topic}.p{n}` suffix would: `orders.*` would also match `orders.p3`).

- unordered subscriber:   filter `{prefix}.*.{topic}` (every partition)
- ordered subscriber:     one consumer per partition, filter `{prefix}.p{n}.{topic}`
- dead letters:           `{prefix}_dlq.{group}.{topic}` (its own stream)
"""

from __future__ import annotations

import hashlib
import re
import zlib

from bento.adapters.nats.settings import NatsSettings

#: Group token used in dead-letter subjects for broadcast (group=None) subscribers.
BROADCAST_GROUP_TOKEN = "_broadcast"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class Layout:
    """Subject and consumer-name arithmetic for one settings object (pure, no I/O)."""

    def __init__(self, settings: NatsSettings) -> None:
        self.prefix = settings.subject_prefix
        self.dlq_prefix = settings.dead_letter_prefix
        self.partitions = settings.partitions

    def partition_of(self, key: str | bytes) -> int:
        data = key.encode() if isinstance(key, str) else key
        return zlib.crc32(data) % self.partitions

    def publish_subject(self, topic: str, partition: int) -> str:
        return f"{self.prefix}.p{partition}.{topic}"

    def filter_subject(self, topic: str, partition: int | None = None) -> str:
        token = "*" if partition is None else f"p{partition}"
        return f"{self.prefix}.{token}.{topic}"

    def topic_of(self, subject: str) -> str:
        """The topic a message was published to (its subject minus prefix and partition)."""
        parts = subject.split(".", 2)
        return parts[2] if len(parts) == 3 else subject

    def routable(self, subject: str) -> bool:
        """Whether `subject` is `{prefix}.p{n}.{topic}` with `n` < partitions: the only
        subjects some subscriber's filter matches."""
        parts = subject.split(".", 2)
        if len(parts) < 3 or parts[0] != self.prefix or not parts[2]:
            return False
        token = parts[1]
        number = token[1:]
        return (
            token.startswith("p")
            and number.isascii()
            and number.isdigit()
            and str(int(number)) == number
            and int(number) < self.partitions
        )

    def dead_letter_subject(self, group: str | None, topic: str) -> str:
        return f"{self.dlq_prefix}.{group_token(group)}.{topic}"

    def consumer_name(self, group: str, topic: str, partition: int | None = None) -> str:
        """Durable name for `group` on `topic`: readable, and unique per topic because
        JetStream durable names are per stream while Bento groups are per topic."""
        digest = hashlib.sha1(f"{topic}|{group}".encode()).hexdigest()[:10]
        base = f"{_UNSAFE.sub('_', group)[:60]}_{digest}"
        return base if partition is None else f"{base}_p{partition}"


def group_token(group: str | None) -> str:
    if group is None:
        return BROADCAST_GROUP_TOKEN
    safe = _UNSAFE.sub("_", group)
    if safe != group:  # keep `a.b` and `a_b` apart
        safe = f"{safe}_{hashlib.sha1(group.encode()).hexdigest()[:6]}"
    return safe


def check_topic(topic: str, *, allow_wildcards: bool) -> str | None:
    """Why `topic` cannot be a subject suffix, or None when it can."""
    if not topic:
        return "the topic is empty"
    for token in topic.split("."):
        if not token:
            return "the topic has an empty token (leading, trailing or double '.')"
        if any(ch.isspace() for ch in token):
            return "the topic contains whitespace"
        if token == ">" or (">" in token):
            return "'>' is not supported; use '*' for one token"
        if "*" in token and (token != "*" or not allow_wildcards):
            return "'*' is allowed only as a whole token, and only when subscribing"
    return None
