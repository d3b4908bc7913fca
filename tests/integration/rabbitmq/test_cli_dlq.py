"""`bento dlq ls|show|replay|purge` as an operator runs them, against dead letters on the real RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from bento.adapters.memory.inbox import InMemoryInbox
from bento.adapters.rabbitmq import RabbitMQMessageBus, RabbitMQSettings
from bento.testing.events import ContractEvent, make_event

ROOT = Path(__file__).resolve().parents[3]


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT", "COMMAND", "SERVICE", "BENTO_"))}
    env.update(PYTHONPATH=str(ROOT / "src"), EVENT__BACKEND="rabbitmq", EVENT__URL=url)
    return env


def _bento(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bento.cli", "dlq", *args], env=_env(url), capture_output=True, text=True, timeout=60
    )


async def test_ls_and_show_read_the_brokers_dead_letters(rabbitmq_url: str) -> None:
    topic = f"dlq-cli-{uuid.uuid4().hex[:8]}"
    poison = [make_event(n, key=f"k{n}") for n in range(3)]

    async def refuse(message: ContractEvent) -> None:
        raise ValueError(f"cannot handle seq {message.seq}")

    async with RabbitMQMessageBus(RabbitMQSettings(url=rabbitmq_url, max_attempts=1)) as bus:
        await bus.subscribe(topic, refuse, group="billing")  # type: ignore[arg-type]
        for event in poison:
            await bus.publish(topic, event)
        for _ in range(500):
            if len(await bus.dead_letters(topic, group="billing")) == 3:
                break
            await asyncio.sleep(0.02)

    listed = await asyncio.to_thread(_bento, "ls", topic, "--group", "billing", "--json", url=rabbitmq_url)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(r["message_id"] for r in rows) == sorted(e.message_id for e in poison)
    assert {(r["topic"], r["group"], r["attempts"], r["error_type"]) for r in rows} == {
        (topic, "billing", 1, "ValueError")
    }

    shown = await asyncio.to_thread(
        _bento, "show", poison[1].message_id, topic, "--group", "billing", "--json", url=rabbitmq_url
    )
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["error_message"] == "cannot handle seq 1" and '"seq":1' in detail["body"].replace(" ", "")

    missing = await asyncio.to_thread(_bento, "show", "nope", topic, "--group", "billing", url=rabbitmq_url)
    assert missing.returncode == 1 and "no dead letter 'nope'" in missing.stderr

    empty = await asyncio.to_thread(_bento, "ls", topic, "--group", "other", url=rabbitmq_url)
    assert empty.returncode == 0 and empty.stdout == "" and "no dead letters" in empty.stderr


async def test_replay_after_the_fix_and_purge_as_an_operator_runs_them(rabbitmq_url: str) -> None:
    """The subscriber stays up in this process; the operator's `bento dlq replay` (another
    process) sends the letters back, and each is handled once, in order per key."""
    topic = f"dlq-cli-{uuid.uuid4().hex[:8]}"
    sent = [make_event(n, key=f"k{n % 2}") for n in range(6)]
    broken = True
    handled: list[ContractEvent] = []

    async def handler(message: ContractEvent) -> None:
        if broken:
            raise ValueError(f"cannot handle seq {message.seq}")
        handled.append(message)

    async with RabbitMQMessageBus(RabbitMQSettings(url=rabbitmq_url, max_attempts=1)) as bus:
        await bus.subscribe(topic, handler, group="billing", ordered=True)  # type: ignore[arg-type]
        await bus.publish_batch(topic, sent)
        for _ in range(500):
            if len(await bus.dead_letters(topic, group="billing")) == 6:
                break
            await asyncio.sleep(0.02)

        refused = await asyncio.to_thread(_bento, "replay", topic, "--group", "billing", url=rabbitmq_url)
        assert refused.returncode == 1 and "--all" in refused.stderr
        assert len(await bus.dead_letters(topic, group="billing")) == 6

        broken = False
        replayed = await asyncio.to_thread(
            _bento, "replay", topic, "--group", "billing", "--all", "--rate", "50", "--json", url=rabbitmq_url
        )
        assert replayed.returncode == 0, replayed.stderr
        report = json.loads(replayed.stdout)
        assert report["requeued"] == 6
        assert sorted(r["message_id"] for r in report["letters"]) == sorted(e.message_id for e in sent)
        for _ in range(500):
            if len(handled) >= 6:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        assert sorted(e.message_id for e in handled) == sorted(e.message_id for e in sent)  # once each
        for key in ("k0", "k1"):
            assert [e.seq for e in handled if e.key == key] == [e.seq for e in sent if e.key == key]
        assert await bus.dead_letters(topic, group="billing") == []

        broken = True
        await bus.publish_batch(topic, [make_event(10), make_event(11)])
        for _ in range(500):
            if len(await bus.dead_letters(topic, group="billing")) == 2:
                break
            await asyncio.sleep(0.02)
        purged = await asyncio.to_thread(
            _bento, "purge", topic, "--group", "billing", "--error-type", "ValueError", "--json", url=rabbitmq_url
        )
        assert purged.returncode == 0, purged.stderr
        assert json.loads(purged.stdout) == {"purged": 2}
        assert await bus.dead_letters(topic, group="billing") == []


async def test_a_replay_killed_midway_and_run_again_handles_every_letter_once_through_the_inbox(
    rabbitmq_url: str,
) -> None:
    """SIGKILL the operator's `bento dlq replay` after three copies arrived: the letters it held
    go back to the queue, the second replay sends the rest (and at most the one letter whose copy
    was confirmed but not yet acknowledged, again); the subscriber's inbox absorbs that copy."""
    topic = f"dlq-cli-{uuid.uuid4().hex[:8]}"
    sent = [make_event(n, key=f"k{n % 2}") for n in range(8)]
    broken = True
    inbox = InMemoryInbox()
    deliveries: list[str] = []
    handled: list[ContractEvent] = []

    async def handler(message: ContractEvent) -> None:
        if broken:
            raise ValueError(f"cannot handle seq {message.seq}")
        deliveries.append(message.message_id)
        if await inbox.mark_processed("billing", message.message_id):
            handled.append(message)

    async with RabbitMQMessageBus(RabbitMQSettings(url=rabbitmq_url, max_attempts=1)) as bus:
        await bus.subscribe(topic, handler, group="billing", ordered=True)  # type: ignore[arg-type]
        await bus.publish_batch(topic, sent)
        for _ in range(500):
            if len(await bus.dead_letters(topic, group="billing")) == 8:
                break
            await asyncio.sleep(0.02)
        broken = False

        replay = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bento.cli", "dlq", "replay", topic, "--group", "billing", "--all", "--rate", "4"),
            env=_env(rabbitmq_url),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            for _ in range(1500):
                if len(deliveries) >= 3 or replay.returncode is not None:
                    break
                await asyncio.sleep(0.01)
        finally:
            replay.send_signal(signal.SIGKILL)
            await replay.wait()
        killed_after = len(deliveries)
        assert 3 <= killed_after < 8, "killed midway"
        for _ in range(500):  # the broker takes the dead process's letters back
            if len(await bus.dead_letters(topic, group="billing")) + len(handled) >= 8:
                break
            await asyncio.sleep(0.02)

        again = await asyncio.to_thread(_bento, "replay", topic, "--group", "billing", "--all", url=rabbitmq_url)
        assert again.returncode == 0, again.stderr
        for _ in range(500):
            if len(handled) >= 8:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        assert sorted(e.message_id for e in handled) == sorted(e.message_id for e in sent)
        assert len(deliveries) - len(handled) <= 1, "at most the one letter in flight came twice"
        for key in ("k0", "k1"):
            assert [e.seq for e in handled if e.key == key] == [e.seq for e in sent if e.key == key]
        assert await bus.dead_letters(topic, group="billing") == []
