"""Container health check for workers: exit 0 if the heartbeat file is fresh.

``python -m rx_messaging.healthcheck /tmp/worker.alive [max_age_seconds]``"""

from __future__ import annotations

import sys
from pathlib import Path

from .worker import heartbeat_age


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m rx_messaging.healthcheck FILE [MAX_AGE_SECONDS]", file=sys.stderr)
        return 2
    max_age = float(argv[1]) if len(argv) > 1 else 30.0
    age = heartbeat_age(Path(argv[0]))
    if age > max_age:
        print(f"unhealthy: last heartbeat {age:.0f}s ago (limit {max_age:.0f}s)")
        return 1
    print(f"healthy: last heartbeat {age:.1f}s ago")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
