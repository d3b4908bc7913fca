"""ReadModelPort adapters: memory, clickhouse."""
