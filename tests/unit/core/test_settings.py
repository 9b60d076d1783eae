import hashlib
import re
from pathlib import Path

import pytest
import yaml

from core.errors import ConfigError
from core.settings import OpenSearchSearch, load_settings, settings_from_mapping

ROOT = Path(__file__).resolve().parents[3]


def test_defaults_are_embedded():
    settings = load_settings(None, {})
    assert settings.server.port == 8000
    assert settings.database_url.startswith("sqlite:///")
    assert settings.search.__class__.__name__ == "TantivySearch"


def test_environment_overrides_nested_values_and_unions():
    settings = load_settings(
        None,
        {
            "VOEXEC_SERVER__PORT": "9001",
            "VOEXEC_SEARCH": "{backend: opensearch, url: 'http://127.0.0.1:9200'}",
            "VOEXEC_HARVEST__ALLOWED_HOSTS": "[a.example, b.example]",
        },
    )
    assert settings.server.port == 9001
    assert isinstance(settings.search, OpenSearchSearch)
    assert settings.harvest.allowed_hosts == ["a.example", "b.example"]


def test_test_suite_variables_are_not_settings():
    # Any VOEXEC_TEST_* name, even one never heard of, must not be read as a setting: a
    # developer exporting it for the tests must still be able to start the service.
    environ = {
        "VOEXEC_TEST_SHARED": "/elsewhere/shared",
        "VOEXEC_TEST_POSTGRES_URL": "postgresql://127.0.0.1/test",
        "VOEXEC_TEST_SOMETHING__NEW": "1",
        "VOEXEC_REQUIRE_SERVICES": "1",
        "VOEXEC_SERVER__PORT": "9002",
    }
    assert load_settings(None, environ).server.port == 9002
    with pytest.raises(ConfigError, match="setting shared: unknown setting"):
        load_settings(None, {"VOEXEC_SHARED": "/elsewhere/shared"})


def test_client_and_session_variables_are_not_settings():
    # A researcher who exported the client's token, or a session that runs `voexec` inside a
    # platform's environment, must still be able to start a server.
    environ = {
        "VOEXEC_URL": "http://127.0.0.1:8000",
        "VOEXEC_BROKER_TOKEN": "a-token",
        "VOEXEC_SESSION": "/var/sessions/abc",
        "VOEXEC_CORES": "2",
        "VOEXEC_SERVER__PORT": "9003",
    }
    assert load_settings(None, environ).server.port == 9003


def test_environment_wins_over_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("server: {port: 7000, host: 0.0.0.0}\n")
    settings = load_settings(config, {"VOEXEC_SERVER__PORT": "7001"})
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 7001)


def test_config_file_from_environment(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("data_dir: /srv/voexec\n")
    assert load_settings(None, {"VOEXEC_CONFIG": str(config)}).data_dir == "/srv/voexec"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"server": {"port": "abc"}}, "setting server.port: Expected `int`, got `str`"),
        ({"server": {"port": 70000}}, "setting server.port: Expected `int` <= 65535"),
        ({"brokr": {}}, "setting brokr: unknown setting"),
        (
            {"broker": {"platforms": [{"name": "a", "capacity": {"cores": 0, "memory": 1}}]}},
            "setting broker.platforms[0].capacity.cores: Expected `int` >= 1",
        ),
        ({"search": {"backend": "elastic"}}, "setting search.backend: Invalid value 'elastic'"),
    ],
)
def test_bad_settings_name_the_setting(data, named):
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(data)
    assert caught.value.message == named


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml", {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad, {})
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="mapping at the top"):
        load_settings(scalar, {})


def test_example_configuration_loads():
    settings = load_settings(ROOT / "voexec.example.yaml", {})
    assert settings.broker.platforms, "the example documents at least one platform"


def test_the_examples_commented_out_platforms_load_once_uncommented(tmp_path):
    """The local and Slurm platforms are commented out in the example; they must stay valid."""
    text = (ROOT / "voexec.example.yaml").read_text()
    platform_item = re.compile(r"^    # (- name: .*)$")
    platform_line = re.compile(r"^    #   (.*)$")
    lines = []
    for line in text.splitlines():
        if item := platform_item.match(line):
            lines.append(f"    {item.group(1)}")
        elif (more := platform_line.match(line)) and lines and lines[-1].startswith("    "):
            lines.append(f"      {more.group(1)}")
        elif not line.startswith("    # "):
            lines.append(line)
    uncommented = tmp_path / "uncommented.yaml"
    uncommented.write_text("\n".join(lines) + "\n")

    # Platforms that run code refuse a voexec anybody may write to, unless told otherwise.
    with pytest.raises(ConfigError, match="platform 'workstation' runs what a request names"):
        load_settings(uncommented, {})
    allowed = {"VOEXEC_BROKER__ALLOW_ANONYMOUS_RUNS": "true"}
    platforms = load_settings(uncommented, allowed).broker.platforms
    adapters = {platform.name: platform.adapter for platform in platforms}
    assert adapters["workstation"] == "local"
    assert adapters["cluster"] == "slurm"


# ----------------------------------------------------------------------------- auth
LOCAL = {"name": "here", "adapter": "local", "capacity": {"cores": 2, "memory": 4}}
STRONG = "a-token-long-enough-to-be-kept-as-it-is-0123"


def test_plain_token_lists_are_refused_with_the_entries_to_paste():
    with pytest.raises(ConfigError) as refused:
        settings_from_mapping(
            {"broker": {"write_tokens": [STRONG, "x"]}, "catalogue": {"publish_tokens": [STRONG]}}
        )
    message = str(refused.value)
    assert message.startswith("setting broker.write_tokens: plain tokens are no longer read")
    digest = hashlib.sha256(STRONG.encode()).hexdigest()
    assert f"- {{name: write-1, sha256: {digest}, role: researcher}}" in message
    assert f"- {{name: publish-1, sha256: {digest}, role: packager}}" in message
    # A weak token is not carried over, and never printed.
    assert "write_tokens[1] is too short (1 characters)" in message
    assert "voexec token new write-2 --role researcher" in message
    pasted = message[message.index("auth:") :]
    assert yaml.safe_load(pasted)["auth"]["tokens"][0]["sha256"] == digest


@pytest.mark.parametrize(
    ("tokens", "named"),
    [
        (
            [
                {
                    "name": "a",
                    "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                }
            ],
            "auth.tokens[0].sha256: is the hash of an empty token",
        ),
        (
            [{"name": "a", "sha256": "0" * 64}, {"name": "a", "sha256": "1" * 64}],
            "auth.tokens[1].name: 'a' names two tokens",
        ),
        (
            [{"name": "a", "sha256": "0" * 64}, {"name": "b", "sha256": "0" * 64}],
            "auth.tokens[1].sha256: the same token is listed twice",
        ),
        ([{"name": "a", "sha256": "ABC"}], "auth.tokens[0].sha256"),
        ([{"name": "a b", "sha256": "0" * 64}], "auth.tokens[0].name"),
        ([{"name": "a", "sha256": "0" * 64, "role": "admin"}], "auth.tokens[0].role"),
    ],
)
def test_bad_token_entries_are_configuration_errors(tokens, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        settings_from_mapping({"auth": {"tokens": tokens}})


def test_a_platform_that_runs_code_needs_identities_or_an_explicit_setting():
    with pytest.raises(ConfigError, match=r"broker\.allow_anonymous_runs: true"):
        settings_from_mapping({"broker": {"platforms": [LOCAL]}})
    with_tokens = {"tokens": [{"name": "a", "sha256": "0" * 64}]}
    assert settings_from_mapping({"auth": with_tokens, "broker": {"platforms": [LOCAL]}})
    assert settings_from_mapping({"broker": {"platforms": [LOCAL], "allow_anonymous_runs": True}})
    simulated = {**LOCAL, "adapter": "simulated"}
    assert settings_from_mapping({"broker": {"platforms": [simulated]}})
