"""Integrations with web frameworks; each needs its extra (`bento-ddd[fastapi]`)."""
