"""Reading a ``/metrics`` answer back: for the ops console's pipeline panel and for tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.parser import text_string_to_metric_families

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""(sample name, its labels) -> value."""


def parse(text: str) -> Series:
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return series


def total(series: Series, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in series.items() if n == name and wanted <= ls)


def samples(series: Series, name: str) -> Iterable[tuple[Mapping[str, str], float]]:
    """Each of ``name``'s samples: its labels and value."""
    return ((dict(ls), v) for (n, ls), v in series.items() if n == name)
