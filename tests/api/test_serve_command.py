"""`voexec serve`: the command line's host and port reach the settings the app is built from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import voexec.app
from core.settings import Settings
from voexec.cli import main


def test_host_and_port_options_become_the_server_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "voexec.yaml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\nvocabularies:\n  offline: true\n")
    built: list[Settings] = []
    served: list[dict[str, Any]] = []
    monkeypatch.setattr(voexec.app, "create_app", built.append)
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
    monkeypatch.setattr(voexec.app, "create_app", lambda settings: settings)
    monkeypatch.setattr("uvicorn.run", lambda app, **options: served.append(options))

    assert main(["serve", "--config", str(config)]) == 0
    assert (served[0]["host"], served[0]["port"]) == ("127.0.0.1", 8456)
