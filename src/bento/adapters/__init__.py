"""Adapters: one package per technology, each implementing application ports.

Nothing here is imported by `import bento`; builders in bento.infrastructure import
an adapter only when configuration selects it."""
