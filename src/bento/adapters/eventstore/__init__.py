"""EventStore adapters: memory, clickhouse."""
