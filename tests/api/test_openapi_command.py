"""`voexec openapi`: the document a running voexec serves, printed without starting a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from litestar.testing import TestClient

from core.settings import settings_from_mapping
from voexec.app import create_app
from voexec.cli import main


@pytest.fixture
def config(tmp_path: Path) -> Path:
    file = tmp_path / "voexec.yaml"
    file.write_text(f"data_dir: {tmp_path / 'configured-var'}\n", encoding="utf-8")
    return file


def _served(tmp_path: Path) -> dict[str, object]:
    settings = settings_from_mapping(
        {"data_dir": str(tmp_path / "served-var"), "vocabularies": {"offline": True}}
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, object] = response.json()
    return document


def test_the_printed_document_is_the_one_the_server_serves(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["openapi", "--config", str(config)]) == 0
    printed = json.loads(capsys.readouterr().out)

    assert printed == _served(tmp_path)
    # The broker's schemas are added when the app starts: their presence shows it was started.
    assert "/broker/requests" in printed["paths"]
    assert "ExecutionRequest" in json.dumps(printed)


def test_yaml_holds_the_same_document_as_json(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["openapi", "--config", str(config)]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert main(["openapi", "--yaml", "--config", str(config)]) == 0
    # safe_load: plain YAML with JSON types only, readable by any client.
    assert yaml.safe_load(capsys.readouterr().out) == as_json


def test_printing_the_document_leaves_no_data_behind(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["openapi", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("{")
    assert not (tmp_path / "configured-var").exists()
