"""SnapshotStore adapters: memory, clickhouse (import the module you need)."""
