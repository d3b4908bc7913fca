from collections.abc import AsyncIterator

import pytest

from bento.adapters.memory.checkpoint_store import InMemoryCheckpointStore
from bento.adapters.memory.event_store import InMemoryEventStore
from bento.adapters.memory.inbox import InMemoryInbox
from bento.adapters.memory.read_model import InMemoryReadModel
from bento.adapters.memory.stream_lock import InProcessStreamLock
from bento.application.ports.checkpoint_store import CheckpointStore
from bento.application.ports.event_store import EventStore
from bento.application.ports.inbox import Inbox
from bento.application.ports.read_model import RebuildableReadModel
from bento.application.ports.stream_lock import StreamLock
from bento.testing.contracts.checkpoint_store import CheckpointStoreContract
from bento.testing.contracts.event_store import EventStoreContract
from bento.testing.contracts.inbox import InboxContract
from bento.testing.contracts.read_model import ContractRecord, ReadModelContract, RebuildableReadModelContract
from bento.testing.contracts.stream_lock import StreamLockContract


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    async def event_store(self) -> AsyncIterator[EventStore]:
        store = InMemoryEventStore()
        yield store
        await store.close()


class TestInMemoryReadModel(ReadModelContract):
    @pytest.fixture
    def read_model(self) -> RebuildableReadModel[ContractRecord]:
        return InMemoryReadModel(ContractRecord)


class TestInMemoryReadModelRebuilds(RebuildableReadModelContract):
    @pytest.fixture
    def read_model(self) -> RebuildableReadModel[ContractRecord]:
        return InMemoryReadModel(ContractRecord)


class TestInMemoryCheckpointStore(CheckpointStoreContract):
    @pytest.fixture
    def checkpoints(self) -> CheckpointStore:
        return InMemoryCheckpointStore()


class TestInMemoryInbox(InboxContract):
    @pytest.fixture
    def inbox(self) -> Inbox:
        return InMemoryInbox()


class TestInProcessStreamLock(StreamLockContract):
    @pytest.fixture
    def stream_lock(self) -> StreamLock:
        return InProcessStreamLock()
