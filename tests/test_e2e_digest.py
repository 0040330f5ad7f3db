"""End to end on real components: the morning brief and the end-of-day summary of a replayed session reach Slack
(the HTTP sink) and email (the SMTP sink) through the repo's rules and Alertmanager routing, each exactly once, with
exactly the exporter's text, and nothing when they go down (send_resolved false).

The real exporter (loop, collector, HTTP server) runs the bundled SPX day on a virtual clock from 05:58 PT, with
5-minute task intervals (the digests go up and down on time whatever the intervals); the test holds the clock while
the pipeline works. A holiday sends nothing: that is the exporter's decision (tests/test_digest.py).
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest

from exporter_support import Running, make_service, scrape, utc
from spreadwatch.config import bundled_path, parse_config
from spreadwatch.edges.providers.replay import ReplayProvider
from spreadwatch.edges.store import PositionBook
from test_digest import BRIEF, SUMMARY, book_with_two_positions
from test_e2e_alerting import Stack

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
START = utc("2019-01-02T13:55:00Z")  # 05:55 PT, five minutes before the brief; cycles at :05, :15 ...
QUIET_SECONDS = 4.0  # wall seconds to wait for a duplicate that must not come (group_interval here is 2 s)


def up(url: str, kind: str) -> bool:
    return bool(re.search(rf'^spreadwatch_digest\{{[^}}]*kind="{kind}"[^}}]*\}} 1\.0$', scrape(url), flags=re.M))


def test_one_brief_and_one_summary_reach_slack_and_email_with_the_exporters_text(tmp_path: Path):
    db = tmp_path / "book.db"
    a, b = book_with_two_positions(db)
    config = parse_config({"events": {"extra": {"jobs": ["2019-01-04"]}},
                           "intervals": {"market_data_seconds": 600, "scan_seconds": 1800, "positions_seconds": 600}})
    service = make_service(tmp_path, ReplayProvider(bundled_path("replay_sample.csv")), start=START, config=config,
                           tickers=("SPX",), grid=bundled_path("grid_spx.csv"), db=db)
    stack = None
    try:
        with Running(service) as running:
            stack = Stack(tmp_path, urlparse(running.url).netloc)
            stack.prom.wait_for_up("spreadwatch")
            # The brief: up at 06:00 PT exactly (the loop wakes for it), held until both channels have it.
            running.until(lambda: up(running.url, "morning_brief"), within=600)
            assert service.clock.now() == utc("2019-01-02T14:00:00Z")
            title = "[BRIEF] Morning brief for Wed 2019-01-02"
            stack.wait_slack(title, after=0, timeout=60)
            stack.wait_email(title, after=0, timeout=60)
            # The day: the brief goes down at 06:30 PT; the 1-DTE position is closed at 09:00 PT.
            running.until(lambda: not up(running.url, "morning_brief"), within=1800)
            with PositionBook(db) as book:
                book.set_pnl(b, 100.0, now=service.clock.now(), close=True)
            running.until(lambda: service.clock.now() >= utc("2019-01-02T17:00:00Z"), within=4 * 3600)
            # The summary: up at 13:05 PT.
            running.until(lambda: up(running.url, "day_summary"), within=6 * 3600)
            assert service.clock.now() == utc("2019-01-02T21:05:00Z")
            summary_title = "[SUMMARY] End-of-day summary for Wed 2019-01-02"
            stack.wait_slack(summary_title, after=0, timeout=60)
            stack.wait_email(summary_title, after=0, timeout=60)
            running.until(lambda: not up(running.url, "day_summary"), within=1800)
            assert service.clock.now() == utc("2019-01-02T21:05:00Z") + timedelta(minutes=30)
            time.sleep(QUIET_SECONDS)  # a second notification, or a "resolved" one, would arrive by now

        brief = f"{title}\n{BRIEF.format(a=a, b=b)}"
        slack = [text for _, text in stack.slack_messages()]
        emails = [text for _, text in stack.emails()]
        assert [t for t in slack if t.startswith("[BRIEF]")] == [brief]
        assert [t for t in emails if t.startswith("[BRIEF]")] == [brief]
        summary = f"{summary_title}\n{SUMMARY.format(a=a)}"
        assert [t for t in slack if t.startswith("[SUMMARY]")] == [summary]
        assert [t for t in emails if t.startswith("[SUMMARY]")] == [summary]
        # No "resolved" digest (the day's other notifications, opportunities and the regime change, are theirs).
        assert not [t for t in slack + emails if "RESOLVED" in t and ("brief" in t or "summary" in t)]
    finally:
        if stack is not None:
            stack.stop()
