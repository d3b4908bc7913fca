"""Top-level test configuration."""
