"""Percentile bands: the tail percentiles of trailing signed moves, as the original backtest defined them.

Pure numpy: takes arrays, returns numbers. Used by the scanner (suggested strikes when a grid row carries no band
moves) and the grid builder (strikes at each entry). Percentiles use numpy's default linear method.
"""

from __future__ import annotations

import numpy as np

from spreadwatch.domain.vocabulary import BANDS


def band_percentiles(band: str) -> tuple[float, float]:
    try:
        return BANDS[band]
    except KeyError:
        raise ValueError(f"unknown band {band!r} (known: {', '.join(BANDS)})") from None


def signed_moves(closes: np.ndarray, horizon: int) -> np.ndarray:
    """Signed relative moves close[t + horizon] / close[t] - 1 for every t with both ends present."""
    closes = np.asarray(closes, dtype=float)
    if horizon < 1:
        raise ValueError("horizon must be >= 1 session; 0 DTE uses open-to-close moves (intraday_moves)")
    if closes.size <= horizon:
        return np.empty(0)
    return closes[horizon:] / closes[:-horizon] - 1.0


def intraday_moves(opens: np.ndarray, closes: np.ndarray) -> np.ndarray:
    """Open-to-close moves of each session: the horizon of a 0-DTE entry."""
    return np.asarray(closes, dtype=float) / np.asarray(opens, dtype=float) - 1.0


def band_edges(moves: np.ndarray, band: str) -> tuple[float, float]:
    """(lower, upper) signed move at the band's tail percentiles. P100 is the observed min/max."""
    moves = np.asarray(moves, dtype=float)
    moves = moves[np.isfinite(moves)]
    if moves.size == 0:
        raise ValueError("no moves to take percentiles of")
    lo, hi = band_percentiles(band)
    return float(np.percentile(moves, lo)), float(np.percentile(moves, hi))


def trailing_band_edges(closes: np.ndarray, horizon: int, band: str, window: int = 100) -> tuple[float, float]:
    """Band edges of the last `window` signed moves over `horizon` sessions, ending at the last close."""
    moves = signed_moves(closes, horizon)
    if moves.size < window:
        raise ValueError(f"need {window} moves over {horizon} sessions, have {moves.size}")
    return band_edges(moves[-window:], band)
