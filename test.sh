#!/usr/bin/env bash
# Install everything the tests need and run the whole suite: lint, type check, unit tests, promtool/amtool checks and the
# end-to-end tests against real Prometheus and Alertmanager. Extra args go to pytest.
# The tests run on two worker processes (pytest-xdist): the real-component tests spend most of their time waiting
# for Prometheus and Alertmanager timers, so two of them overlap well on a 2-core machine. `-n 0` runs them in one
# process (with `-s`, to see the latency tables some tests print); SPREADWATCH_TEST_WORKERS sets the default.
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
exec .venv/bin/python -m pytest -n "${SPREADWATCH_TEST_WORKERS:-2}" --dist worksteal "$@"
