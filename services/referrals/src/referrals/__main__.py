"""``python -m referrals api|relay|consumer`` — one code base, one process per role."""

from __future__ import annotations

import sys

from rx_web.server import configure_logging, serve

ROLES = ("api", "relay", "consumer")


def main(argv: list[str]) -> int:
    role = argv[0] if argv else ""
    if role not in ROLES:
        print(f"usage: python -m referrals {'|'.join(ROLES)}", file=sys.stderr)
        return 2
    configure_logging(f"referrals-{role}")
    if role == "api":
        from .config import get_settings

        settings = get_settings()
        serve("referrals.entrypoints.api.app:create_app", settings.host, settings.port)
    else:
        from .entrypoints import workers

        getattr(workers, role)()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
