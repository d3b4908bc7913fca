"""`publish_batch`'s records handed to aiokafka one batch per partition at a time.

`producer.send` costs per record: a metadata look-up, the partitioner, an accumulator call
and a future each, about as much CPU as encoding the message. A list of records for one
topic is partitioned here instead and appended to aiokafka's batch builders directly, with
one `send_batch` per full batch. Nothing else changes:
- a key's partition is the producer's own choice (its DefaultPartitioner over the partition
  ids in order, as `send` calls it), so a key's records land where `publish` puts them, in
  order; records without a key go to a random available partition, as with `send`;
- flow control is the producer's: a partition holds one batch not yet drained, and
  `send_batch` waits for it exactly as `send` does when a batch is full;
- each batch's future resolves once the broker acknowledged it (`acks`), with the producer's
  retries, compression and batch size.
The idempotent producer keeps the per-record path (see `KafkaMessageBus.publish_batch`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

#: (key, value, headers) of one record.
Record = tuple[bytes | None, bytes, list[tuple[str, bytes]] | None]
#: A batch handed to the producer: its acknowledgement, and how many records it holds.
Sent = tuple["asyncio.Future[Any]", int]


async def send_batched(producer: AIOKafkaProducer, topic: str, records: Sequence[Record], sent: list[Sent]) -> None:
    """Hand every record to the producer in per-partition batches, appending each batch to
    `sent` as it goes (so a caller whose send failed half-way knows what was handed over)."""
    partitions = sorted(await producer.partitions_for(topic))
    available = list(producer.client.cluster.available_partitions_for_topic(topic))
    partitioner = DefaultPartitioner()
    partition_of: dict[bytes, int] = {}  # murmur2 in pure Python: once per key per call
    builders: dict[int, tuple[BatchBuilder, list[int]]] = {}
    for key, value, headers in records:
        if key is None:
            partition = partitioner(None, partitions, available)
        else:
            found = partition_of.get(key)
            partition = (
                found if found is not None else partition_of.setdefault(key, partitioner(key, partitions, available))
            )
        entry = builders.get(partition)
        if entry is None:
            entry = builders[partition] = (producer.create_batch(), [0])
        builder, count = entry
        if builder.append(timestamp=None, key=key, value=value, headers=headers or []) is None:
            # Full: hand it over, and start the next one (an empty batch takes any record).
            sent.append((await producer.send_batch(builder, topic, partition=partition), count[0]))
            builder, count = builders[partition] = (producer.create_batch(), [0])
            builder.append(timestamp=None, key=key, value=value, headers=headers or [])
        count[0] += 1
    for partition, (builder, count) in builders.items():
        sent.append((await producer.send_batch(builder, topic, partition=partition), count[0]))
