"""Grid builder I/O: replay-format history, chain CSVs, the canonical CSV the scanner's loader reads, the report."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from arch.data import sp500, vix

from spreadwatch.app import gridbuild
from spreadwatch.config import Config, GridBuild
from spreadwatch.edges.gridfile import CANONICAL_COLUMNS, load_grid
from spreadwatch.edges.providers import DailyBar, ProviderError
from spreadwatch.edges.report import cell_table, write_report
from spreadwatch.errors import DataError, InputError

pytestmark = pytest.mark.usefixtures("no_network")


def write_replay(path: Path, start: str = "2016-01-01", end: str = "2018-12-31") -> Path:
    """arch's real S&P 500 and VIX daily bars in the replay format (stamped at the 16:00 ET close)."""
    px = sp500.load().loc[start:end]
    v = vix.load()["vix"].loc[start:end]
    lines = ["# arch S&P 500 and VIX daily bars, replay format", "timestamp,symbol,open,high,low,close,volume"]
    for day, r in px.iterrows():
        stamp = f"{day.date()}T21:00:00Z"
        lines.append(f"{stamp},^GSPC,{r.Open},{r.High},{r.Low},{r.Close},{r.Volume}")
    for day, level in v.items():
        if day.date() == date(2017, 3, 1):
            lines.append(f"{day.date()}T21:00:00Z,^VIX,,,,,")  # a blank bar: NaN, never a value
            continue
        lines.append(f"{day.date()}T21:00:00Z,^VIX,{level},{level},{level},{level},")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def replay_csv(tmp_path_factory) -> Path:
    return write_replay(tmp_path_factory.mktemp("hist") / "spx.csv")


@pytest.fixture(scope="module")
def built(replay_csv: Path, tmp_path_factory) -> tuple[Path, gridbuild.BuildResult]:
    out = tmp_path_factory.mktemp("grid") / "grid.csv"
    request = gridbuild.BuildRequest(ticker="SPX", source=f"csv:{replay_csv}", dtes=(0, 1, 5), bands=("P95", "P99"),
                                     widths=(10.0, 25.0), out=str(out), progress=False)
    return out, gridbuild.build(Config(), request)


def test_history_from_replay_csv_aligns_vol_and_keeps_blanks_missing(replay_csv: Path) -> None:
    hist = gridbuild.history_from_csv(replay_csv, ("^GSPC", "SPX"), "^VIX", "^VIX")
    px = sp500.load().loc["2016-01-01":"2018-12-31"]
    assert len(hist.dates) == len(px)
    np.testing.assert_allclose(hist.close, px["Close"].to_numpy())
    i = int(np.flatnonzero(hist.dates == np.datetime64("2017-03-01"))[0])
    assert np.isnan(hist.vol_index[i]) and np.isnan(hist.vix[i])
    assert hist.vol_index[i + 1] == pytest.approx(float(vix.load()["vix"].loc["2017-03-02"]))


def test_intraday_rows_aggregate_into_one_daily_bar(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "2025-11-24T14:35:00Z,^NDX,100,102,99,101,\n"
        "2025-11-24T20:55:00Z,^NDX,101,105,98,104,\n"
        "2025-11-24T21:00:00Z,^VXN,20,20,20,20,\n", encoding="utf-8")
    hist = gridbuild.history_from_csv(path, ("^NDX",), "^VXN", "^VIX")
    assert (hist.open[0], hist.high[0], hist.low[0], hist.close[0]) == (100, 105, 98, 104)
    assert np.isnan(hist.vix[0])  # no VIX rows: regime unknown, not invented


def test_history_without_the_vol_index_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("timestamp,symbol,open,high,low,close,volume\n2025-11-24T21:00:00Z,^NDX,1,1,1,1,\n")
    with pytest.raises(DataError, match=r"no rows for \^VXN"):
        gridbuild.history_from_csv(path, ("^NDX",), "^VXN", "^VIX")


def test_bad_history_cell_names_the_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("timestamp,symbol,open,high,low,close,volume\n2025-11-24T21:00:00Z,^NDX,1,x,1,1,\n")
    with pytest.raises(DataError, match=rf"^{path}:2: column high: not a number: 'x'$"):
        gridbuild.history_from_csv(path, ("^NDX",), "^VXN", "^VIX")


def test_output_has_exactly_the_canonical_columns_and_loads_in_the_scanner_unchanged(built, replay_csv: Path) -> None:
    out, result = built
    header = out.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert tuple(header) == CANONICAL_COLUMNS
    grid = load_grid(out)
    assert grid.format == "canonical"
    assert grid.skipped_rows == 0
    assert grid.rows == len(result.frame) > 100
    raw = pd.read_csv(out)
    assert set(raw["low_sample"].astype(str).str.lower()) <= {"true", "false"}
    assert set(raw["credit_source"]) == {"model"}
    # The window is the entry sessions tested for the row's DTE (100 trailing moves before, the expiry bar after),
    # not the history read (2016-01-04 .. 2018-12-31).
    dates = [str(d) for d in gridbuild.history_from_csv(replay_csv, ("^GSPC",), "^VIX", "^VIX").dates]
    for dte in (0, 1, 5):
        rows = raw[raw["dte"] == dte]
        assert set(rows["data_start"]) == {dates[100 + dte]}, dte
        assert set(rows["data_end"]) == {dates[-1 - dte]}, dte
    assert (result.history_start, result.history_end) == ("2016-01-04", "2018-12-31")
    np.testing.assert_allclose(grid.frame["trade_score"], raw["trade_score"], rtol=1e-9)


def test_days_limits_entries_to_the_last_sessions(replay_csv: Path, tmp_path: Path) -> None:
    request = gridbuild.BuildRequest(ticker="SPX", source=f"csv:{replay_csv}", days=60, dtes=(1,), bands=("P95",),
                                     widths=(25.0,), out=str(tmp_path / "g.csv"), progress=False)
    result = gridbuild.build(Config(), request)
    neutral = result.frame[(result.frame["regime"] == "all") & (result.frame["trend"] == "all")
                           & (result.frame["flow_mode"] == "neutral") & (result.frame["spread_type"] == "put_spread")]
    # 60 entry sessions, minus the last one (its 1-DTE expiry is past the data's end).
    assert int(neutral["n_trades"].iloc[0]) == 59
    assert bool(neutral["low_sample"].iloc[0]) is False


def test_days_and_start_together_are_refused(replay_csv: Path, tmp_path: Path) -> None:
    request = gridbuild.BuildRequest(ticker="SPX", source=f"csv:{replay_csv}", days=10, start=date(2018, 1, 2),
                                     out=str(tmp_path / "g.csv"), progress=False)
    with pytest.raises(InputError, match="not both"):
        gridbuild.build(Config(), request)


def write_chain(path: Path, rows: list[str]) -> None:
    path.write_text("timestamp,type,strike,bid,ask,expiration\n" + "\n".join(rows) + "\n", encoding="utf-8")


def test_chains_keep_the_first_snapshot_of_each_session_by_expiration(tmp_path: Path) -> None:
    write_chain(tmp_path / "a.csv", [
        "2025-11-24T14:35:00Z,P,19000,5.0,5.5,2025-11-25",
        "2025-11-24T14:35:00Z,put,18990,4.0,4.4,2025-11-25",
        "2025-11-24T14:35:00Z,C,21000,3.0,3.2,2025-11-26",
        "2025-11-24T19:00:00Z,P,19000,50.0,55.0,2025-11-25",  # a later snapshot: ignored
    ])
    book = gridbuild.read_chains(tmp_path)
    strikes, bids, asks = book.quotes[(date(2025, 11, 24), date(2025, 11, 25))]["put"]
    assert list(strikes) == [18990, 19000] and list(bids) == [4.0, 5.0] and list(asks) == [4.4, 5.5]
    assert "call" in book.quotes[(date(2025, 11, 24), date(2025, 11, 26))]
    assert "call" not in book.quotes[(date(2025, 11, 24), date(2025, 11, 25))]


def test_bad_chain_cell_names_file_line_and_column(tmp_path: Path) -> None:
    write_chain(tmp_path / "bad.csv", ["2025-11-24T14:35:00Z,X,19000,5.0,5.5,2025-11-25"])
    with pytest.raises(DataError, match=r"bad.csv: line 2: column type"):
        gridbuild.read_chains(tmp_path)


def test_empty_chain_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no chain CSVs"):
        gridbuild.read_chains(tmp_path)


class FakeProvider:
    label = "live"
    description = "fake"

    def __init__(self, bars: dict[str, list[DailyBar]]) -> None:
        self.bars = bars
        self.calls: list[tuple[str, date, int]] = []

    def daily(self, symbol: str, before: date, count: int) -> list[DailyBar]:
        self.calls.append((symbol, before, count))
        if symbol not in self.bars:
            raise ProviderError(symbol, "empty")
        return [b for b in self.bars[symbol] if b.day < before][-count:]


def test_history_through_the_provider_interface() -> None:
    px = sp500.load().loc["2018-01-01":"2018-12-31"]
    v = vix.load()["vix"].loc["2018-01-01":"2018-12-31"]
    bars = {
        "^GSPC": [DailyBar(d.date(), r.Open, r.High, r.Low, r.Close) for d, r in px.iterrows()],
        "^VIX": [DailyBar(d.date(), x, x, x, x) for d, x in v.items()],
    }
    provider = FakeProvider(bars)
    hist = gridbuild.history_from_provider(provider, "^GSPC", "^VIX", "^VIX", date(2018, 7, 1), 50)
    assert len(hist.dates) == 50 and hist.dates[-1] == np.datetime64("2018-06-29")
    assert np.isfinite(hist.vix).sum() >= 48  # arch's VIX has a few NaN days; they stay NaN
    missing_vix = FakeProvider({"^GSPC": bars["^GSPC"], "^VXN": bars["^VIX"]})
    hist = gridbuild.history_from_provider(missing_vix, "^GSPC", "^VXN", "^VIX", date(2018, 7, 1), 50)
    assert np.isnan(hist.vix).all()  # VIX down: regime unknown, the build goes on
    with pytest.raises(DataError, match=r"\^VXN: empty"):
        gridbuild.history_from_provider(FakeProvider({"^GSPC": bars["^GSPC"]}), "^GSPC", "^VXN", "^VIX",
                                        date(2018, 7, 1), 50)


def spx_2018_provider() -> FakeProvider:
    """The provider interface answering with the arch package's real 2018 S&P 500 and VIX daily bars."""
    px = sp500.load().loc["2018-01-01":"2018-12-31"]
    v = vix.load()["vix"].loc["2018-01-01":"2018-12-31"]
    return FakeProvider({
        "^GSPC": [DailyBar(d.date(), r.Open, r.High, r.Low, r.Close) for d, r in px.iterrows()],
        "^VIX": [DailyBar(d.date(), x, x, x, x) for d, x in v.items()],
    })


def test_yahoo_source_goes_through_make_provider(monkeypatch, tmp_path: Path) -> None:
    provider = spx_2018_provider()
    import spreadwatch.edges.providers as providers

    monkeypatch.setattr(providers, "make_provider", lambda spec: provider)
    request = gridbuild.BuildRequest(ticker="SPX", source="yahoo", end=date(2018, 12, 31), days=30, dtes=(1,),
                                     bands=("P95",), widths=(25.0,), out=str(tmp_path / "g.csv"), progress=False)
    result = gridbuild.build(Config(), request)
    # Read through the 1-DTE expiry of an entry on --end (2019-01-02), so that entry has its expiry bar.
    assert provider.calls and provider.calls[0][1] == date(2019, 1, 3)
    assert load_grid(tmp_path / "g.csv").rows == len(result.frame) > 0


def test_report_is_a_png_with_one_cell_per_dte_and_band(built, tmp_path: Path) -> None:
    out, result = built
    dtes, bands, win, ret = cell_table(result.frame, "all")
    assert dtes == [0, 1, 5] and bands == ["P95", "P99"]
    assert np.isfinite(win).all() and ((win >= 0) & (win <= 1)).all()
    rows = result.frame[(result.frame["regime"] == "all") & (result.frame["trend"] == "all")
                        & (result.frame["dte"] == 5) & (result.frame["band"] == "P99")]
    expected = (rows["win_rate"] * rows["n_trades"]).sum() / rows["n_trades"].sum()
    assert win[2, 1] == pytest.approx(expected)
    _, _, managed, managed_return = cell_table(result.frame, "all", managed=True)
    assert managed[2, 1] == pytest.approx((rows["exit_win_rate"] * rows["n_trades"]).sum() / rows["n_trades"].sum())
    assert managed_return[2, 1] == pytest.approx((rows["exit_avg_pnl"] * rows["n_trades"]).sum()
                                                 / (rows["avg_max_risk"] * rows["n_trades"]).sum())
    png = tmp_path / "report.png"
    write_report(result.frame, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_scanner_finds_opportunities_in_the_built_grid_with_its_band_moves(built) -> None:
    import dataclasses
    from datetime import UTC, datetime

    from spreadwatch.domain.scanner import scan
    from spreadwatch.edges.calendar import MarketCalendar

    out, result = built
    # The high regime's put spreads lose money once managed (2016-2018): relax the quality floors to check the
    # pipeline here, not the thresholds (test_cli_scan checks a default build under default settings).
    defaults = Config()
    config = dataclasses.replace(defaults, scan=dataclasses.replace(
        defaults.scan, min_roi=0.0, min_sharpe=-10.0, min_composite_score=-100.0, min_win_rate=0.0, min_trades=0))
    grid = load_grid(out)
    res = scan(grid, ticker="SPX", now=datetime(2019, 1, 2, 15, 0, tzinfo=UTC), calendar=MarketCalendar(),
               config=config, regime="high", trend="sideways", flow="down", flow_0dte="down", price=2500.0,
               include_all=True)
    assert res.matching_count > 0 and res.skipped_rows == 0
    opp = res.opportunities[0]
    assert opp.ticker == "SPX" and opp.credit < opp.spread_width * 100
    row = grid.frame[(grid.frame["dte"] == opp.dte) & (grid.frame["band"] == opp.band)].iloc[0]
    # The suggested short put comes from the grid's band moves (as of the data's end), snapped down.
    assert opp.spread_type == "put_spread"  # the high regime's only spread type
    assert opp.strikes is not None and opp.strikes.short_put is not None
    assert opp.strikes.short_put == np.floor(2500.0 * (1 + row["band_lower_move"]) / 5.0 + 1e-9) * 5.0


def test_start_end_window_is_the_entry_sessions_tested_not_the_history_read(replay_csv: Path, tmp_path: Path) -> None:
    request = gridbuild.BuildRequest(ticker="SPX", source=f"csv:{replay_csv}", start=date(2018, 6, 1),
                                     end=date(2018, 8, 31), dtes=(1, 5), bands=("P95",), widths=(25.0,),
                                     out=str(tmp_path / "g.csv"), progress=False)
    free = dataclasses.replace(Config(), grid_build=GridBuild(commission_per_leg=0.0, slippage_per_leg=0.0))
    result = gridbuild.build(free, request)  # no slippage: every entry's credit is at least a tick
    raw = pd.read_csv(tmp_path / "g.csv")
    # History after --end supplies the expiries, so every DTE's entries run through --end itself.
    assert set(raw["data_start"]) == {"2018-06-01"} and set(raw["data_end"]) == {"2018-08-31"}
    assert (result.history_start, result.history_end) == ("2016-01-04", "2018-12-31")
    lines = gridbuild.summary_lines(result, request)
    assert any("entry sessions backtested 2018-06-01 .. 2018-08-31" in line
               and "history read 2016-01-04 .. 2018-12-31" in line for line in lines)
    neutral = raw[(raw["regime"] == "all") & (raw["trend"] == "all") & (raw["flow_mode"] == "neutral")
                  & (raw["spread_type"] == "put_spread")]
    from spreadwatch.edges.calendar import MarketCalendar

    sessions = MarketCalendar().sessions_in_range(date(2018, 6, 1), date(2018, 8, 31))
    assert set(neutral["n_trades"]) == {len(sessions)}  # an entry on every session of the window, each DTE


def test_yahoo_end_reads_past_end_for_the_expiries_and_the_window_ends_on_end(monkeypatch, tmp_path: Path) -> None:
    provider = spx_2018_provider()
    import spreadwatch.edges.providers as providers

    monkeypatch.setattr(providers, "make_provider", lambda spec: provider)
    request = gridbuild.BuildRequest(ticker="SPX", source="yahoo", start=date(2018, 10, 1), end=date(2018, 11, 30),
                                     dtes=(5,), bands=("P95",), widths=(25.0,), out=str(tmp_path / "g.csv"),
                                     progress=False)
    gridbuild.build(Config(), request)
    # The 5th session after 2018-11-30 is 2018-12-10 (2018-12-05 closed, President Bush's funeral): read to it.
    assert {call[1] for call in provider.calls} == {date(2018, 12, 11)}
    raw = pd.read_csv(tmp_path / "g.csv")
    assert set(raw["data_start"]) == {"2018-10-01"} and set(raw["data_end"]) == {"2018-11-30"}


def test_library_deprecation_warnings_during_a_fetch_are_dropped_others_kept() -> None:
    import warnings

    site = "/usr/lib/python3/site-packages/yfinance/multi.py"
    own = str(Path(gridbuild.__file__))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gridbuild.quiet_third_party_warnings():
            warnings.warn_explicit("deprecated inplace", FutureWarning, site, 1, module="yfinance.multi")
            warnings.warn_explicit("deprecated values", DeprecationWarning, site, 2, module="yfinance.multi")
            warnings.warn_explicit("something real", UserWarning, site, 3, module="yfinance.multi")
            warnings.warn_explicit("our own deprecation", FutureWarning, own, 4, module="spreadwatch.app.gridbuild")
    assert sorted(str(w.message) for w in caught) == ["our own deprecation", "something real"]


def test_a_bare_date_is_a_daily_bar_of_that_session(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("timestamp,symbol,open,high,low,close,volume\n"
                    "2018-12-31,^GSPC,2498.94,2509.24,2482.82,2506.85,0\n"
                    "2018-12-31,^VIX,25.42,25.42,25.42,25.42,0\n", encoding="utf-8")
    hist = gridbuild.history_from_csv(path, ("^GSPC",), "^VIX", "^VIX")
    assert [str(d) for d in hist.dates] == ["2018-12-31"]  # not the 30th (midnight UTC is the day before in ET)
    assert hist.close[0] == 2506.85 and hist.vix[0] == 25.42


def test_the_widths_must_be_on_the_strike_grid(replay_csv: Path, tmp_path: Path) -> None:
    request = gridbuild.BuildRequest(ticker="NDX", source=f"csv:{replay_csv}", dtes=(1,), bands=("P95",),
                                     widths=(20.0, 25.0), out=str(tmp_path / "g.csv"), progress=False)
    with pytest.raises(InputError, match=r"^--widths: 25 is not a multiple of NDX's strike increment 10 "):
        gridbuild.build(Config(), request)
    assert not (tmp_path / "g.csv").exists()


@pytest.mark.slow
def test_the_bundled_grid_regenerates_byte_for_byte_from_its_script(tmp_path: Path) -> None:
    import subprocess
    import sys

    from spreadwatch.config import bundled_path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "grid.csv"
    subprocess.run([sys.executable, str(root / "scripts" / "make_bundled_grid.py"), str(out)], check=True,
                   capture_output=True, timeout=300)
    assert out.read_bytes() == bundled_path("grid_spx.csv").read_bytes()
