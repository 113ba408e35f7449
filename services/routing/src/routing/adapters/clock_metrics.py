"""SLA clocks by state for ``/metrics``, counted from the clock table when scraped."""

from __future__ import annotations

from rx_telemetry.metrics import Sample, add_probe
from sqlalchemy import case, func, select
from sqlalchemy.engine import Engine

from .tables import ClockRow, table

_CLOCKS = table(ClockRow)
_STATE = case(
    (_CLOCKS.c.breached_at.is_not(None), "breached"),
    (_CLOCKS.c.stopped_at.is_not(None), "stopped"),
    (_CLOCKS.c.warned_at.is_not(None), "warned"),
    else_="pending",
)
_COUNTS = select(_CLOCKS.c.kind, _STATE, func.count()).group_by(_CLOCKS.c.kind, _STATE)
STATES = ("pending", "warned", "breached")


def add_clock_probe(engine: Engine) -> None:
    """``rx_sla_clocks{kind, state}``: clocks running without a warning (pending), running
    past their warning (warned), and every clock that ever breached (breached, a count that
    only grows, so ``increase()`` gives the breach rate)."""

    def read() -> Sample:
        samples: dict[tuple[str, ...], float] = {}
        with engine.connect() as conn:
            for kind, state, count in conn.execute(_COUNTS):
                if state in STATES:
                    samples[(kind, state)] = float(count)
        for kind in {k for k, _ in samples}:
            for state in STATES:
                samples.setdefault((kind, state), 0.0)
        return samples

    add_probe(
        "rx_sla_clocks",
        "SLA clocks by kind and state: pending, warned (running past the warning), breached.",
        ["kind", "state"],
        read,
        key="routing",
    )
