"""The secret files an Alertmanager configuration depends on, per receiver, and what to say about the bad ones.

Alertmanager reads a secret file (a Slack webhook URL, an SMTP password, a push service's token) only when it sends
a notification, so `amtool check-config` passes with every secret file missing and the first notification of that
receiver is lost. This module finds, in a parsed ``alertmanager.yml``, every file each receiver will read: any
``*_file`` setting of its integrations (``api_url_file``, ``auth_password_file``, ``http_config``'s
``credentials_file``, ``password_file``, ``bearer_token_file``, a push service's ``token_file``...) and the global
defaults an integration falls back to (``global.slack_api_url_file`` for a Slack config without its own URL,
``global.smtp_auth_password_file`` for an email config without its own password).

Pure: it takes the parsed document and the state of each file (found by the caller) and returns values; it reads
nothing itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# An integration's own secret settings and the global default each falls back to when neither is set.
GLOBAL_FALLBACKS: dict[str, tuple[tuple[str, str], str]] = {
    "slack_configs": (("api_url", "api_url_file"), "slack_api_url_file"),
    "email_configs": (("auth_password", "auth_password_file"), "smtp_auth_password_file"),
}

# How a file may be unusable, as the check reports it.
MISSING, EMPTY, NOT_A_FILE, UNREADABLE = "missing", "empty", "not a file", "unreadable"


class AlertingConfigError(ValueError):
    """The document is not an Alertmanager configuration this check can read (one line naming what is wrong)."""


@dataclass(frozen=True)
class SecretFile:
    """A file a receiver reads when it notifies: which receiver, where in the config it is named, the path."""

    receiver: str
    setting: str  # e.g. "slack_configs[0].api_url_file" or "slack_configs[0] <- global.slack_api_url_file"
    path: str


def receiver_secret_files(config: Any) -> list[SecretFile]:
    """Every secret file of every receiver of a parsed ``alertmanager.yml``, in the file's order."""
    if not isinstance(config, Mapping):
        raise AlertingConfigError("not an Alertmanager configuration (a YAML mapping with `receivers:` expected)")
    receivers = config.get("receivers")
    if not isinstance(receivers, list) or not receivers:
        raise AlertingConfigError("no `receivers:` list")
    glob = config.get("global") or {}
    if not isinstance(glob, Mapping):
        raise AlertingConfigError("`global:` is not a mapping")
    found: list[SecretFile] = []
    for index, receiver in enumerate(receivers):
        if not isinstance(receiver, Mapping) or not isinstance(receiver.get("name"), str):
            raise AlertingConfigError(f"receivers[{index}]: a mapping with a `name:` expected")
        found.extend(_files_of(receiver, glob))
    return found


def _files_of(receiver: Mapping[str, Any], glob: Mapping[str, Any]) -> Iterator[SecretFile]:
    name = receiver["name"]
    for key, configs in receiver.items():
        if not key.endswith("_configs"):
            continue
        if not isinstance(configs, list):
            raise AlertingConfigError(f"receiver {name}: `{key}` is not a list")
        for i, integration in enumerate(configs):
            where = f"{key}[{i}]"
            if not isinstance(integration, Mapping):
                raise AlertingConfigError(f"receiver {name}: `{where}` is not a mapping")
            for setting, path in _file_settings(integration, where):
                yield SecretFile(name, setting, path)
            fallback = GLOBAL_FALLBACKS.get(key)
            if fallback is not None and not any(integration.get(own) for own in fallback[0]):
                default = glob.get(fallback[1])
                if isinstance(default, str) and default:
                    yield SecretFile(name, f"{where} <- global.{fallback[1]}", default)


def _file_settings(node: Mapping[str, Any], where: str) -> Iterator[tuple[str, str]]:
    """``(setting, path)`` for every ``*_file`` string under ``node`` (nested mappings such as ``http_config``)."""
    for key, value in node.items():
        if isinstance(value, Mapping):
            yield from _file_settings(value, f"{where}.{key}")
        elif isinstance(key, str) and key.endswith("_file") and isinstance(value, str) and value:
            yield f"{where}.{key}", value


def receiver_problems(files: list[SecretFile], states: Mapping[str, str | None]) -> list[str]:
    """One line per receiver with at least one unusable file (``states[path]``: None when usable, else MISSING,
    EMPTY, NOT_A_FILE or UNREADABLE), naming each bad file, its state and the setting that names it."""
    bad: dict[str, list[str]] = {}
    for secret in files:
        state = states.get(secret.path)
        if state is not None:
            bad.setdefault(secret.receiver, []).append(f"{secret.path} {state} ({secret.setting})")
    return [f"receiver {name}: " + "; ".join(problems) for name, problems in bad.items()]
