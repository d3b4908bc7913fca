import pytest

from bento.adapters.memory.snapshot_store import InMemorySnapshotStore
from bento.application.ports.snapshot_store import SnapshotStore
from bento.testing.contracts.snapshot_store import SnapshotStoreContract


class TestInMemorySnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def snapshots(self) -> SnapshotStore:
        return InMemorySnapshotStore()
