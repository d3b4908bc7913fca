from pathlib import Path

import pytest

from bento.cli import main
from bento.examples.orders.run import demo_settings, run_demo


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENTO_CONFIG", raising=False)


async def test_demo_runs_the_whole_flow() -> None:
    lines: list[str] = []
    report = await run_demo(demo_settings(), say=lines.append)
    by_id = {o.id: o for o in report.orders}
    assert set(by_id) == {"o-1", "o-2", "o-3"}
    assert by_id["o-1"].status == "paid" and by_id["o-1"].stock_reserved
    assert by_id["o-2"].stock_reserved and not by_id["o-3"].stock_reserved
    assert any("tea is low (3 left)" in m for m in report.mail)
    (letter,) = report.dead_letters
    assert letter.error_type == "DomainError" and letter.attempts == 3 and "5 wanted" in letter.error_message
    assert report.correlation_ok
    assert sum("inventory.stock.reserved" in e for e in report.events) == 2
    assert any("Dead-lettered" in line for line in lines)


def test_cli_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "config", "events", "projections"):
        assert command in out


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EVENT__DOMAIN__URL", "amqp://user:topsecret@host:5672/")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "topsecret" not in out and "domain:" in out
    assert "url: amqp://***@host:5672/" in out  # where it points stays readable


def test_config_errors_are_reported_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENT_STORE__BACKEND", "oracle")
    assert main(["config", "show"]) == 1
    err = capsys.readouterr().err
    assert "EVENT_STORE__BACKEND" in err and "Traceback" not in err
