"""`spreadwatch grid build` and `grid show`: a CSV-sourced build end to end, one-line errors, every grid format."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pandas as pd
import pytest
from arch.data import sp500, vix
from click.testing import CliRunner

from spreadwatch.cli import cli
from spreadwatch.config import bundled_path
from spreadwatch.grid import CANONICAL_COLUMNS, load_grid


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
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
    assert tuple(pd.read_csv(out, nrows=0).columns) == CANONICAL_COLUMNS
    grid = load_grid(out)
    assert set(grid.frame["dte"]) == {1, 3} and set(grid.frame["band"]) == {"P95", "P99"}
    assert set(grid.frame["spread_width"]) == {25.0}
    assert png.read_bytes()[:4] == b"\x89PNG"

    code, output = invoke("grid", "show", str(out), "--top", "5")
    assert code == 0, output
    assert "(canonical)" in output and "0 impossible skipped" in output
    assert len([line for line in output.splitlines() if "09:30" in line]) == 5

    code, output = invoke("grid", "show", str(out), "--top", "500", "--min-trades", "40", "--json")
    assert code == 0, output
    shown = json.loads(output)["top"]
    assert shown and all(row["n_trades"] >= 40 for row in shown)
    assert len(shown) == int((grid.frame["n_trades"] >= 40).sum()) or len(shown) == 500


def test_grid_show_reads_the_originals_format_and_skips_impossible_rows() -> None:
    code, output = invoke("grid", "show", str(bundled_path("grid_trading_ready.csv")), "--json", "--top", "3")
    assert code == 0, output
    data = json.loads(output)
    assert data["format"] == "trading_ready"
    assert data["skipped_rows"] == 1727
    assert len(data["top"]) == 3
    scores = [row["trade_score"] for row in data["top"]]
    assert scores == sorted(scores, reverse=True)
    assert all(row["avg_credit"] <= row["spread_width"] * 100 for row in data["top"])


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
    assert code == 1 and "unknown --source 'ftp:x'" in output


def test_grid_show_missing_file_is_one_line(tmp_path: Path) -> None:
    code, output = invoke("grid", "show", str(tmp_path / "none.csv"))
    assert code == 1 and "grid file not found" in output
