"""Reading the services' ``/metrics``: counters, and quantiles of histograms the way
Prometheus computes them."""

from __future__ import annotations

import urllib.request

Buckets = list[tuple[float, float]]


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
    return text


def metric_value(text: str, name: str, labels: str | None = None) -> float | None:
    """Sum of every sample of ``name`` (whose labels contain ``labels``); None when absent."""
    total = None
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, _, value = line.rpartition(" ")
        metric, _, label_part = key.partition("{")
        if metric != name:
            continue
        if labels is not None and labels not in label_part:
            continue
        total = (total or 0.0) + float(value)
    return total


def histogram(text: str, name: str) -> tuple[Buckets, float, float]:
    """Cumulative buckets [(le, count)], count and sum of a Prometheus histogram."""
    buckets: Buckets = []
    count = total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append(
                (float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1]))
            )
        elif line.startswith(name + "_count"):
            count = float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_sum"):
            total = float(line.rsplit(" ", 1)[1])
    return sorted(buckets), count, total


def histogram_quantile(buckets: Buckets, q: float) -> float | None:
    """Prometheus-style linear interpolation inside the bucket holding quantile ``q``."""
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return None


def histogram_delta(after: Buckets, before: Buckets) -> Buckets:
    base = dict(before)
    return [(le, count - base.get(le, 0.0)) for le, count in after]
