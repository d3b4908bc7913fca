"""CheckpointStore adapters."""
