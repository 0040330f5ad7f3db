"""The first minute is meaningful: the bundled day starts two replayed minutes before its first entry window, so
the first screen (landing page, `status`) has the last close's prices and regime, and the first in-window setups
follow within minutes of replayed time; an unknown value says why."""

from __future__ import annotations

import re
import time

import pytest

from exporter_support import FaultyProvider, Running, http_get, make_service, spreadwatch_process
from realstack import free_port, wait_until
from spreadwatch.app.runner import default_replay_start
from spreadwatch.config import Config, bundled_path
from spreadwatch.edges.calendar import MarketCalendar
from spreadwatch.edges.providers.replay import ReplayProvider

pytestmark = pytest.mark.slow  # the bundled grid and replayed cycles, or a real process: over 5 s here


def test_the_bundled_day_shows_known_values_at_once_and_setups_within_minutes(tmp_path):
    config = Config()
    provider = ReplayProvider(bundled_path("replay_sample.csv"), bundled=True)
    start = default_replay_start(provider, MarketCalendar.of(config), config)
    assert start.isoformat() == "2019-01-02T14:28:00+00:00"  # 06:28 PT: the entry hours open with the session
    service = make_service(tmp_path, FaultyProvider(provider), config=config, tickers=("SPX",),
                           grid=bundled_path("grid_spx.csv"), start=start)
    with Running(service) as running:
        page = http_get(running.url + "/")[1]
        assert "<td>SPX</td><td>2,506.85</td><td>25.42</td><td>high</td>" in page, page  # the last close
        assert "unknown" not in page, page
        assert "None: the entry hours are closed (they open at 06:30 PT)." in page, page
        replayed = running.until(lambda: service.snapshot.window_setups, within=10 * 60)
        page = http_get(running.url + "/")[1]
    assert replayed <= 3 * 60, replayed  # the first bar (09:31 ET) brings the regime, the scan and its setups
    assert re.search(r"SPX #1: 1DTE P98 IRON_CONDOR 25 wide @ 06:30 PT \| Win:", page), page


def test_run_at_its_default_speed_shows_a_known_regime_and_prices_within_10_seconds(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    started = time.monotonic()
    with spreadwatch_process(tmp_path, "run", "--listen", f"127.0.0.1:{port}", "--db", str(tmp_path / "b.db")):
        page = wait_until(lambda: (lambda body: body if "<td>SPX</td>" in body else None)(http_get(url)[1]),
                          30, "the landing page with SPX")
        shown_after = time.monotonic() - started
    assert "<td>SPX</td><td>2,506.85</td><td>25.42</td><td>high</td>" in page, page
    assert "2019-01-02 06:28:0" in page and "PT (2019-01-02T14:28:0" in page, page
    print(f"\nlanding page with a known regime and prices {shown_after:.1f} s after `spreadwatch run` started")
    assert shown_after < 10, shown_after
