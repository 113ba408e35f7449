"""Running a worker loop: graceful stop on SIGTERM/SIGINT, backoff on failure, heartbeat file
for container health checks (``python -m rx_messaging.healthcheck FILE``)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


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


def run_loop(
    name: str,
    step: Callable[[], bool],
    stop: threading.Event,
    *,
    idle_sleep: float = 0.05,
    idle_wait: Callable[[float], object] | None = None,
    heartbeat: Path | None = None,
) -> None:
    """Call ``step`` until ``stop`` is set. ``step`` returns True when it did work (call again
    at once) or False when idle: then wait ``idle_sleep`` seconds, or until ``idle_wait``
    (given that timeout) returns, e.g. on a wake-up. Exceptions are logged and retried with
    backoff: a worker never dies of a passing fault, such as the broker being down."""
    backoff = Backoff()
    log.info("%s started", name)
    while not stop.is_set():
        try:
            busy = step()
        except Exception as exc:
            delay = backoff.failed()
            log.warning("%s: %s; retrying in %.1fs", name, exc, delay)
            stop.wait(delay)
            continue
        backoff.reset()
        if heartbeat is not None:
            touch(heartbeat)
        if not busy and not stop.is_set():
            if idle_wait is not None:
                idle_wait(idle_sleep)
            else:
                stop.wait(idle_sleep)
    log.info("%s stopped", name)


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
