"""A worker SIGKILLed with 200 commands in flight: every caller gets its result or a
CommandTimeoutError, nothing acknowledged is lost after a restart, and redelivered commands
the dead worker had already handled are absorbed by the (Redis) inbox, counted."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import types
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis

from bento import Command
from bento.adapters.rabbitmq import RabbitMQMessageBus, RabbitMQSettings
from bento.application.errors import CommandTimeoutError
from bento.application.ports.message_bus import MessageBus
from bento.application.remote import RemoteCommandBus, RequestReply

ROOT = Path(__file__).resolve().parents[3]
REDIS_URL = os.environ.get("BENTO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

SERVICE = """
import asyncio, os
import redis.asyncio as redis
from dependency_injector import providers
from bento import Command, CommandHandler
from bento.infrastructure.container import BentoContainer


class Work(Command, name="{wire}.work"):
    n: int


class WorkHandler(CommandHandler[Work, int]):
    def __init__(self) -> None:
        self.redis = redis.Redis.from_url(os.environ["EFFECTS_URL"])

    async def handle(self, command: Work) -> int:
        await asyncio.sleep(0.02)
        await self.redis.rpush("{effects}", command.n)  # the command's effect
        return command.n


class Worker(BentoContainer):
    work = providers.Singleton(WorkHandler)
"""


def _start(cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT", "COMMAND", "SERVICE", "INBOX"))}
    full.update(PYTHONPATH=str(ROOT / "src"), **env)
    process = subprocess.Popen(
        [sys.executable, "-m", "bento.cli", "run", "svc:Worker"],
        cwd=cwd,
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if " ready: " in line:
            return process
    raise AssertionError(f"the worker did not start ({process.wait()})")


def _wait_for_effects(store: redis.Redis, effects: str, count: int) -> None:
    while store.llen(effects) < count:
        time.sleep(0.01)


@asynccontextmanager
async def _caller(rabbitmq_url: str) -> AsyncIterator[RemoteCommandBus]:
    @asynccontextmanager
    async def connect() -> AsyncIterator[MessageBus]:
        async with RabbitMQMessageBus(RabbitMQSettings(url=rabbitmq_url)) as bus:
            yield bus

    link = RequestReply(connect, service="killer", timeout=15.0)
    try:
        yield RemoteCommandBus(link)
    finally:
        await link.close()


async def test_sigkill_with_200_in_flight(tmp_path: Path, rabbitmq_url: str) -> None:
    wire, effects = f"kill{uuid.uuid4().hex[:8]}", f"bento-test:effects:{uuid.uuid4().hex[:8]}"
    (tmp_path / "svc.py").write_text(textwrap.dedent(SERVICE.format(wire=wire, effects=effects)))
    env = {
        "COMMAND__URL": rabbitmq_url,
        "EFFECTS_URL": REDIS_URL,
        "INBOX__BACKEND": "redis",
        "INBOX__URL": REDIS_URL,
        "INBOX__KEY_PREFIX": f"bento-test:inbox:{wire}:",
        "SERVICE__NAME": "killed",
    }
    work = types.new_class(
        "Work", (Command,), {"name": f"{wire}.work"}, lambda ns: ns.update({"__annotations__": {"n": int}})
    )
    store = redis.Redis.from_url(REDIS_URL)
    first = _start(tmp_path, env)
    second = None
    try:
        async with _caller(rabbitmq_url) as commands:
            calls = [asyncio.create_task(commands.dispatch(work(n=n))) for n in range(200)]  # type: ignore[call-arg]
            await asyncio.to_thread(_wait_for_effects, store, effects, 40)  # the worker is busy with the batch
            first.send_signal(signal.SIGKILL)
            first.wait()
            second = await asyncio.to_thread(_start, tmp_path, {**env, "SERVICE__NAME": "restarted"})
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
        results = [o for o in outcomes if isinstance(o, int)]
        timeouts = [o for o in outcomes if isinstance(o, CommandTimeoutError)]
        assert len(results) + len(timeouts) == 200, [
            o for o in outcomes if not isinstance(o, int | CommandTimeoutError)
        ]
        await asyncio.sleep(1.0)  # let the restarted worker finish what was redelivered
        done = [int(n) for n in store.lrange(effects, 0, -1)]
        assert set(results) <= set(done)  # nothing acknowledged to a caller is lost
        assert set(done) == set(range(200))  # and every command ran, in the dead worker or after the restart
        duplicates = len(done) - len(set(done))
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=60)
        absorbed = int(re.search(r"redeliveries absorbed by the inbox: (\d+)", err).group(1))  # type: ignore[union-attr]
        print(f"results={len(results)} timeouts={len(timeouts)} absorbed={absorbed} duplicates={duplicates}")
        # A redelivery is absorbed when the dead worker had marked it (its caller may still have had
        # the reply, sent before the ack). One killed between its effect and the inbox mark runs
        # again: at-least-once, as documented; never more than once per redelivery. (With 200
        # handlers sharing one event loop that window is one loop turn: a few percent run twice.)
        assert absorbed > 0 and max(Counter(done).values()) <= 2
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        keys = [*store.scan_iter(match=f"bento-test:inbox:{wire}:*"), effects]
        store.delete(*keys)
