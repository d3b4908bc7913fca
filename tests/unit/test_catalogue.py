"""The catalogue is the one list of backends: every row is complete, and what is derived from
it (settings, selectors, the factory, the layer contracts) agrees with it."""

from __future__ import annotations

import ast
import inspect
import re
import tomllib
from pathlib import Path

import pytest
from dependency_injector import providers

import bento.testing.contracts
from bento.infrastructure import backends
from bento.infrastructure.backends import CATALOGUES, MESSAGE_BUSES, Backend, Catalogue, open_selected
from bento.infrastructure.container import BentoContainer
from bento.infrastructure.message_bus_factory import MessageBusFactory, MessageBusType
from bento.infrastructure.settings import NAMED_SECTIONS, BentoSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ROWS = [(section, catalogue, row) for section, catalogue in CATALOGUES.items() for row in catalogue]
IDS = [f"{section}:{row.name}" for section, _, row in ROWS]
#: The container provider of each port section (channels and work queues are opened by the managers).
PROVIDERS = {
    "event": "message_bus",
    "event_store": "event_store",
    "stream_lock": "stream_lock",
    "read_model": "read_models",
    "checkpoint_store": "checkpoint_store",
    "snapshot_store": "snapshot_store",
    "inbox": "inbox",
}

#: Ports the container opens through one dispatching Resource instead of a Selector.
DISPATCHED = {"stream_lock"}


@pytest.fixture(autouse=True)
def _no_config_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no config/bento.yaml, no .env


def _settings_for(section: str, value: dict[str, object]) -> object:
    settings = BentoSettings(**{section: value})
    found = getattr(settings, section)
    return found["default"] if section in NAMED_SECTIONS else found


#: The managers' sections keep the shape named instances always had (`CHANNEL__X__MAX_QUEUE`,
#: `MQ__X__MAX_CONNECTIONS`); their backend is checked against the catalogue, and the manager
#: builds the row's settings model from them.
MANAGER_SECTIONS = {"channel", "mq", "cache"}


@pytest.mark.parametrize(("section", "catalogue", "row"), ROWS, ids=IDS)
def test_every_row_is_a_member_of_its_port_settings(section: str, catalogue: Catalogue, row: Backend) -> None:
    field = catalogue.key_field  # `backend`, or the cache section's `cache_type` (seed 000)
    chosen = _settings_for(section, {field: row.name})
    if section in MANAGER_SECTIONS:
        assert getattr(chosen, field) == row.name
    else:
        assert isinstance(chosen, row.settings)
    for alias in row.aliases:
        assert getattr(_settings_for(section, {field: alias.upper()}), field) == row.name


@pytest.mark.parametrize("section", sorted(MANAGER_SECTIONS))
def test_manager_sections_accept_only_catalogue_backends(section: str) -> None:
    with pytest.raises(ValueError, match="choose one of"):
        _settings_for(section, {CATALOGUES[section].key_field: "oracle"})


@pytest.mark.parametrize(("section", "catalogue", "row"), ROWS, ids=IDS)
def test_every_row_has_a_builder_and_an_extra_hint(section: str, catalogue: Catalogue, row: Backend) -> None:
    assert inspect.isasyncgenfunction(row.builder), f"{row.name}: builders are async generators"
    assert set(inspect.signature(row.builder).parameters) >= {*row.needs}
    assert row.adapter is not None
    package = row.adapter.split(":")[0].split(".")[2]
    if row.extra is None:
        assert package == "memory", f"{row.name}: only the memory package needs no extra"
    else:
        assert row.extra in PYPROJECT["project"]["optional-dependencies"], f"no extra {row.extra!r}"
        assert package == row.extra, f"{row.name}: the adapter lives in the package of its extra"


@pytest.mark.parametrize(("section", "catalogue", "row"), ROWS, ids=IDS)
def test_every_row_runs_its_port_contract(section: str, catalogue: Catalogue, row: Backend) -> None:
    assert row.adapter is not None
    adapter = row.adapter.split(":")[1]
    module = catalogue.contract.removesuffix("Contract")
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", module).lower()
    assert hasattr(__import__(f"bento.testing.contracts.{snake}", fromlist=["_"]), catalogue.contract)
    runs = re.compile(rf"class Test\w+\({catalogue.contract}\):")
    found = [
        path
        for path in (ROOT / "tests").rglob("test_*.py")
        if runs.search(text := path.read_text()) and re.search(rf"\b{adapter}\b", text)
    ]
    assert found, f"no test runs {catalogue.contract} against {adapter}"


def test_contract_suites_ship_in_the_package() -> None:
    shipped = {path.stem for path in Path(bento.testing.contracts.__file__).parent.glob("*.py")}
    assert {"message_bus", "event_store", "work_queue", "channel", "inbox"} <= shipped


@pytest.mark.parametrize("section", PROVIDERS)
def test_container_selectors_are_derived_from_the_catalogue(section: str) -> None:
    selector = getattr(BentoContainer, PROVIDERS[section])
    if section in DISPATCHED:
        # One Resource that opens the selected row, so the store depending on it closes first.
        assert isinstance(selector, providers.Resource)
        builder = getattr(selector.provides, "__wrapped__", selector.provides)  # the container wraps it
        assert builder is open_selected and selector.args[0] is CATALOGUES[section]
        return
    assert isinstance(selector, providers.Selector)
    assert set(selector.providers) == set(CATALOGUES[section].names)


def test_message_bus_factory_and_type_follow_the_catalogue() -> None:
    assert [member.value for member in MessageBusType] == MESSAGE_BUSES.names
    assert MessageBusFactory.backends() == sorted(n for row in MESSAGE_BUSES for n in (row.name, *row.aliases))
    bus = MessageBusFactory.create("MEMORY")
    assert type(bus).__name__ == "InProcessMessageBus"


@pytest.mark.parametrize(("section", "catalogue", "row"), ROWS, ids=IDS)
def test_url_schemes_imply_the_backend(section: str, catalogue: Catalogue, row: Backend) -> None:
    for scheme in row.schemes:
        assert catalogue.infer({"url": f"{scheme}://host:1/"}) == row.name
    if section == "event":
        for scheme in row.schemes:
            field = "service_url" if row.name == "pulsar" else "servers" if row.name == "nats" else "url"
            value: object = [f"{scheme}://host:1"] if field == "servers" else f"{scheme}://host:1/"
            assert load_settings(event={"x": {field: value}}).event["x"].backend == row.name


def test_unknown_backend_names_the_variable_and_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPSHOT_STORE__BACKEND", "oracle")
    with pytest.raises(ValueError, match="SNAPSHOT_STORE__BACKEND") as caught:
        load_settings()
    assert "memory" in str(caught.value) and "clickhouse" in str(caught.value)


def test_each_store_is_selected_by_its_own_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_STORE__BACKEND", "clickhouse")
    monkeypatch.setenv("READ_MODEL__BACKEND", "clickhouse")
    monkeypatch.setenv("CHECKPOINT_STORE__BACKEND", "redis")
    settings = load_settings()
    assert settings.snapshot_store.backend == "clickhouse"  # unset: follows the event store
    assert settings.checkpoint_store.backend == "redis"  # set: its own
    monkeypatch.setenv("SNAPSHOT_STORE__BACKEND", "memory")
    assert load_settings().snapshot_store.backend == "memory"


def test_clickhouse_knobs_live_in_clickhouse_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_STORE__TABLE", "history")
    with pytest.raises(ValueError, match="EVENT_STORE__TABLE"):
        load_settings()  # the memory store has no table
    monkeypatch.setenv("EVENT_STORE__BACKEND", "clickhouse")
    assert load_settings().event_store.table == "history"  # type: ignore[attr-defined]


def test_layer_contracts_list_every_adapter_package() -> None:
    packages = {
        path.name
        for path in (ROOT / "src" / "bento" / "adapters").iterdir()
        if (path / "__init__.py").exists() and path.name != "shared"
    }
    contracts = PYPROJECT["tool"]["importlinter"]["contracts"]
    adapters = next(c for c in contracts if c.get("containers") == ["bento.adapters"])
    listed = {name.strip() for name in adapters["layers"][0].split("|")}
    assert listed == packages
    assert {row.extra for catalogue in CATALOGUES.values() for row in catalogue} - {None} <= packages


def test_nothing_else_lists_backend_names() -> None:
    """The container, the factory and the managers hold no table of backend names of their own."""
    sources = [
        ROOT / "src/bento/infrastructure/container.py",
        ROOT / "src/bento/infrastructure/message_bus_factory.py",
        ROOT / "src/bento/managers/mq.py",
        ROOT / "src/bento/managers/channel.py",
        ROOT / "src/bento/managers/cache.py",
        ROOT / "src/bento/managers/events/manager.py",
    ]
    for path in sources:
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        names = {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        }
        assert not names & {"inprocess", "memory", "rabbitmq", "pulsar", "redis", "nats", "clickhouse"}, path.name
    assert backends.MESSAGE_BUSES.get("memory").name == "inprocess"
