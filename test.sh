#!/usr/bin/env bash
# Install everything the tests need and run the whole suite: lint, type check, unit tests, promtool/amtool checks and the
# end-to-end tests against real Prometheus and Alertmanager. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v promtool >/dev/null || ! command -v prometheus-alertmanager >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
  else
    echo "test.sh: prometheus and prometheus-alertmanager (Debian packages) are needed; run as root or install them" >&2
    exit 2
  fi
fi
scripts/bootstrap.sh test
.venv/bin/ruff check .
.venv/bin/python -m mypy exporter/spreadwatch
exec .venv/bin/python -m pytest "$@"
