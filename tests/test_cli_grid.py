"""`spreadwatch grid build` and `grid show`: a CSV-sourced build end to end, one-line errors, every grid format."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from arch.data import sp500, vix
from click.testing import CliRunner

from spreadwatch.edges.cli import cli
from spreadwatch.edges.gridfile import CANONICAL_COLUMNS, load_grid


@pytest.fixture(autouse=True)
def isolated(no_network, monkeypatch):
    monkeypatch.setenv("SPREADWATCH_CONFIG", "")


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    px = sp500.load().loc["2017-01-01":"2018-12-31"]
    v = vix.load()["vix"].loc["2017-01-01":"2018-12-31"]
    lines = ["timestamp,symbol,open,high,low,close,volume"]
    lines += [f"{d.date()}T21:00:00Z,^GSPC,{r.Open},{r.High},{r.Low},{r.Close},{r.Volume}" for d, r in px.iterrows()]
    lines += [f"{d.date()}T21:00:00Z,^VIX,{x},{x},{x},{x}," for d, x in v.items()]
    path = tmp_path_factory.mktemp("cli") / "spx.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_grid_build_from_csv_writes_a_canonical_grid_and_a_report(history: Path, tmp_path: Path) -> None:
    out, png = tmp_path / "grid.csv", tmp_path / "report.png"
    code, output = invoke("grid", "build", "--ticker", "SPX", "--source", f"csv:{history}", "--dte", "1,3",
                          "--bands", "P95,P99", "--widths", "25", "--out", str(out), "--report", str(png))
    assert code == 0, output
    assert f"wrote {out}" in output and "credits from the model" in output and "no trade" in output
    assert "history read 2017-01-03 .. 2018-12-31" in output and "entry sessions backtested" in output
    assert tuple(pd.read_csv(out, nrows=0).columns) == CANONICAL_COLUMNS
    grid = load_grid(out)
    assert set(grid.frame["dte"]) == {1, 3} and set(grid.frame["band"]) == {"P95", "P99"}
    assert set(grid.frame["spread_width"]) == {25.0}
    assert png.read_bytes()[:4] == b"\x89PNG"

    code, output = invoke("grid", "show", str(out), "--top", "5")
    assert code == 0, output
    assert "(canonical)" in output and "0 impossible rows skipped" in output
    assert "managed" in output and "interval" in output  # held and managed win rates side by side
    assert f"{len(grid.frame)} modelled (Black-Scholes" in output and "0 from option chains" in output
    shown = [line for line in output.splitlines() if "09:30" in line]
    assert len(shown) == 5 and all(line.split()[-1] in ("model", "low") for line in shown)

    code, output = invoke("grid", "show", str(out), "--top", "500", "--min-trades", "40", "--json")
    assert code == 0, output
    shown = json.loads(output)["top"]
    assert shown and all(row["n_trades"] >= 40 for row in shown)
    # low_sample counts each loss episode once: n_effective, not n_trades.
    assert all(row["credit_source"] == "model" and row["low_sample"] is (row["n_effective"] < 30) for row in shown)
    assert all(type(row["n_trades"]) is int for row in shown)
    assert len(shown) == int((grid.frame["n_trades"] >= 40).sum()) or len(shown) == 500


SEED = Path(__file__).parent / "data" / "grids" / "grid_trading_ready.csv"  # the original's shipped grid


def test_grid_show_reads_the_originals_format_and_skips_every_impossible_row() -> None:
    code, output = invoke("grid", "show", str(SEED), "--json", "--top", "3")
    assert code == 0, output
    data = json.loads(output)
    assert data["format"] == "trading_ready" and data["rows"] == 4872
    assert data["skipped_rows"] == 4872 and data["top"] == []
    assert data["skipped_by_reason"] == {"credit >= width x 100": 1727, "max risk != width x 100 - credit": 3145}
    code, output = invoke("grid", "show", str(SEED), "--top", "3")
    assert "4872 impossible rows skipped (credit >= width x 100: 1727, max risk != width x 100 - credit: 3145)" \
        in output


@pytest.mark.parametrize(("args", "message"), [
    (["--bands", "P96"], "unknown band 'P96'"),
    (["--dte", "1,x"], "comma-separated list for --dte"),
    (["--days", "10", "--start", "2018-01-02"], "not both"),
    (["--start", "2018-13-01"], "not a date"),
])
def test_grid_build_bad_input_is_one_line(history: Path, tmp_path: Path, args: list[str], message: str) -> None:
    code, output = invoke("grid", "build", "--ticker", "SPX", "--source", f"csv:{history}",
                          "--out", str(tmp_path / "g.csv"), *args)
    assert code != 0
    assert message in output
    assert "Traceback" not in output
    assert not (tmp_path / "g.csv").exists()


def test_grid_build_missing_history_file_is_one_line(tmp_path: Path) -> None:
    code, output = invoke("grid", "build", "--ticker", "SPX", "--source", f"csv:{tmp_path / 'nope.csv'}",
                          "--out", str(tmp_path / "g.csv"))
    assert code == 1
    assert "history file not found" in output and "Traceback" not in output


def test_grid_build_unknown_source_is_one_line(tmp_path: Path) -> None:
    code, output = invoke("grid", "build", "--ticker", "SPX", "--source", "ftp:x", "--out", str(tmp_path / "g.csv"))
    assert code == 2 and "unknown --source 'ftp:x'" in output  # not a source at all: a malformed value


def test_grid_show_missing_file_is_one_line(tmp_path: Path) -> None:
    code, output = invoke("grid", "show", str(tmp_path / "none.csv"))
    assert code == 1 and "grid file not found" in output


# ---- grid show: where credits come from, low-sample rows, integer counts ---------------------------------------

ROW = dict(ticker="NDX", dte=1, band="P98", spread_type="put_spread", flow_mode="neutral", spread_width=25,
           entry_time_et="09:30", regime="all", trend="all", n_trades=60, n_wins=57, win_rate=0.95, avg_credit=45,
           avg_max_risk=2455, roi=0.0183, avg_pnl=10, sharpe=0.5, max_drawdown=300, trade_score="",
           exit_win_rate=0.9, exit_avg_pnl=8, band_lower_move=-0.012, band_upper_move=0.011, credit_source="model",
           low_sample="false", data_start="2026-06-01", data_end="2026-08-31")


def canonical_grid(path: Path, *rows: dict) -> Path:
    lines = [",".join(CANONICAL_COLUMNS)]
    lines += [",".join(str({**ROW, **row}.get(c, "")) for c in CANONICAL_COLUMNS) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def mixed_grid(tmp_path: Path) -> Path:
    return canonical_grid(
        tmp_path / "mixed.csv",
        dict(dte=1, sharpe=0.9, n_trades=12, n_wins=12, win_rate=1.0, low_sample="true"),  # best score, low sample
        dict(dte=3, sharpe=0.5, credit_source="chains", data_start="2026-05-15"),
        dict(dte=5, sharpe=0.1, credit_source=""),  # blank: not recorded
    )


def test_grid_show_labels_modelled_credits_and_low_sample_rows(mixed_grid: Path) -> None:
    code, output = invoke("grid", "show", str(mixed_grid), "--min-trades", "0")
    assert code == 0, output
    lines = output.splitlines()
    assert "1 modelled" in output and "1 from option chains" in output and "1 not recorded" in output
    assert "1 of the 3 rows loaded are marked low_sample" in output
    assert "entry sessions backtested: 2026-05-15 .. 2026-08-31" in output
    header = next(line for line in lines if line.lstrip().startswith("dte"))
    assert header.split()[-2:] == ["credits", "sample"]
    rows = [line for line in lines if "09:30" in line]
    assert [line.split()[0] for line in rows] == ["1", "3", "5"]  # by trade score
    assert rows[0].split()[-2:] == ["model", "low"]
    assert rows[1].split()[-1] == "chains"
    assert rows[2].split()[-1] == "?"


def test_grid_show_json_carries_credit_source_low_sample_and_integer_counts(mixed_grid: Path) -> None:
    code, output = invoke("grid", "show", str(mixed_grid), "--min-trades", "0", "--json")
    assert code == 0, output
    data = json.loads(output)
    assert data["credit_sources"] == {"model": 1, "chains": 1, "unknown": 1}
    assert data["low_sample_rows"] == 1
    top = data["top"]
    assert [(r["credit_source"], r["low_sample"]) for r in top] == [("model", True), ("chains", False), (None, False)]
    assert top[1]["data_start"] == "2026-05-15" and top[1]["data_end"] == "2026-08-31"
    for row in top:
        assert type(row["n_trades"]) is int and type(row["dte"]) is int  # 12, not 12.0
    assert '"n_trades": 12,' in output and '"n_trades": 12.0' not in output


def test_grid_show_of_an_original_grid_says_the_credit_source_is_not_recorded() -> None:
    grid = str(SEED)
    code, output = invoke("grid", "show", grid, "--top", "3", "--all-rows")  # impossible rows kept to be shown
    assert code == 0, output
    assert "credit source: not recorded (the original system's trading_ready format" in output
    assert "low sample: not recorded" in output
    assert "modelled" not in output.split("credit source")[1].splitlines()[0]
    rows = [line for line in output.splitlines() if "09:30" in line or "10:" in line]
    assert len(rows) == 3 and all(line.split()[-2:] == ["?", "?"] for line in rows)
    code, output = invoke("grid", "show", grid, "--top", "3", "--json", "--all-rows")
    data = json.loads(output)
    assert data["credit_sources"] == {"model": 0, "chains": 0, "unknown": 4872}
    assert data["low_sample_rows"] is None
    assert all(r["credit_source"] is None and r["low_sample"] is None for r in data["top"])
    assert all(type(r["n_trades"]) is int for r in data["top"])


def test_grid_show_bad_value_names_the_cell_plainly(tmp_path: Path) -> None:
    path = canonical_grid(tmp_path / "bad.csv", {}, dict(dte=-3))
    code, output = invoke("grid", "show", str(path))
    assert code == 1
    assert output.strip() == (f"Error: {path}: line 3: column dte: bad value '-3' "
                              "(out of range: expected a whole number from 0 to 20,000)")


def test_grid_build_with_yahoo_unreachable_is_one_line_without_library_warnings(monkeypatch, tmp_path: Path) -> None:
    import warnings

    from pandas.errors import Pandas4Warning

    import spreadwatch.edges.providers as providers
    from spreadwatch.edges.providers import ProviderError

    class Unreachable:
        label = "live"
        description = "yahoo (unreachable)"

        def daily(self, symbol, before, count):
            # What yfinance does offline: pandas deprecations raised from its own frames, then an empty frame.
            site = "/usr/lib/python3/site-packages/yfinance/multi.py"
            warnings.warn_explicit("The inplace keyword in DataFrame.rename is deprecated", Pandas4Warning,
                                   site, 220, module="yfinance.multi")
            warnings.warn_explicit("Downcasting object dtype arrays is deprecated", FutureWarning,
                                   site, 224, module="yfinance.multi")
            raise ProviderError(symbol, "empty", "download 1d returned an empty frame")

    monkeypatch.setattr(providers, "make_provider", lambda spec: Unreachable())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, output = invoke("grid", "build", "--ticker", "SPX", "--start", "2026-06-01", "--end", "2026-08-31",
                              "--out", str(tmp_path / "g.csv"))
    assert code == 1
    assert output.splitlines() == ["Error: history: ^GSPC: empty: download 1d returned an empty frame"]
    # (Only the library's own warnings are checked: other deprecations, e.g. the calendar's, are hidden by Python's
    # default filters outside pytest and are not this path's business.)
    assert [str(w.message) for w in caught if "yfinance" in w.filename] == []
    assert not (tmp_path / "g.csv").exists()
