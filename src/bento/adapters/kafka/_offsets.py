"""Which offset of a partition may be committed: the end of the contiguous run of settled messages.

Handlers of one partition finish out of order (different keys run at once, a failing
message waits for its retry while later ones pass). Kafka keeps one committed offset per
partition and a group resumes from it, so committing past an unsettled message would
lose it. `PartitionOffsets` records received offsets in order and advances the commit
point only over a run of settled ones: a failed message holds the commit point back
until it is handled or dead-lettered, however many later messages succeed.
"""

from __future__ import annotations

from collections import deque


class PartitionOffsets:
    """Offsets received from one partition and not yet covered by the commit point."""

    __slots__ = ("_committable", "_committed", "_received", "_settled")

    def __init__(self) -> None:
        self._received: deque[int] = deque()
        self._settled: set[int] = set()
        self._committable: int | None = None
        self._committed: int | None = None

    def __len__(self) -> int:
        """Messages received and not yet settled."""
        return len(self._received) - len(self._settled)

    def received(self, offset: int) -> None:
        """Offsets arrive in increasing order, as the partition delivers them."""
        self._received.append(offset)

    def received_all(self, offsets: list[int]) -> None:
        """`received` for a fetched batch at once."""
        self._received.extend(offsets)

    def settled(self, offset: int) -> None:
        """The message at `offset` was handled (or dead-lettered): nothing more to do for it."""
        received = self._received
        if received and received[0] == offset:
            received.popleft()
            self._committable = offset + 1
            settled = self._settled
            while received and received[0] in settled:
                head = received.popleft()
                settled.discard(head)
                self._committable = head + 1
        else:
            self._settled.add(offset)

    def to_commit(self) -> int | None:
        """The offset to commit now (the next one the group should read), or None if it
        has not moved since `committed()`."""
        if self._committable is None or self._committable == self._committed:
            return None
        return self._committable

    def committed(self, offset: int) -> None:
        self._committed = offset
