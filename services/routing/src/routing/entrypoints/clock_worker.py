"""The clock worker (``python -m routing clock``): fires SLA warnings and breaches on time.

Deadlines live in the database, so clocks survive restarts of any process. The worker fires
what is due, then sleeps until the earliest next deadline (an index lookup) or until a commit
that started or resumed a clock due soon wakes it (``rx_messaging.wake``), but never longer
than its bound: ``adapters.clocks.LOOK_EVERY``, or ``clock_max_sleep_seconds`` where commits
cannot wake it.
Time comes from the injected clock and waiting from the injected ``wait``: tests move a fake
clock instead of sleeping."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..domain.clock import Clock
from ..service_layer import clocks
from ..service_layer.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


class ClockWorker:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        clock: Clock,
        max_sleep: float = 0.5,
        batch: int = 200,
    ) -> None:
        self.uow, self.clock, self.max_sleep, self.batch = uow, clock, max_sleep, batch

    def fire_due(self) -> int:
        """Fire every clock due now, ``batch`` per transaction; returns how many fired."""
        total = 0
        while True:
            fired = clocks.fire_due_clocks(self.uow(), self.clock.now(), self.batch)
            total += fired
            if fired < self.batch:
                if total:
                    log.info("fired %d clock(s)", total)
                return total

    def seconds_until_next(self) -> float:
        """How long to sleep: until the next deadline or warning, within [0, max_sleep]."""
        upcoming = clocks.next_due(self.uow())
        if upcoming is None:
            return self.max_sleep
        wait = (upcoming - self.clock.now()).total_seconds()
        return min(max(wait, 0.0), self.max_sleep)

    def step(self, wait: Callable[[float], object]) -> bool:
        """One loop turn: fire what is due, then ``wait`` until the next thing is."""
        self.fire_due()
        wait(self.seconds_until_next())
        return True
