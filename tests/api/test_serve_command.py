"""`voexec serve`: the command line's host and port reach the settings the app is built from."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import voexec.app
from core.settings import Settings
from voexec.cli import main


def recording(built: list[Settings], services: list[Any] | None = None) -> Any:
    """A stand-in for `create_app` that keeps what it was given and returns a bare app."""

    def create_app(settings: Settings, given: Any = None) -> Any:
        built.append(settings)
        if services is not None:
            services.append(given)
        return SimpleNamespace(on_startup=[])

    return create_app


def test_host_and_port_options_become_the_server_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "voexec.yaml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\nvocabularies:\n  offline: true\n")
    built: list[Settings] = []
    served: list[dict[str, Any]] = []
    monkeypatch.setattr(voexec.app, "create_app", recording(built))
    monkeypatch.setattr("uvicorn.run", lambda app, **options: served.append(options))

    status = main(["serve", "--config", str(config), "--host", "0.0.0.0", "--port", "8123"])

    assert status == 0
    # The registry's base URL comes from these when `server.public_url` is unset.
    assert (built[0].server.host, built[0].server.port) == ("0.0.0.0", 8123)
    assert (served[0]["host"], served[0]["port"]) == ("0.0.0.0", 8123)


def test_without_options_the_configured_address_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "voexec.yaml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\nserver:\n  port: 8456\n")
    served: list[dict[str, Any]] = []
    monkeypatch.setattr(voexec.app, "create_app", recording([]))
    monkeypatch.setattr("uvicorn.run", lambda app, **options: served.append(options))

    assert main(["serve", "--config", str(config)]) == 0
    assert (served[0]["host"], served[0]["port"]) == ("127.0.0.1", 8456)


def test_workers_start_from_one_migrated_database_with_the_settings_resolved_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from voexec.cli import SETTINGS_ENV, worker_app
    from voexec.security import security_of
    from voexec.shared_limits import ENV, SharedBuckets

    config = tmp_path / "voexec.yaml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\nvocabularies:\n  offline: true\n")
    served: list[tuple[object, dict[str, Any]]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **options: served.append((app, options)))
    monkeypatch.setenv(SETTINGS_ENV, "")  # undone after the test, whatever main sets
    monkeypatch.setenv(ENV, "")

    assert main(["serve", "--config", str(config), "--port", "8124", "--workers", "3"]) == 0

    [(target, options)] = served
    assert target == "voexec.cli:worker_app"
    assert (options["workers"], options["factory"], options["port"]) == (3, True, 8124)
    # Migrated before any worker starts, so that they do not race on it.
    with sqlite3.connect(tmp_path / "var" / "voexec.db") as database:
        tables = {row[0] for row in database.execute("SELECT name FROM sqlite_master")}
    assert {"broker_session", "broker_work", "broker_outbox"} <= tables
    # Each worker builds its app from the settings the command resolved (the port included).
    built: list[Settings] = []
    services: list[Any] = []
    monkeypatch.setattr(voexec.app, "create_app", recording(built, services))
    worker_app()
    assert built[0].server.port == 8124
    assert built[0].data_dir == str(tmp_path / "var")
    # ... and keeps its rate-limit buckets in the one table the command made for them all.
    table = security_of(services[0]).limiter.store
    assert isinstance(table, SharedBuckets)
    assert table.path == tmp_path / "var" / "rate-limits.table"
    services[0].stop()


def test_workers_must_be_at_least_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--workers", "0"])
    assert "--workers" in capsys.readouterr().err
