"""Running a worker loop: graceful stop on SIGTERM/SIGINT, backoff on failure, pacing under
load, heartbeat file for container health checks (``python -m rx_messaging.healthcheck FILE``)."""

from __future__ import annotations

import enum
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PACE_MAX_MS = 100.0
"""The most a relay's or a consumer's pacing interval may be on the way to a provider or a
subscriber: beyond it the delay is the latency goal's, not a batching detail."""


def pace_setting(default_ms: float, worker: str, *, most_ms: float = PACE_MAX_MS) -> Any:
    """A service setting (pydantic ``Field``) for ``worker``'s pacing interval in milliseconds
    (:class:`Pacing`); out of 0..``most_ms`` it is refused when the settings are read."""
    from pydantic import Field  # only where settings are declared

    return Field(
        default=default_ms,
        ge=0,
        le=most_ms,
        description=f"Pacing of the {worker} under load: after a cycle that did work, the "
        "next starts no earlier than this many milliseconds after it started, so what arrives "
        "meanwhile is handled in one batch (one produce request or fetch, one transaction); a "
        "record arriving after a quiet spell is handled at once. 0 turns pacing off.",
    )


class Backoff:
    """Exponential backoff with a cap; reset after a success."""

    def __init__(self, first: float = 0.2, cap: float = 5.0) -> None:
        self.first, self.cap, self.current = first, cap, first

    def failed(self) -> float:
        delay, self.current = self.current, min(self.current * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.current = self.first


def install_stop_signals(on_stop: Callable[[], None] | None = None) -> threading.Event:
    """An event set by SIGTERM or SIGINT, so loops finish their batch and exit cleanly;
    ``on_stop`` also runs then (e.g. to end a wait the event cannot interrupt)."""
    stop = threading.Event()

    def stopping(*_: object) -> None:
        stop.set()
        if on_stop is not None:
            on_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stopping)
    return stop


class Cycle(enum.Enum):
    """What a worker-loop step did, when ``True``/``False`` (busy/idle) is not enough."""

    IDLE = "idle"
    """Found nothing: wait for work (``idle_wait``/``idle_sleep``); the next step is not paced."""
    DONE = "done"
    """Did work and emptied its source: wait for more as when idle, but paced."""
    MORE = "more"
    """Did work and more is waiting: step again, paced."""


class Pacing:
    """After a cycle that did work, the next starts no earlier than ``interval`` seconds after
    that one started; after a cycle that found nothing there is no delay. A worker that is
    idle or lightly loaded (work arriving more than ``interval`` after its last cycle) handles
    work at once; under load it runs at most one cycle per ``interval``, so what arrives
    meanwhile is handled in one batch: each cycle has a fixed cost (a produce request, a
    fetch answered, a transaction) that is then shared. A stop request ends a wait at once."""

    def __init__(
        self,
        interval: float,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval >= 0:
            raise ValueError(f"a pacing interval is seconds >= 0, not {interval!r}")
        self.interval, self.stop, self.clock = interval, stop, clock
        self._started = 0.0
        self._due = 0.0

    def started(self) -> None:
        """A cycle starts now."""
        self._started = self.clock()

    def ended(self, worked: bool) -> None:
        """The cycle just started did work (pace the next one) or found nothing (do not)."""
        self._due = self._started + self.interval if worked and self.interval > 0 else 0.0

    def wait(self) -> bool:
        """Wait until the next cycle may start; True if that meant waiting (and no stop)."""
        remaining = self._due - self.clock()
        return remaining > 0 and not self.stop.wait(remaining)


def run_loop(
    name: str,
    step: Callable[[], bool | Cycle],
    stop: threading.Event,
    *,
    idle_sleep: float = 0.05,
    idle_wait: Callable[[float], object] | None = None,
    heartbeat: Path | None = None,
    pace: float = 0.0,
) -> None:
    """Call ``step`` until ``stop`` is set. ``step`` returns True when it did work (call again
    at once) or False when idle: then wait ``idle_sleep`` seconds, or until ``idle_wait``
    (given that timeout) returns, e.g. on a wake-up; or a :class:`Cycle` (``MORE`` is True,
    ``IDLE`` False, ``DONE`` did work but waits as when idle). With ``pace`` seconds, a step
    after one that did work starts no earlier than ``pace`` after that one started
    (:class:`Pacing`); after such a wait ``idle_wait(0)`` takes the wake-ups that came
    meanwhile, since the step about to run covers them. Exceptions are logged and retried
    with backoff: a worker never dies of a passing fault, such as the broker being down."""
    backoff = Backoff()
    pacing = Pacing(pace, stop)
    log.info("%s started", name)
    while not stop.is_set():
        if pacing.wait() and idle_wait is not None:
            idle_wait(0)
        if stop.is_set():
            break
        pacing.started()
        try:
            cycle = _cycle(step())
        except Exception as exc:
            pacing.ended(False)
            delay = backoff.failed()
            log.warning("%s: %s; retrying in %.1fs", name, exc, delay)
            stop.wait(delay)
            continue
        pacing.ended(cycle is not Cycle.IDLE)
        backoff.reset()
        if heartbeat is not None:
            touch(heartbeat)
        if cycle is not Cycle.MORE and not stop.is_set():
            if idle_wait is not None:
                idle_wait(idle_sleep)
            else:
                stop.wait(idle_sleep)
    log.info("%s stopped", name)


def _cycle(result: bool | Cycle) -> Cycle:
    if isinstance(result, Cycle):
        return result
    return Cycle.MORE if result else Cycle.IDLE


def touch(path: Path) -> None:
    """Mark the worker alive now (the heartbeat file's time)."""
    try:
        path.touch()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def heartbeat_age(path: Path) -> float:
    """Seconds since the worker last completed a loop (infinity if never)."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
