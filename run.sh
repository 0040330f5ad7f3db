#!/usr/bin/env bash
# Quick start: install into .venv and run the exporter on the bundled replay day (labelled as replay).
# Live Yahoo data: ./run.sh --source yahoo     Any other `spreadwatch run` option may follow.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/spreadwatch run "$@"
