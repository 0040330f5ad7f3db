"""`spreadwatch check-alerting`: every receiver whose secret file is missing or empty is reported before a
notification is lost (Alertmanager reads these files only when it notifies; `amtool check-config` passes without
them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from spreadwatch.domain.alerting import AlertingConfigError, receiver_secret_files
from spreadwatch.edges.cli import cli
from spreadwatch.edges.secretfiles import file_state

ROOT = Path(__file__).resolve().parents[1]
REPO_CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
SECRETS = "/etc/alertmanager/secrets"


def check(*args: str):
    return CliRunner().invoke(cli, ["check-alerting", *args])


def write_secrets(folder: Path, **contents: str) -> Path:
    folder.mkdir(exist_ok=True)
    for name, text in contents.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_the_repository_config_names_every_receivers_secret_files():
    files = receiver_secret_files(yaml.safe_load(REPO_CONFIG.read_text(encoding="utf-8")))
    by_receiver: dict[str, set[str]] = {}
    for f in files:
        by_receiver.setdefault(f.receiver, set()).add(f.path)
    slack, smtp, ntfy = f"{SECRETS}/slack_webhook_url", f"{SECRETS}/smtp_password", f"{SECRETS}/ntfy_token"
    assert by_receiver["slack"] == {slack}
    assert by_receiver["email"] == {smtp}
    assert by_receiver["slack-and-email"] == {slack, smtp}
    assert by_receiver["slack-email-phone"] == {slack, smtp, ntfy}
    assert by_receiver["slack-email-phone-urgent"] == {slack, smtp, ntfy}
    assert "deadman" not in by_receiver  # no integration, nothing to read
    settings = {f.setting for f in files if f.receiver == "slack-email-phone"}
    assert settings == {"slack_configs[0] <- global.slack_api_url_file", "email_configs[0] <- global.smtp_auth_password_file",
                        "webhook_configs[0].http_config.authorization.credentials_file"}


def test_an_integrations_own_secret_replaces_the_global_default():
    config = {"global": {"slack_api_url_file": "/s/global_url", "smtp_auth_password_file": "/s/global_pw"},
              "receivers": [{"name": "own", "slack_configs": [{"api_url_file": "/s/own_url"}],
                             "email_configs": [{"to": "a@b", "auth_password_file": "/s/own_pw"}]},
                            {"name": "inline", "slack_configs": [{"api_url": "https://example.invalid/x"}]},
                            {"name": "default", "slack_configs": [{"channel": "#x"}]}]}
    got = [(f.receiver, f.path) for f in receiver_secret_files(config)]
    assert got == [("own", "/s/own_url"), ("own", "/s/own_pw"), ("default", "/s/global_url")]


@pytest.mark.parametrize("document,message", [
    ("- a list", "not an Alertmanager configuration (a YAML mapping with `receivers:` expected)"),
    ("route: {receiver: x}", "no `receivers:` list"),
    ("receivers: [{channel: x}]", "receivers[0]: a mapping with a `name:` expected"),
    ("receivers: [{name: r, slack_configs: {api_url_file: x}}]", "receiver r: `slack_configs` is not a list"),
])
def test_a_document_that_is_no_alertmanager_config_is_refused_in_one_line(tmp_path, document, message):
    path = tmp_path / "am.yml"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(AlertingConfigError, match=re.escape(message)):
        receiver_secret_files(yaml.safe_load(document))
    result = check(str(path))
    assert result.exit_code == 1
    assert result.output == f"Error: {path}: {message}\n"


def test_every_secret_present_passes(tmp_path):
    secrets = write_secrets(tmp_path / "secrets", slack_webhook_url="https://hooks.example.invalid/1\n",
                            smtp_password="pw", ntfy_token="tk_abc\n")
    result = check(str(REPO_CONFIG), "--secrets-dir", str(secrets))
    assert result.exit_code == 0, result.output
    assert result.output == f"{REPO_CONFIG}: 14 secret file(s) of 8 receiver(s), each present and not empty\n"


def test_a_missing_and_an_empty_secret_are_reported_once_per_receiver(tmp_path):
    # The ntfy token missing and the SMTP password only whitespace (Alertmanager trims it: an empty password).
    secrets = write_secrets(tmp_path / "secrets", slack_webhook_url="https://hooks.example.invalid/1\n",
                            smtp_password=" \n")
    result = check(str(REPO_CONFIG), "--secrets-dir", str(secrets))
    assert result.exit_code == 1
    pw, token = secrets / "smtp_password", secrets / "ntfy_token"
    assert result.stdout.splitlines() == [
        f"receiver slack-and-email-firing: {pw} empty (email_configs[0] <- global.smtp_auth_password_file)",
        f"receiver slack-and-email: {pw} empty (email_configs[0] <- global.smtp_auth_password_file)",
        f"receiver digest: {pw} empty (email_configs[0] <- global.smtp_auth_password_file)",
        f"receiver email: {pw} empty (email_configs[0] <- global.smtp_auth_password_file)",
        f"receiver slack-email-phone: {pw} empty (email_configs[0] <- global.smtp_auth_password_file); {token} missing"
        " (webhook_configs[0].http_config.authorization.credentials_file)",
        f"receiver slack-email-phone-urgent: {pw} empty (email_configs[0] <- global.smtp_auth_password_file); {token}"
        " missing (webhook_configs[0].http_config.authorization.credentials_file)",
    ]
    assert "6 of 8 receiver(s) cannot notify" in result.stderr


def test_relative_paths_are_read_from_the_configs_folder_as_alertmanager_does(tmp_path):
    config = tmp_path / "conf" / "am.yml"
    config.parent.mkdir()
    config.write_text("receivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:1/\n"
                      "        http_config: {basic_auth: {username: u, password_file: secrets/pw}}\n", encoding="utf-8")
    assert check(str(config)).stdout == f"receiver hook: {config.parent / 'secrets' / 'pw'} missing " \
                                        "(webhook_configs[0].http_config.basic_auth.password_file)\n"
    write_secrets(config.parent / "secrets", pw="hunter2")
    result = check(str(config))
    assert result.exit_code == 0 and "1 secret file(s) of 1 receiver(s)" in result.output


def test_a_folder_where_a_secret_file_should_be_is_not_a_file(tmp_path):
    (tmp_path / "token").mkdir()
    assert file_state(tmp_path / "token") == "not a file"
    assert file_state(tmp_path / "absent") == "missing"
    (tmp_path / "ok").write_text("x", encoding="utf-8")
    assert file_state(tmp_path / "ok") is None


def test_a_missing_alertmanager_config_is_one_line(tmp_path):
    result = check(str(tmp_path / "nope.yml"))
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / 'nope.yml'}: Alertmanager config not found\n"
