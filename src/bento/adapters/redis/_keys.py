"""Redis key names and partition choice for the Redis MessageBus.

Every key sits under the configured `key_prefix`, so several services (or test runs)
share one Redis without colliding:

    {prefix}stream:{topic}            the topic's stream (partitions == 1)
    {prefix}stream:{topic}:{n}        partition n of the topic (partitions > 1)
    {prefix}topics                    set of every topic ever published (pattern subscriptions)
    {prefix}dlq:{topic}:{group}       dead letters of one subscription
    {prefix}lease:{topic}:{group}:{n} owner of ordered partition n
    {prefix}members:{topic}:{group}   live members of an ordered group (sorted set of deadlines)
    {prefix}{topic}                   the pub/sub channel in broadcast mode (seed 001's layout)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

#: Dead letters of `group=None` subscribers share one stream: their groups are throwaway.
BROADCAST_GROUP_LABEL = "~broadcast"
_GLOB_SPECIALS = frozenset("*?[")


def is_pattern(topic: str) -> bool:
    return bool(_GLOB_SPECIALS & set(topic))


def escape_glob(text: str) -> str:
    """Escape Redis glob specials, so a literal prefix can head a PSUBSCRIBE pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def partition_of(key: str, partitions: int) -> int:
    """Stable partition of a key (CRC32, the same in every process and language)."""
    return zlib.crc32(key.encode()) % partitions if partitions > 1 else 0


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str
    partitions: int

    def stream(self, topic: str, partition: int = 0) -> str:
        base = f"{self.prefix}stream:{topic}"
        return base if self.partitions == 1 else f"{base}:{partition}"

    def streams(self, topic: str) -> list[str]:
        return [self.stream(topic, n) for n in range(self.partitions)]

    def stream_for_key(self, topic: str, key: str) -> str:
        return self.stream(topic, partition_of(key, self.partitions))

    @property
    def topics(self) -> str:
        return f"{self.prefix}topics"

    def dead_letters(self, topic: str, group: str | None) -> str:
        return f"{self.prefix}dlq:{topic}:{group if group is not None else BROADCAST_GROUP_LABEL}"

    def lease(self, topic: str, group: str, partition: int) -> str:
        return f"{self.prefix}lease:{topic}:{group}:{partition}"

    def members(self, topic: str, group: str) -> str:
        return f"{self.prefix}members:{topic}:{group}"

    def channel(self, topic: str) -> str:
        return f"{self.prefix}{topic}"

    def channel_pattern(self, pattern: str) -> str:
        return f"{escape_glob(self.prefix)}{pattern}"
