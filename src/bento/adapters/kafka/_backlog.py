"""BacklogProbe on Kafka: the end offsets of the topic's partitions minus the group's committed
offsets, and the dead-letter topic's end minus beginning offsets.

Each probe opens one consumer carrying the group id (it never joins the group) and reads the
committed offsets (OffsetFetch; tansu answers the admin client's version with a frame aiokafka
cannot decode) and the end and beginning offsets. tansu reports the end of a multi-record batch
too low, so there a dead-letter batch can count short. A partition the group never committed counts from
its beginning when `auto_offset_reset` is "earliest" and as nothing when "latest" (the group
starts at the end then). The figure includes messages being handled: Kafka commits only up to
the last contiguous success."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from bento.adapters.kafka._connection import Topics, client_options
from bento.adapters.kafka.settings import KafkaSettings
from bento.application.errors import BrokerUnavailableError
from bento.application.ports.backlog import Backlog


class KafkaBacklog:
    def __init__(self, settings: KafkaSettings, topics: Topics) -> None:
        self._settings, self._topics = settings, topics

    async def probe(self, topic: str, group: str) -> Backlog:
        # A fresh consumer per probe: a long-lived one keeps stale metadata (a dead-letter topic
        # created since would stay unseen). It carries the group id to read its commits, and
        # never joins the group.
        reader = AIOKafkaConsumer(**client_options(self._settings), group_id=group, enable_auto_commit=False)
        try:
            await reader.start()
            partitions = await _partitions(reader, self._topics.name(topic))
            committed = {tp: await reader.committed(tp) for tp in partitions}
            ours = {tp: offset for tp, offset in committed.items() if offset is not None and offset >= 0}
            waiting: int | None = None
            if ours:
                ends = await reader.end_offsets(partitions)
                starts = await reader.beginning_offsets(partitions)
                waiting = sum(max(ends[tp] - self._start(ours.get(tp), starts[tp], ends[tp]), 0) for tp in partitions)
            letters = await _partitions(reader, self._topics.dead_letter_name(topic, group))
            dead: int | None = 0 if ours else None
            if letters:
                ends = await reader.end_offsets(letters)
                starts = await reader.beginning_offsets(letters)
                dead = sum(ends[tp] - starts[tp] for tp in letters)
        except (KafkaError, OSError) as exc:
            raise BrokerUnavailableError("Kafka", self._settings.address, f"{type(exc).__name__}: {exc}") from exc
        finally:
            await reader.stop()
        return Backlog(topic, group, waiting, dead)

    def _start(self, committed: int | None, beginning: int, end: int) -> int:
        if committed is not None:
            return committed
        return beginning if self._settings.auto_offset_reset == "earliest" else end


async def _partitions(consumer: AIOKafkaConsumer, name: str) -> list[TopicPartition]:
    await consumer.topics()  # fills the metadata cache
    numbers = consumer.partitions_for_topic(name) or set()
    return [TopicPartition(name, n) for n in sorted(numbers)]
