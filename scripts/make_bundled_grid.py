#!/usr/bin/env python3
"""Make the bundled grid with spreadwatch's own `grid build`, from real index history a package ships offline.

History: the `arch` package's S&P 500 daily bars (arch.data.sp500: open, high, low, close, 1999-01-04 ..
2018-12-31) and its daily VIX closes (arch.data.vix: 2014-01-03 .. 2019-01-03) as SPX's vol index and the regime's
VIX. They are written to a history file in the replay format (one bare-date row per symbol and session; blank VIX
days left out, never filled) and built with every setting at its default, exactly:

    spreadwatch grid build --ticker SPX --source csv:HISTORY --start 2014-01-06 --end 2018-12-31 --out OUT

Entries run from the first session with a previous VIX close (2014-01-06) to the last S&P 500 session; the S&P
500 from 1999 feeds the trailing bands. Rerunning this script reproduces the file byte for byte (a test checks it).

    python scripts/make_bundled_grid.py [OUT]    (needs the test extras: pip install -e '.[test]')
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "exporter" / "spreadwatch" / "data" / "grid_spx.csv"
FIRST_ENTRY = "2014-01-06"
LAST_ENTRY = "2018-12-31"


def write_history(path: Path) -> None:
    """arch's S&P 500 (as ^GSPC) and VIX (as ^VIX) daily bars in the replay format."""
    from arch.data import sp500, vix

    lines = ["# arch.data.sp500 (^GSPC, 1999-2018) and arch.data.vix (^VIX, 2014-2019) daily bars",
             "timestamp,symbol,open,high,low,close,volume"]
    for day, bar in sp500.load().iterrows():
        lines.append(f"{day.date()},^GSPC,{bar.Open:.6f},{bar.High:.6f},{bar.Low:.6f},{bar.Close:.6f},"
                     f"{int(bar.Volume)}")
    for day, level in vix.load()["vix"].items():
        if math.isfinite(level):
            lines.append(f"{day.date()},^VIX,{level:.2f},{level:.2f},{level:.2f},{level:.2f},0")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def command(history: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "spreadwatch", "grid", "build", "--ticker", "SPX", "--source", f"csv:{history}",
            "--start", FIRST_ENTRY, "--end", LAST_ENTRY, "--out", str(out)]


def main(out: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SPREADWATCH_CONFIG"}  # every setting at its default
    with tempfile.TemporaryDirectory() as tmp:
        history = Path(tmp) / "spx_vix_daily.csv"
        write_history(history)
        subprocess.run(command(history, out), check=True, env=env)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
