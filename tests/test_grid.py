"""Grid files: every format reads, bad cells are named by file/line/column, impossible rows are counted."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from spreadwatch.config import bundled_path
from spreadwatch.edges.gridfile import GridCache, load_grid
from spreadwatch.errors import DataError

GRIDS = Path(__file__).parent / "data" / "grids"


@pytest.mark.parametrize("name,fmt", [("trading_ready_sample.csv", "trading_ready"),
                                      ("grid_analysis_sample.csv", "analysis"),
                                      ("grid_dte1_sample.csv", "summary"),
                                      ("canonical_sample.csv", "canonical")])
def test_each_format_loads_into_canonical_units(name, fmt):
    grid = load_grid(GRIDS / name, skip_impossible=False)
    assert grid.format == fmt
    frame = grid.frame
    assert frame["win_rate"].between(0, 1).all()  # percent columns became fractions
    assert frame["entry_time_et"].str.match(r"^\d\d:\d\d$").all()
    assert frame["trade_score"].notna().all()


def test_trading_ready_mapping_of_the_first_row():
    frame = load_grid(GRIDS / "trading_ready_sample.csv", skip_impossible=False).frame
    first = frame.iloc[0]
    # dte 3, P98 IC against_flow w10 @10:30 ET: 91.4 % win, 393.65 % ROI, credit 21575.71, risk 5480.97
    assert (first.dte, first.band, first.spread_type, first.entry_time_et) == (3, "P98", "iron_condor", "10:30")
    assert first.win_rate == 0.914  # exactly: JSON shows 0.914, not 0.9140000000000001
    assert first.roi == pytest.approx(3.9365)
    assert first.avg_credit == pytest.approx(21575.71)
    assert bool(first.impossible)  # credit above width x 100 = 1000


def test_trade_score_is_computed_with_the_original_formula_when_missing():
    frame = load_grid(GRIDS / "canonical_sample.csv").frame
    row = frame.iloc[0]
    expected = 0.25 * 21.95 + 8 * 0.5 + 0.6 * 95 + 20000 / 2050
    assert row.trade_score == pytest.approx(expected, rel=1e-3)
    assert frame.iloc[1].trade_score == 90  # given: kept


SEED = GRIDS / "grid_trading_ready.csv"  # the original system's shipped grid, kept as a format example


def test_the_originals_grid_loads_and_every_row_breaks_the_arithmetic():
    grid = load_grid(SEED)
    assert grid.format == "trading_ready" and grid.total_rows == 4872
    # 1,727 rows claim a credit at or above the width; every other row a max risk that is not width x 100 -
    # credit (3,098 of them above width x 100 itself): none is a trade anyone could have made.
    assert grid.skipped_by_reason == {"credit >= width x 100": 1727, "max risk != width x 100 - credit": 3145}
    assert grid.skipped_rows == 4872 and grid.rows == 0


def test_impossible_rows_kept_when_asked():
    grid = load_grid(SEED, skip_impossible=False)
    assert grid.skipped_rows == 0 and grid.rows == 4872 and grid.skipped_by_reason == {}
    assert int(grid.frame["impossible"].sum()) == 4872
    risk_above_width = grid.frame["avg_max_risk"] > grid.frame["spread_width"] * 100
    assert int((risk_above_width & (grid.frame["impossible_reason"] != "credit >= width x 100")).sum()) == 3098


def test_bundled_grid_is_canonical_and_every_row_obeys_the_arithmetic():
    grid = load_grid(bundled_path("grid_spx.csv"))
    assert grid.format == "canonical" and grid.skipped_rows == 0 and grid.rows > 5000
    f = grid.frame
    assert ((f["avg_credit"] > 0) & (f["avg_credit"] < f["spread_width"] * 100)).all()
    assert ((f["avg_max_risk"] - (f["spread_width"] * 100 - f["avg_credit"])).abs() <= 1).all()
    assert set(f["ticker"]) == {"SPX"} and set(f["credit_source"]) == {"model"}
    assert f["exit_win_rate"].notna().all()


def write(tmp_path, text):
    path = tmp_path / "grid.csv"
    path.write_text(text)
    return path


def first_row_with(tmp_path, sample: str, **cells):
    """The header and first row of a sample grid in GRIDS, with some cells replaced, written as grid.csv."""
    lines = (GRIDS / sample).read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    for name, value in cells.items():
        row[header.index(name)] = value
    return write(tmp_path, "\n".join([lines[0], ",".join(row)]) + "\n")


def test_bad_value_names_file_line_and_column(tmp_path):
    lines = (GRIDS / "trading_ready_sample.csv").read_text().splitlines()
    lines[3] = lines[3].replace(",91.4,", ",ninety,", 1) if ",91.4," in lines[3] else lines[3]
    cells = lines[3].split(",")
    cells[8] = "ninety"  # expected_win_pct
    lines[3] = ",".join(cells)
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"grid\.csv: line 4: column expected_win_pct: bad value 'ninety'"):
        load_grid(path)


def test_blank_required_cell_is_an_error_but_blank_optional_is_missing(tmp_path):
    path = canonical_with(tmp_path, sharpe="")
    with pytest.raises(DataError, match="line 2: column sharpe: blank value"):
        load_grid(path)
    # The second sample row has blank exit_* and band_* cells: optional, read as missing.
    frame = load_grid(GRIDS / "canonical_sample.csv").frame
    assert frame.iloc[1][["exit_win_rate", "band_lower_move"]].isna().all()


def test_missing_column_unknown_format_and_no_rows(tmp_path):
    with pytest.raises(DataError, match="missing column.*max_risk_per_contract"):
        load_grid(write(tmp_path, "dte,band,spread_type,flow_mode,spread_width,entry_time_et,expected_win_pct\n"))
    with pytest.raises(DataError, match="line 1: not a known grid format"):
        load_grid(write(tmp_path, "a,b\n1,2\n"))
    header = (GRIDS / "trading_ready_sample.csv").read_text().splitlines()[0]
    with pytest.raises(DataError, match="no rows"):
        load_grid(write(tmp_path, header + "\n"))
    with pytest.raises(DataError, match="not found"):
        load_grid(tmp_path / "absent.csv")


def test_bad_enum_and_time_are_named(tmp_path):
    lines = (GRIDS / "trading_ready_sample.csv").read_text().splitlines()
    bad_band = lines[1].replace(",P98,", ",P42,", 1)
    with pytest.raises(DataError, match="line 2: column band: bad value 'P42'"):
        load_grid(write(tmp_path, "\n".join([lines[0], bad_band]) + "\n"))
    bad_time = lines[1].replace(",10:30,", ",25:99,", 1)
    with pytest.raises(DataError, match="line 2: column entry_time_et: bad time"):
        load_grid(write(tmp_path, "\n".join([lines[0], bad_time]) + "\n"))


def test_cache_rereads_only_when_the_file_changes(tmp_path):
    path = tmp_path / "grid.csv"
    shutil.copy(GRIDS / "trading_ready_sample.csv", path)
    cache = GridCache(path)
    first = cache.get()
    assert cache.get() is first and cache.loads == 1
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:11]) + "\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = cache.get()
    assert cache.loads == 2 and second.total_rows == 10


CANONICAL_HEADER = (GRIDS / "canonical_sample.csv").read_text().splitlines()[0]


def canonical_row(**cells):
    """One canonical row: the first sample row with some cells replaced."""
    header = CANONICAL_HEADER.split(",")
    row = dict(zip(header, (GRIDS / "canonical_sample.csv").read_text().splitlines()[1].split(","), strict=True))
    row.update({k: str(v) for k, v in cells.items()})
    return ",".join(row[h] for h in header)


def test_each_arithmetic_rule_skips_a_row_with_its_reason(tmp_path):
    # Width 10 (1,000 $ per contract), credit 400: risk is exactly 600, so ROI can be at most 0.667.
    rows = [
        canonical_row(spread_width=10, avg_credit=400, avg_max_risk=600, roi=0.6667),  # at the bound: fine
        canonical_row(spread_width=10, avg_credit=400, avg_max_risk=600, roi=1.0),     # ROI above it
        canonical_row(spread_width=10, avg_credit=1200, avg_max_risk=600, roi=2.0),    # credit > width x 100
        canonical_row(spread_width=10, avg_credit=400, avg_max_risk=600, roi=0.6, win_rate=1.2),
        canonical_row(spread_width=10, avg_credit=800, avg_max_risk=200, roi=4.0),     # ROI 400 % is possible
        canonical_row(spread_width=10, avg_credit=400, avg_max_risk=601.5, roi=0.66),  # risk off by $1.50
        canonical_row(spread_width=10, avg_credit=400, avg_max_risk=600.9, roi=0.66),  # within $1: rounding
        canonical_row(spread_width=10, avg_credit=1000, avg_max_risk=1, roi=0.5),      # credit = width x 100
        canonical_row(spread_width=10, avg_credit=0, avg_max_risk=1000, roi=0),        # no credit
    ]
    path = write(tmp_path, "\n".join([CANONICAL_HEADER, *rows]) + "\n")
    kept = load_grid(path, skip_impossible=False).frame
    assert list(kept["impossible_reason"]) == [
        "", "ROI above credit / (width x 100 - credit)", "credit >= width x 100", "win rate outside [0, 1]", "",
        "max risk != width x 100 - credit", "", "credit >= width x 100", "credit <= 0"]
    skipped = load_grid(path)
    assert skipped.skipped_rows == 6 and skipped.rows == 3 and list(skipped.frame["line"]) == [2, 6, 8]
    assert skipped.skipped_by_reason == {"credit <= 0": 1, "credit >= width x 100": 2,
                                         "max risk != width x 100 - credit": 1, "win rate outside [0, 1]": 1,
                                         "ROI above credit / (width x 100 - credit)": 1}


def test_counts_that_disagree_are_impossible(tmp_path):
    header = CANONICAL_HEADER + ",exit_n_wins"

    def row(n_wins, exit_n_wins, exit_win_rate):
        return canonical_row(spread_width=10, avg_credit=400, avg_max_risk=600, roi=0.66, n_trades=40,
                             win_rate=0.95, n_wins=n_wins, exit_win_rate=exit_win_rate) + f",{exit_n_wins}"

    rows = [row(38, 30, 0.75), row(41, 30, 0.75), row(30, 30, 0.75), row(38, 30, 0.5), row(38, "", 1.5),
            row(38, "", "")]
    path = write(tmp_path, "\n".join([header, *rows]) + "\n")
    kept = load_grid(path, skip_impossible=False).frame
    assert list(kept["impossible_reason"]) == ["", "counts disagree", "counts disagree", "counts disagree",
                                               "win rate outside [0, 1]", ""]
    assert kept["exit_win_rate"].isna().iloc[-1]  # blank: unknown, not an error


def test_original_formats_map_percent_and_pacific_times(tmp_path):
    analysis = load_grid(GRIDS / "grid_analysis_sample.csv", skip_impossible=False).frame
    raw = (GRIDS / "grid_analysis_sample.csv").read_text().splitlines()
    header, first = raw[0].split(","), raw[1].split(",")
    cell = dict(zip(header, first, strict=False))
    assert analysis.iloc[0].win_rate == pytest.approx(float(cell["win_rate_pct"]) / 100)
    assert analysis.iloc[0].roi == pytest.approx(float(cell["roi_pct"]) / 100)
    assert analysis.iloc[0].entry_time_et == cell["time_et"]  # ET kept; time_pst is only the display copy
    assert set(analysis["ticker"]) == {"all"} and set(analysis["regime"]) == {"all"}
    summary = load_grid(GRIDS / "grid_dte1_sample.csv", skip_impossible=False).frame
    # No ROI column in the summary format: avg credit / avg max risk, as the original computed it.
    assert summary["roi"].to_numpy() == pytest.approx((summary["avg_credit"] / summary["avg_max_risk"]).to_numpy())


def test_grid_records_mtime_and_cache_keeps_the_last_good_grid_on_a_bad_reload(tmp_path):
    path = tmp_path / "grid.csv"
    shutil.copy(GRIDS / "trading_ready_sample.csv", path)
    cache = GridCache(path)
    good = cache.get()
    assert good.mtime == pytest.approx(path.stat().st_mtime)
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a known grid format"):
        cache.get()
    assert cache.last is good


# ---- messages quote cells as written; provenance columns (credit_source, low_sample, window) ----------------


def canonical_with(tmp_path, **cells):
    """The canonical sample's first row with some cells replaced."""
    return first_row_with(tmp_path, "canonical_sample.csv", **cells)


@pytest.mark.parametrize(("column", "cell"), [
    ("dte", "-3"), ("dte", "1.5"), ("n_trades", "-1"), ("n_trades", "2.5"), ("spread_width", "0"),
    ("avg_max_risk", "-5.0"),
])
def test_out_of_range_value_is_quoted_as_written_not_as_a_numpy_repr(tmp_path, column, cell):
    with pytest.raises(DataError) as err:
        load_grid(canonical_with(tmp_path, **{column: cell}))
    message = str(err.value)
    assert f"line 2: column {column}: bad value '{cell}' (out of range: expected" in message
    assert "np." not in message and "float64" not in message


def test_out_of_range_in_an_original_format_names_its_own_column(tmp_path):
    path = first_row_with(tmp_path, "trading_ready_sample.csv", max_risk_per_contract=" -12.50")
    with pytest.raises(DataError, match=r"line 2: column max_risk_per_contract: bad value '-12.50' \(out of range"):
        load_grid(path)


def test_counts_load_as_integers():
    for name in ("canonical_sample.csv", "trading_ready_sample.csv"):
        frame = load_grid(GRIDS / name, skip_impossible=False).frame
        assert frame["n_trades"].dtype.kind == "i" and frame["dte"].dtype.kind == "i"


def test_provenance_columns_are_read_from_a_canonical_grid():
    frame = load_grid(GRIDS / "canonical_sample.csv").frame
    assert list(frame["credit_source"]) == ["model", "model"]
    assert list(frame["low_sample"]) == [False, False]  # written "False": read case-insensitively
    assert list(frame["data_start"]) == ["2024-01-02"] * 2 and list(frame["data_end"]) == ["2025-12-31"] * 2


def test_original_formats_record_no_credit_source_and_none_is_invented():
    frame = load_grid(GRIDS / "trading_ready_sample.csv", skip_impossible=False).frame
    for column in ("credit_source", "low_sample", "data_start", "data_end"):
        assert frame[column].map(lambda v: v is None).all(), column


def test_blank_provenance_cells_are_unknown(tmp_path):
    frame = load_grid(canonical_with(tmp_path, credit_source="", low_sample="", data_start="", data_end="")).frame
    assert frame.loc[0, ["credit_source", "low_sample", "data_start", "data_end"]].tolist() == [None] * 4
    frame = load_grid(canonical_with(tmp_path, credit_source="chains", low_sample="true")).frame
    assert frame.loc[0, "credit_source"] == "chains" and frame.loc[0, "low_sample"] is True


@pytest.mark.parametrize(("column", "cell"), [
    ("credit_source", "guess"), ("low_sample", "maybe"), ("data_start", "2024-13-01"), ("data_end", "soon"),
])
def test_bad_provenance_cell_is_named(tmp_path, column, cell):
    with pytest.raises(DataError, match=rf"line 2: column {column}: bad value '{cell}'"):
        load_grid(canonical_with(tmp_path, **{column: cell}))


@pytest.mark.parametrize("name", ["trading_ready_sample.csv", "grid_analysis_sample.csv", "grid_dte1_sample.csv",
                                  "canonical_sample.csv", "grid_trading_ready.csv", "bundled"])
def test_the_fast_read_gives_the_frame_the_text_read_gives(name, tmp_path):
    # load_grid lets the CSV reader parse the numeric columns; reading every cell as text (the way a file with a
    # bad number is re-read, for its message) must give the same frame, value for value.
    from pandas.testing import assert_frame_equal

    from spreadwatch.edges import gridfile

    path = GRIDS / name
    if name == "bundled":  # the first 3,000 rows: every format feature the builder writes, in well under a second
        path = tmp_path / "grid.csv"
        path.write_text("".join(bundled_path("grid_spx.csv").read_text().splitlines(keepends=True)[:3001]))
    for skip in (True, False):
        fast = load_grid(path, skip_impossible=skip)
        text = gridfile._grid(gridfile._read(path, typed=False), path, fast.mtime, skip)
        assert_frame_equal(fast.frame, text.frame, check_exact=True)
        assert (fast.format, fast.total_rows, fast.skipped_by_reason) == (text.format, text.total_rows,
                                                                         text.skipped_by_reason)


def test_a_number_the_fast_read_parses_but_refuses_is_quoted_as_written(tmp_path):
    lines = (GRIDS / "canonical_sample.csv").read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index("spread_width")] = "-5.50"  # parsed as -5.5 by the reader; the message quotes the file
    path = tmp_path / "grid.csv"
    path.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    with pytest.raises(DataError, match=r"line 2: column spread_width: bad value '-5.50' \(out of range"):
        load_grid(path)
    cells[header.index("spread_width")] = "1e999"  # infinite
    path.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    with pytest.raises(DataError, match=r"line 2: column spread_width: bad value '1e999' \(expected a number\)"):
        load_grid(path)
