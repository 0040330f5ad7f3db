"""The replay CSV format has one reader and one rule for a missing number: blank, `nan` or `null` is NaN (no new
value), for the replay provider and for the grid builder's csv history alike."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from spreadwatch.edges.providers.replay import ReplayProvider
from spreadwatch.edges.replayfile import history_frame, parse_number, read_rows
from spreadwatch.errors import DataError

HEADER = "timestamp,symbol,open,high,low,close,volume\n"


def test_missing_numbers_are_nan_and_other_text_is_an_error():
    assert [math.isnan(parse_number(t)) for t in ("", " ", "nan", "NaN", "null", "NULL")] == [True] * 6
    assert parse_number(" 20100.5 ") == 20100.5
    with pytest.raises(ValueError):
        parse_number("n/a")


def test_null_close_is_no_value_for_the_provider_and_the_history(tmp_path: Path):
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + "2026-11-23,^NDX,1,2,0,null,\n2026-11-24,^NDX,1,2,0,5,7\n")
    rows = read_rows(path)
    assert math.isnan(rows[0].close) and math.isnan(rows[0].volume) and rows[1].close == 5
    provider = ReplayProvider(path)
    assert math.isnan(provider.daily("^NDX", rows[1].time.date(), 5)[0].close)
    assert math.isnan(history_frame(path)["close"].iloc[0])


def test_a_bad_cell_names_the_file_line_and_column(tmp_path: Path):
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + "# a comment\n2025-11-24T21:00:00Z,^NDX,1,x,1,1,\n")
    with pytest.raises(DataError, match=rf"^{path}:3: column high: not a number: 'x'$"):
        history_frame(path)
    with pytest.raises(DataError, match=rf"^{tmp_path / 'none.csv'}: history file not found$"):
        history_frame(tmp_path / "none.csv")



def test_every_stamp_and_number_form_reads_as_utc_rows(tmp_path: Path):
    """UTC stamps, other offsets, bare dates (16:00 ET), blank/NaN/null numbers and quoted cells all give the same
    kind of row: an aware UTC time and floats, NaN where a number is missing."""
    from datetime import UTC, datetime

    plain = tmp_path / "plain.csv"
    plain.write_text(HEADER + "2019-01-02T14:35:00Z,SPY,1,2,0.5,1.5,100\n"
                     "2019-01-02T09:36:00-05:00, SPY ,1,2,0.5,1.5,\n"
                     "2019-01-02,^GSPC,1,2,0.5,null,NaN\n")
    rows = read_rows(plain)
    assert [r.time for r in rows] == [datetime(2019, 1, 2, 14, 35, tzinfo=UTC),
                                      datetime(2019, 1, 2, 14, 36, tzinfo=UTC),
                                      datetime(2019, 1, 2, 21, 0, tzinfo=UTC)]
    assert all(r.time.tzinfo is UTC for r in rows)
    assert [r.symbol for r in rows] == ["SPY", "SPY", "^GSPC"]
    assert rows[0][2:] == (1.0, 2.0, 0.5, 1.5, 100.0)
    assert math.isnan(rows[1].volume) and math.isnan(rows[2].close) and math.isnan(rows[2].volume)
    quoted = tmp_path / "quoted.csv"
    quoted.write_text(HEADER + '"2019-01-02T14:35:00Z","SPY","1","2","0.5","1.5","100"\n')
    assert read_rows(quoted) == rows[:1]
    naive = tmp_path / "naive.csv"
    naive.write_text(HEADER + "2019-01-02T14:35:00,SPY,1,2,0.5,1.5,100\n")
    with pytest.raises(DataError, match=r":2: column timestamp: no time zone"):
        read_rows(naive)


def test_a_plain_file_and_its_quoted_twin_read_the_same_and_short_rows_are_named(tmp_path: Path):
    """Plain files are read by columns, quoted ones row by row: the same rows either way. A symbol spelled like a
    missing number stays a symbol, and a row with too few cells is named, never padded with NaN."""
    body = ["2019-01-02T14:35:00Z,NaN,1,2,0.5,1.5,null", "2019-01-02,^GSPC, 3 ,4,2,NAN,",
            "2019-01-02T09:36:00-05:00,SPY,1,2,0.5,1.5,7"]
    plain, quoted = tmp_path / "plain.csv", tmp_path / "quoted.csv"
    plain.write_text(HEADER + "\n".join(body) + "\n")
    quoted.write_text(HEADER + "\n".join(line.replace("NaN,", '"NaN",', 1) for line in body) + "\n")

    def comparable(path: Path) -> list[tuple]:
        return [(r.time, r.symbol, *(None if math.isnan(x) else x for x in r[2:])) for r in read_rows(path)]

    assert comparable(plain) == comparable(quoted)
    assert [r.symbol for r in read_rows(plain)] == ["NaN", "^GSPC", "SPY"]
    short = tmp_path / "short.csv"
    short.write_text(HEADER + body[2] + "\n2019-01-02T14:37:00Z,SPY,1,2,0.5,1.5\n")
    with pytest.raises(DataError, match=r":3: expected 7 fields, got 6$"):
        read_rows(short)
