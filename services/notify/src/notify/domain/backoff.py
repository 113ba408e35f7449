"""When to try a failing endpoint again: exponential backoff with jitter."""

from __future__ import annotations

import random
from collections.abc import Callable


def retry_delay(
    failures: int, first: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after the ``failures``-th failure in a row (1, 2, …): the step doubles
    from ``first`` up to ``cap``; half of it is fixed and half random ("equal jitter"), so
    endpoints coming back after an outage are not hit by every subscription at once, and no
    retry comes sooner than half its step."""
    step = min(cap, first * 2 ** max(0, failures - 1))
    return step / 2 + step / 2 * rand()
