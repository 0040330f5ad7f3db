"""End to end on real components: a replayed morning on which the index walks through a put spread's short strike.
The real exporter (loop, collector, HTTP server) replays tests/data/ndx/strike_walk.csv on a virtual clock; the
repo's Prometheus rules and Alertmanager routing deliver to the Slack HTTP sink. Nobody runs `positions update`:
the logged P&L is the entry's $0, stale after `exits.pnl_stale_after_minutes` (30 here), so the exits evaluate the
model mark.

The day (make_strike_walk.py): NDX 20,600 until 10:05 ET, then down 10 points a minute to 19,750 (11:30 ET); VXN 24.
The position: NDX 1DTE put spread 19,800/19,700, credit $330 (about the model's value at entry), stop -$660.
Expected, in this order: the stop from the model mark (the spread's estimated value past $990, near 20,290),
SpreadwatchShortStrikeNear (0.5 expected moves, near 20,000), SpreadwatchShortStrikeBreached (below 19,800); each
notifies exactly once while the walk goes on. The replayed times at which they arrive are printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from exporter_support import FaultyProvider, Running, make_service, scrape
from realstack import free_port, sample_value, wait_until
from spreadwatch.config import load_config_file
from spreadwatch.edges.providers.replay import ReplayProvider
from test_e2e_alerting import Stack, _et

pytestmark = pytest.mark.slow

WALK = Path(__file__).parent / "data" / "ndx" / "strike_walk.csv"
START = "2026-11-24T14:45:00+00:00"  # 09:45 ET: the position is entered, P&L $0 logged
CONFIG = "exits:\n  pnl_stale_after_minutes: 30\n"
NOTIFY_TIMEOUT = 30.0  # wall seconds; expected: scrape + evaluation + group_wait, a few seconds
WITHIN = 3 * 3600.0  # replay seconds a step_until may take (the whole walk is under two hours)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One Prometheus, Alertmanager and pair of sinks for the module, scraping a port the exporter listens on."""
    workdir = tmp_path_factory.mktemp("stack")
    port = free_port()
    stack = Stack(workdir, f"127.0.0.1:{port}")
    stack.port = port  # type: ignore[attr-defined]
    yield stack
    stack.stop()


def test_index_walking_through_a_short_strike_notifies_near_breached_and_a_model_stop_once_each(
        stack, tmp_path, capsys):
    cfg, db = tmp_path / "cfg.yml", tmp_path / "book.db"
    cfg.write_text(CONFIG, encoding="utf-8")
    env = {**os.environ, "SPREADWATCH_NOW": START}
    added = subprocess.run(
        [sys.executable, "-m", "spreadwatch", "--config", str(cfg), "positions", "add", "--ticker", "NDX", "--dte",
         "1", "--band", "P98", "--spread", "put_spread", "--flow-mode", "with_flow", "--contracts", "1", "--credit",
         "330", "--short-put", "19800", "--long-put", "19700", "--json", "--db", str(db)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert added.returncode == 0, added.stdout + added.stderr
    pid = json.loads(added.stdout)["id"]
    labels = {"position_id": pid, "ticker": "NDX", "spread_type": "put_spread", "band": "P98"}
    leg = {**labels, "leg": "short_put"}

    service = make_service(tmp_path, FaultyProvider(ReplayProvider(WALK)), config=load_config_file(cfg), db=db,
                           start=datetime.fromisoformat(START))
    arrived: dict[str, str] = {}  # what -> the replay clock (ET) when its notification arrived (the clock is held)

    def value(name: str, which: dict[str, str]) -> float | None:
        return sample_value(scrape(running.url), name, which)

    def step_until(predicate) -> None:
        running.until(predicate, within=WITHIN)

    def firing(reason: str) -> list[str]:
        return [text for _, text in stack.slack_messages() if text.startswith("[EXIT] ") and reason in text]

    def notified(what: str, reason: str) -> str:
        _, text = wait_until(lambda: next(((t, s) for t, s in stack.slack_messages()
                                           if s.startswith("[EXIT] ") and reason in s), None),
                             NOTIFY_TIMEOUT, f"a Slack message with {reason!r}")
        arrived[what] = f"{_et(service.clock.now().timestamp())}  {text.split(chr(10), 1)[0]}"
        return text

    with Running(service, ("127.0.0.1", stack.port)) as running:
        stack.prom.wait_for_up("spreadwatch")
        assert value("spreadwatch_position_exit_pnl_dollars", {**labels, "source": "logged"}) == 0.0

        # 1. The logged $0 goes stale at 10:15 ET; the model mark takes over and crosses the stop (-$660).
        step_until(lambda: (value("spreadwatch_position_exit_pnl_dollars", {**labels, "source": "model"})
                            or 0.0) <= -660)
        text = notified("stop loss from the model", "Reason: Stop loss hit")
        assert f"EXIT SIGNAL - Position {pid} | Reason: Stop loss hit | P&L: $-" in text, text
        assert "(estimated from the model, VXN 24.0, data " in text, text

        # 2. Within 0.5 expected moves of the 19,800 short put.
        step_until(lambda: (value("spreadwatch_position_short_strike_distance_expected_moves", leg) or 9) <= 0.5)
        text = notified("short strike near", "Reason: Short strike near")
        assert f"Position {pid} | Reason: Short strike near | short_put 19800 | NDX: " in text, text

        # 3. Through it.
        step_until(lambda: (value("spreadwatch_position_short_strike_distance_points", leg) or 1) < 0)
        text = notified("short strike breached", "Reason: Short strike breached")
        assert f"Position {pid} | Reason: Short strike breached | short_put 19800 | NDX: " in text, text

        # The walk goes on to 19,750 and holds: five more cycles, each held while Prometheus evaluates it; nothing
        # notifies again (hysteresis; repeat_interval is 30 minutes).
        for _ in range(5):
            shown = service.clock.now().timestamp()
            running.step()
            wait_until(lambda s=shown: stack.prom.query("max(spreadwatch_clock_timestamp_seconds)")
                       and float(stack.prom.query("max(spreadwatch_clock_timestamp_seconds)")[0]["value"][1]) > s,
                       NOTIFY_TIMEOUT, "Prometheus to scrape the next cycle")
        time.sleep(3)  # past group_interval (2 s): a second notification would have arrived
        ended = _et(service.clock.now().timestamp())
        counts = {reason: len(firing(reason)) for reason in
                  ("Reason: Stop loss hit", "Reason: Short strike near", "Reason: Short strike breached")}
        assert counts == dict.fromkeys(counts, 1), counts
        assert not [t for _, t in stack.slack_messages() if t.startswith("[RESOLVED]") and pid in t]
        history = subprocess.run([sys.executable, "-m", "spreadwatch", "--config", str(cfg), "positions", "list",
                                  "--json", "--db", str(db)], capture_output=True, text=True, timeout=60,
                                 cwd=tmp_path, env={**os.environ, "SPREADWATCH_NOW": START})
        assert json.loads(history.stdout)[0]["pnl"] == 0.0  # never updated: the stop came from the model

    with capsys.disabled():
        print("\nreplayed times (ET) at which each notification reached the Slack sink:")
        for what, at in arrived.items():
            print(f"  {what:26s} {at}")
        print(f"  (held through {ended}: one notification each)")
