"""The grid builder's PNG report: win rates and expected return on risk by DTE x band, one row of panels per regime.

Owns the picture only; takes the canonical grid frame. matplotlib is imported inside the function (Agg backend)
so importing this module, or the CLI, stays light. Must not: compute backtest statistics.

Each cell aggregates the configs of that DTE and band over spread types, flow modes and widths in the rows with
trend `all`, weighted by their trade counts: the win rate held to expiry, the managed win rate (the exit rules,
after costs), and the managed expected return on risk (average P&L / average max risk).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from spreadwatch.domain.vocabulary import BANDS, REGIMES


def cell_table(frame: pd.DataFrame, regime: str, managed: bool = False
               ) -> tuple[list[int], list[str], np.ndarray, np.ndarray]:
    """(dtes, bands, win rate [dte x band], expected return on risk [dte x band]) for one regime, held to expiry
    or `managed`; NaN where no trades. Every flow mode's rows are pooled (an entry in a with_flow row also sits in
    the neutral row), as the title says."""
    win_col, pnl_col = ("exit_win_rate", "exit_avg_pnl") if managed else ("win_rate", "avg_pnl")
    rows = frame[(frame["regime"] == regime) & (frame["trend"] == "all")]
    dtes = sorted(int(d) for d in frame["dte"].unique())
    bands = [b for b in BANDS if b in set(frame["band"])]
    win = np.full((len(dtes), len(bands)), np.nan)
    ret = np.full((len(dtes), len(bands)), np.nan)
    for i, dte in enumerate(dtes):
        for j, band in enumerate(bands):
            cell = rows[(rows["dte"] == dte) & (rows["band"] == band)]
            n = cell["n_trades"].to_numpy(float)
            if n.sum() > 0:
                win[i, j] = float((cell[win_col] * n).sum() / n.sum())
                ret[i, j] = float((cell[pnl_col] * n).sum() / (cell["avg_max_risk"] * n).sum())
    return dtes, bands, win, ret


def write_report(frame: pd.DataFrame, path: Path, title: str = "grid") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = [r for r in (*REGIMES, "all") if r in set(frame["regime"])]
    fig, axes = plt.subplots(len(regimes), 3, figsize=(15, 2.6 * len(regimes) + 0.8), squeeze=False)
    for r_i, regime in enumerate(regimes):
        dtes, bands, win, _ = cell_table(frame, regime)
        _, _, exit_win, exit_ret = cell_table(frame, regime, managed=True)
        panels = ((win, "win rate held to expiry", "RdYlGn", 0.5, 1.0, "{:.0%}"),
                  (exit_win, "win rate managed (exit rules)", "RdYlGn", 0.5, 1.0, "{:.0%}"),
                  (exit_ret, "expected return on risk, managed", "RdYlGn", -0.05, 0.05, "{:+.1%}"))
        for c_i, (values, label, cmap, lo, hi, fmt) in enumerate(panels):
            ax = axes[r_i][c_i]
            ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
            ax.set_xticks(range(len(bands)), bands)
            ax.set_yticks(range(len(dtes)), [f"{d} DTE" for d in dtes])
            ax.set_title(f"{regime}: {label}", fontsize=10)
            for i in range(len(dtes)):
                for j in range(len(bands)):
                    text = "-" if not np.isfinite(values[i, j]) else fmt.format(values[i, j])
                    ax.text(j, i, text, ha="center", va="center", fontsize=8)
    credit_source = str(frame["credit_source"].iloc[0]) if len(frame) else "?"
    span = f"entries {frame['data_start'].min()} .. {frame['data_end'].max()}" if len(frame) else ""
    fig.suptitle(f"{title}: {span}; credits {credit_source}; trend all, all spreads, flows and widths")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
