"""The market mark on the loop (app/chains.py): delayed option chains fetched within the rate limit and reused
between fetches, each open position marked at its legs' mids beside the model mark (source="market"), a failing
chain leaving the model mark and its source down; never on replay. The chain provider is a stub behind the provider
interface (the Yahoo parsing is tested on a payload in test_providers_yahoo.py); no network."""

from __future__ import annotations

import dataclasses
import threading
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from exporter_support import FaultyProvider, Running, make_service, sample
from spreadwatch.config import Config
from spreadwatch.edges.cli import cli
from spreadwatch.edges.providers import OptionQuote, ProviderError
from spreadwatch.edges.providers.replay import ReplayProvider

WALK = Path(__file__).parent / "data" / "ndx" / "strike_walk.csv"
START = datetime.fromisoformat("2026-11-24T14:45:00+00:00")  # 09:45 ET on the synthetic walk day
CHAIN = [OptionQuote("put", 19800.0, 10.2, 11.0, None), OptionQuote("put", 19700.0, 6.1, 6.9, None),
         OptionQuote("put", 19850.0, 14.0, 13.2, None), OptionQuote("call", 20500.0, 4.0, 4.6, None)]


class LiveWithChains(FaultyProvider):
    """The walk day's bars, labelled live, with a chain provider: `failing` makes every chain a rate limit."""

    def __init__(self) -> None:
        super().__init__(ReplayProvider(WALK))
        self.label = "live"
        self.failing = False
        self.asked: list[tuple[str, date]] = []

    def option_chain(self, symbol: str, expiry: date) -> list[OptionQuote]:
        self.asked.append((symbol, expiry))
        if self.failing:
            raise ProviderError(symbol, "rate_limit", "Too Many Requests")
        return list(CHAIN)


def config(**marks) -> Config:
    """The market mark on, first in the exit P&L's order; positions every 30 s, chains at most every 60 s."""
    base = Config()
    return dataclasses.replace(
        base, marks=dataclasses.replace(base.marks, chain=True, chain_interval_seconds=60, **marks),
        intervals=dataclasses.replace(base.intervals, positions_seconds=30),
        exits=dataclasses.replace(base.exits, pnl_sources=("market", "model", "logged")))


def add_spread(db: Path, monkeypatch, short_put: str = "19800", long_put: str = "19700") -> str:
    monkeypatch.setenv("SPREADWATCH_NOW", START.isoformat())
    result = CliRunner().invoke(cli, ["positions", "add", "--db", str(db), "--ticker", "NDX", "--dte", "1",
                                      "--band", "P98", "--spread", "put_spread", "--flow-mode", "with_flow",
                                      "--contracts", "1", "--credit", "330", "--short-put", short_put,
                                      "--long-put", long_put, "--json"])
    assert result.exit_code == 0, result.output
    return result.output.split('"id": "', 1)[1].split('"', 1)[0]


def running_with_chains(tmp_path, monkeypatch, provider: LiveWithChains) -> tuple[Any, dict[str, str]]:
    db = tmp_path / "book.db"
    pid = add_spread(db, monkeypatch)
    service = make_service(tmp_path, provider, config=config(), db=db, start=START)
    return service, {"position_id": pid, "ticker": "NDX", "spread_type": "put_spread", "band": "P98"}


def test_positions_are_marked_at_the_chain_mids_and_a_chain_is_asked_at_most_once_per_interval(
        tmp_path, monkeypatch):
    provider = LiveWithChains()
    service, labels = running_with_chains(tmp_path, monkeypatch, provider)
    market = {**labels, "source": "market"}
    with Running(service) as running:
        # (10.2 + 11.0) / 2 - (6.1 + 6.9) / 2 = 4.10 a share: $410 to buy back, P&L 330 - 410 = -$80.
        assert sample(service, "spreadwatch_position_estimated_value_dollars", market) == 410.0
        assert sample(service, "spreadwatch_position_exit_pnl_dollars", market) == -80.0
        # The quotes are the chain's stated 15 minutes old at the fetch.
        assert sample(service, "spreadwatch_position_exit_pnl_age_seconds", market) == 900
        assert sample(service, "spreadwatch_position_estimated_pnl_dollars", {**labels, "source": "model"}) is not None
        assert sample(service, "spreadwatch_chain_up", {"source": "^NDX options"}) == 1
        assert provider.asked == [("^NDX", date(2026, 11, 25))]

        running.step()  # the next positions cycle (30 s) is inside the 60 s rate limit: the cached chain, no request
        assert service.clock.now() == START + timedelta(seconds=30)
        assert len(provider.asked) == 1
        assert sample(service, "spreadwatch_chain_age_seconds", {"source": "^NDX options"}) == 900 + 30
        assert sample(service, "spreadwatch_position_exit_pnl_dollars", market) == -80.0
        running.step()
        assert len(provider.asked) == 2  # due again 60 s after the first


def test_a_failing_chain_leaves_the_model_mark_and_reports_its_source_down_then_up(tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="spreadwatch.events")
    provider = LiveWithChains()
    provider.failing = True
    service, labels = running_with_chains(tmp_path, monkeypatch, provider)
    market = {**labels, "source": "market"}
    with Running(service) as running:
        assert sample(service, "spreadwatch_chain_up", {"source": "^NDX options"}) == 0
        assert sample(service, "spreadwatch_chain_errors_total", {"source": "^NDX options", "kind": "rate_limit"}) == 1
        assert sample(service, "spreadwatch_position_estimated_pnl_dollars", market) is None
        model_pnl = sample(service, "spreadwatch_position_estimated_pnl_dollars", {**labels, "source": "model"})
        assert sample(service, "spreadwatch_position_exit_pnl_dollars", {**labels, "source": "model"}) == model_pnl
        assert service.snapshot.tasks["positions"].ok  # the chain's failure is its source's, not the task's
        assert "Market data source ^NDX options is down" in caplog.text  # said as an index source's is

        provider.failing = False
        running.until(lambda: len(provider.asked) == 2, within=60)
        assert sample(service, "spreadwatch_chain_up", {"source": "^NDX options"}) == 1
        assert sample(service, "spreadwatch_position_exit_pnl_dollars", market) == -80.0
        assert "Market data source ^NDX options is back up" in caplog.text


def test_a_hung_chain_request_is_a_timeout_and_the_loop_goes_on(tmp_path, monkeypatch):
    db = tmp_path / "book.db"
    pid = add_spread(db, monkeypatch)
    release = threading.Event()

    class Hanging(LiveWithChains):
        def option_chain(self, symbol, expiry):
            self.asked.append((symbol, expiry))
            release.wait(60)
            return list(CHAIN)

    provider = Hanging()
    service = make_service(tmp_path, provider, config=config(), db=db, start=START, fetch_deadline=0.2)
    labels = {"position_id": pid, "ticker": "NDX", "spread_type": "put_spread", "band": "P98"}
    try:
        with Running(service) as running:
            assert sample(service, "spreadwatch_chain_up", {"source": "^NDX options"}) == 0
            assert sample(service, "spreadwatch_chain_errors_total", {"source": "^NDX options", "kind": "timeout"}) == 1
            assert sample(service, "spreadwatch_position_exit_pnl_dollars", {**labels, "source": "model"}) is not None
            running.until(lambda: service.chains.requests == 1 and len(provider.asked) == 1
                          and sample(service, "spreadwatch_chain_errors_total",
                                     {"source": "^NDX options", "kind": "timeout"}) == 2, within=60)
            assert len(provider.asked) == 1  # still hanging: not asked again, another timeout counted
            assert service.snapshot.tasks["positions"].ok
    finally:
        release.set()


def test_a_crossed_leg_is_flagged_and_gives_no_market_mark(tmp_path, monkeypatch):
    db = tmp_path / "book.db"
    pid = add_spread(db, monkeypatch, short_put="19850", long_put="19800")
    service = make_service(tmp_path, LiveWithChains(), config=config(), db=db, start=START)
    labels = {"position_id": pid, "ticker": "NDX", "spread_type": "put_spread", "band": "P98"}
    with Running(service):
        assert sample(service, "spreadwatch_position_market_quote_flag",
                      {**labels, "leg": "short_put", "flag": "crossed"}) == 1
        assert sample(service, "spreadwatch_position_estimated_pnl_dollars", {**labels, "source": "market"}) is None
        assert sample(service, "spreadwatch_position_exit_pnl_dollars", {**labels, "source": "model"}) is not None


def test_no_chain_is_asked_on_replay_or_with_the_chain_off(tmp_path):
    replay = make_service(tmp_path, FaultyProvider(ReplayProvider(WALK)), config=config(), start=START)
    assert replay.chains is None  # a replayed day has no chains: the model mark only
    off = LiveWithChains()
    service = make_service(tmp_path, off, config=dataclasses.replace(config(), marks=Config().marks), start=START)
    assert service.chains is None
    with Running(service) as running:
        running.step()
    assert off.asked == []
    assert sample(service, "spreadwatch_chain_up", {"source": "^NDX options"}) is None
    assert service.clock.now() == START + timedelta(seconds=30)
