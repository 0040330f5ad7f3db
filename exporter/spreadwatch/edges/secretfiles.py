"""The state of the secret files an Alertmanager configuration names: present and not empty, or why not.

Owns: reading ``alertmanager.yml`` (through the config module's YAML reader), resolving each secret path as
Alertmanager does (relative to the configuration's folder) or under the folder the user keeps them in on this host
(``secrets_dir``: the compose file mounts ``./secrets/NAME`` at ``/etc/alertmanager/secrets/NAME``), and one ``stat``
(and, when permitted, one read) per file. Which files a receiver reads is the domain's (domain/alerting.py). Must
not: print, or write anything.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

from spreadwatch.config import read_yaml_file
from spreadwatch.domain.alerting import (
    EMPTY,
    MISSING,
    NOT_A_FILE,
    UNREADABLE,
    AlertingConfigError,
    SecretFile,
    receiver_problems,
    receiver_secret_files,
)
from spreadwatch.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SecretsReport:
    receivers: int
    files: list[SecretFile]  # with the paths as checked on this host
    problems: list[str]  # one line per receiver with a missing or empty file


def file_state(path: Path) -> str | None:
    """None for a regular file with something in it, else MISSING, EMPTY, NOT_A_FILE or UNREADABLE. A file this user
    may not read (Alertmanager's secrets are often owned by its own user) is judged by its size alone."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return MISSING
    except OSError:
        return UNREADABLE
    if not stat.S_ISREG(info.st_mode):
        return NOT_A_FILE
    if info.st_size == 0:
        return EMPTY
    if not os.access(path, os.R_OK):
        return None
    try:
        # Alertmanager trims the content: whitespace alone is an empty secret. Secrets are one line; a larger file
        # is read only as far as this needs.
        with path.open("rb") as handle:
            return EMPTY if not handle.read(65536).strip() else None
    except OSError:
        return UNREADABLE


def check_alertmanager_secrets(config_file: Path, secrets_dir: Path | None = None) -> SecretsReport:
    """Every secret file of every receiver of ``config_file`` and the receivers that have a bad one."""
    document = read_yaml_file(config_file, "Alertmanager config")
    try:
        files = receiver_secret_files(document)
    except AlertingConfigError as exc:
        raise ConfigError(f"{config_file}: {exc}") from None
    local = [dataclasses.replace(f, path=str(_on_this_host(f.path, config_file, secrets_dir))) for f in files]
    states = {f.path: file_state(Path(f.path)) for f in local}
    return SecretsReport(len(document["receivers"]), local, receiver_problems(local, states))


def _on_this_host(path: str, config_file: Path, secrets_dir: Path | None) -> Path:
    if secrets_dir is not None:
        return secrets_dir / Path(path).name
    named = Path(path)
    return named if named.is_absolute() else config_file.parent / named
