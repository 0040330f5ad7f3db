"""`spreadwatch check-alerting`: the secret files of Alertmanager's receivers, checked before a notification is lost
(decorators, arguments and output only; the check is edges/secretfiles.py's, the rules domain/alerting.py's).

Alertmanager reads its secret files only when it notifies, so `amtool check-config` passes with all of them missing;
run this after editing ``alertmanager.yml`` or the secrets.
"""

from __future__ import annotations

import sys

import click

from spreadwatch.edges import cli as _cli
from spreadwatch.edges.cli import handle_errors


@_cli.cli.command("check-alerting")
@click.argument("alertmanager_config", required=False, default="alertmanager/alertmanager.yml",
                type=click.Path(dir_okay=False))
@click.option("--secrets-dir", type=click.Path(file_okay=False), default=None,
              help="Look for each secret file here by its name (the folder docker-compose mounts at "
                   "/etc/alertmanager/secrets, e.g. ./secrets); default: the paths as the config writes them.")
@handle_errors
def check_alerting(alertmanager_config: str, secrets_dir: str | None) -> None:
    """Report each receiver of ALERTMANAGER_CONFIG (default alertmanager/alertmanager.yml) whose secret file is
    missing or empty, one line per receiver; exit 1 if there is one."""
    from pathlib import Path

    from spreadwatch.edges.secretfiles import check_alertmanager_secrets

    report = check_alertmanager_secrets(Path(alertmanager_config), Path(secrets_dir) if secrets_dir else None)
    for line in report.problems:
        click.echo(line)
    if report.problems:
        click.echo(f"{alertmanager_config}: {len(report.problems)} of {report.receivers} receiver(s) cannot notify: "
                   "create the file(s) named above (one line each), then reload Alertmanager", err=True)
        sys.exit(1)
    click.echo(f"{alertmanager_config}: {len(report.files)} secret file(s) of {report.receivers} receiver(s), "
               "each present and not empty")
