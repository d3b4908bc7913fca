import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from dependency_injector import providers

import bento
from bento import MissingExtraError
from bento.adapters.memory import InProcessMessageBus
from bento.adapters.memory.event_store import InMemoryEventStore
from bento.infrastructure.container import BentoContainer
from bento.infrastructure.settings import load_settings


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENTO_CONFIG", raising=False)


async def test_defaults_select_in_process_adapters_and_shut_down() -> None:
    container = BentoContainer()
    bus = await container.message_bus()
    store = await container.event_store()
    assert isinstance(bus, InProcessMessageBus) and isinstance(store, InMemoryEventStore)
    assert await container.message_bus() is bus
    await container.shutdown_resources()
    with pytest.raises(bento.BusClosedError):
        await bus.publish("t", bento.DomainEvent.model_construct())


async def test_named_instances_open_on_demand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT__AUDIT__BACKEND", "memory")
    container = BentoContainer()
    buses = await container.message_buses()
    audit = await buses.get("audit")
    assert isinstance(audit, InProcessMessageBus) and await buses.get("AUDIT") is audit
    assert set(buses.opened()) == {"audit"}
    with pytest.raises(bento.ConfigurationError, match="EVENT__NOPE__BACKEND"):
        await buses.get("nope")
    await container.shutdown_resources()


async def test_settings_override_selects_another_backend_without_opening_the_default() -> None:
    container = BentoContainer()
    container.settings.override(providers.Object(load_settings(event={"backend": "rabbitmq"})))
    assert container.settings().event_backend == "rabbitmq"
    store = await container.event_store()  # the rabbitmq bus is not opened by this
    assert isinstance(store, InMemoryEventStore)
    await container.shutdown_resources()


def test_import_bento_pulls_in_no_client_library() -> None:
    for client in ("aio_pika", "pulsar", "redis", "nats", "clickhouse_driver", "chdb", "fastapi"):
        assert client not in sys.modules or not sys.modules[client].__name__.startswith("bento")
    import subprocess

    code = (
        "import sys, bento, bento.infrastructure.container; "
        "bad=[m for m in ('aio_pika','pulsar','redis','nats','clickhouse_driver','chdb') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import bento.adapters.rabbitmq as rabbitmq_package

    monkeypatch.setitem(sys.modules, "aio_pika", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"bento-ddd\[rabbitmq\]"):
        rabbitmq_package.__getattr__("RabbitMQMessageBus")


def test_public_api_all_is_sorted_and_complete() -> None:
    def key(name: str) -> tuple[bool, bool, str]:
        return (not name.isupper(), not name[0].isupper(), name)

    assert bento.__all__ == sorted(bento.__all__, key=key)
    for name in bento.__all__:
        assert hasattr(bento, name), name


def test_public_api_has_the_event_sourcing_core_and_import_bento_loads_no_adapter() -> None:
    for name in (
        "EventSourcedRepository",
        "Projection",
        "ProjectionRunner",
        "OutboxRelay",
        "BentoContainer",
        "register_handlers",
        "AggregateNotFoundError",
        "ProjectionError",
        "ConcurrencyError",
    ):
        assert name in bento.__all__, name
    assert bento.BentoContainer is BentoContainer
    code = "import sys, bento; print(sorted(m for m in sys.modules if m.startswith('bento.adapters')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_no_two_public_classes_share_a_name() -> None:
    defined: dict[str, set[str]] = {}
    for info in pkgutil.walk_packages(bento.__path__, "bento."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == info.name and not name.startswith("_"):
                defined.setdefault(value.__name__, set()).add(info.name)
    assert {name: where for name, where in defined.items() if len(where) > 1} == {}
