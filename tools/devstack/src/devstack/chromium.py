"""Headless Chromium for browser tests, from Debian's ``chromium`` package.

Browser builds cannot be downloaded here (``playwright install`` fails), so tests drive the
distribution's browser through the Python ``playwright`` package (its bundled driver needs no
Node). Installed on first use like PostgreSQL (``devstack.apt``).

Without network access Chromium hangs on its background services unless they are switched
off: launch it with :data:`CHROMIUM_ARGS` and a fresh user data dir."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .apt import AptError, Progress, ensure_installed

CHROMIUM = Path("/usr/bin/chromium")

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",  # we run as root in containers, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Flags that keep Chromium from waiting on the network it does not have."""


class ChromiumError(RuntimeError):
    """Chromium is missing and could not be installed."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def find_chromium(path: Path = CHROMIUM) -> Path | None:
    return path if os.access(path, os.X_OK) else None


def ensure_chromium_installed(progress: Progress = _stderr, *, path: Path = CHROMIUM) -> Path:
    """The browser's executable, installing Debian's ``chromium`` package if it is missing."""
    try:
        return ensure_installed(
            ["chromium"], "Chromium", lambda: find_chromium(path), progress, missing=f"no {path}"
        )
    except AptError as exc:
        raise ChromiumError(str(exc)) from exc


if __name__ == "__main__":
    print(ensure_chromium_installed())
