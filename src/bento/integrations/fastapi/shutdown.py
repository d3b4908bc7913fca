"""Ending long responses (SSE) as soon as the server begins to shut down.

Uvicorn stops on Ctrl-C in this order: stop accepting, wait for every open response to
finish, and only then run the lifespan's shutdown. An SSE stream that ended only when the
lifespan closed its channel therefore held the server until the client gave up. So the
lifespan watches SIGINT/SIGTERM itself: the signal sets the running loop's `shutting_down()`
event, which `sse_events` waits on beside its channel, and then the handler installed before
(uvicorn's) runs as usual. Signals are per process, so the events are kept per event loop
(a weak mapping: a finished loop drops its event).
"""

from __future__ import annotations

import asyncio
import signal
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_events: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = weakref.WeakKeyDictionary()
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def shutting_down() -> asyncio.Event:
    """The running loop's shutdown event: set on SIGINT/SIGTERM under `watch_exit_signals`,
    and when the lifespan ends."""
    loop = asyncio.get_running_loop()
    event = _events.get(loop)
    if event is None:
        event = _events[loop] = asyncio.Event()
    return event


@contextmanager
def watch_exit_signals() -> Iterator[asyncio.Event]:
    """Set `shutting_down()` on SIGINT/SIGTERM, chaining to the handlers installed before;
    on exit, set it anyway and put those handlers back. Off the main thread (where signals
    cannot be handled) only the exit sets it."""
    loop = asyncio.get_running_loop()
    event = shutting_down()
    event.clear()
    installed: dict[signal.Signals, tuple[Any, Any]] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            previous = signal.getsignal(sig)

            def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(event.set)
                if callable(previous):
                    previous(signum, frame)
                elif previous == signal.SIG_DFL and signum == signal.SIGINT:
                    raise KeyboardInterrupt

            signal.signal(sig, handler)
            installed[sig] = (handler, previous)
    try:
        yield event
    finally:
        event.set()
        for sig, (handler, previous) in installed.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous)
