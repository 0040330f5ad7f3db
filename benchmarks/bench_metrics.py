"""/metrics render time: the spreadwatch collector vs a bare prometheus_client registry with the same series.

Scenario: 3 tickers, 20 opportunities each, 50 open positions (the snapshot of tests/test_collector.py).
The baseline holds exactly the series our exposition has, as plain labelled Gauges/Counters with values set,
so the ratio measures the cost of building families from the snapshot on every scrape.
Usage: python benchmarks/bench_metrics.py [--repeat 300]
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import sys
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_collector import registry_for, snapshot  # noqa: E402


def bare_registry(text: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    for family in text_string_to_metric_families(text):
        labelnames = sorted({k for s in family.samples for k in s.labels})
        if family.type == "counter":
            metric = Counter(family.name, family.documentation or "x", labelnames, registry=registry)
            for s in family.samples:
                if s.name.endswith("_total"):
                    (metric.labels(**s.labels) if labelnames else metric).inc(s.value)
        else:
            metric = Gauge(family.name, family.documentation or "x", labelnames, registry=registry)
            for s in family.samples:
                (metric.labels(**s.labels) if labelnames else metric).set(s.value)
    return registry


def timed(registry: CollectorRegistry, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        generate_latest(registry)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#")
               and not re.match(r"\w+_created", line))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    snap = snapshot(tickers=("NDX", "SPX", "RUT"), n_opps=20, n_positions=50)
    snap = dataclasses.replace(snap, config=dataclasses.replace(
        snap.config, tickers={**snap.config.tickers, "RUT": snap.config.tickers["SPX"]}))
    ours = registry_for(snap)
    text = generate_latest(ours).decode()
    bare = bare_registry(text)
    assert series(generate_latest(bare).decode()) >= series(text), "baseline must hold the same series"
    for _ in range(20):  # warm up both
        generate_latest(ours)
        generate_latest(bare)
    t_ours, t_bare = timed(ours, args.repeat), timed(bare, args.repeat)
    print(f"series: {series(text)}")
    print(f"spreadwatch collector render: {t_ours * 1000:.2f} ms (median of {args.repeat})")
    print(f"bare registry, same series:   {t_bare * 1000:.2f} ms")
    print(f"ratio: {t_ours / t_bare:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
