"""Bento: hexagonal DDD messaging for Python."""
