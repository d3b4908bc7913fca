"""The memory package's StreamLock: the in-process lock, which the embedded ClickHouse store
also uses and so lives in `bento.adapters.shared`."""

from bento.adapters.shared.inprocess_lock import InProcessStreamLock

__all__ = ["InProcessStreamLock"]
