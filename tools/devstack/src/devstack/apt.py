"""Installing a Debian package on first use: tests and dev commands need real programs
(a PostgreSQL server, a browser) and Docker is not assumed.

We run as root on dev and CI machines; anyone else gets an error that says what to install.
A file lock keeps parallel test sessions from running apt-get at the same time."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

from .jars import cache_dir, last_lines

T = TypeVar("T")
Progress = Callable[[str], None]

_TIMEOUT = 900  # seconds; a cold install of a browser downloads ~100 MB
_LOG_TAIL_LINES = 40


class AptError(RuntimeError):
    """The package is missing and could not be installed; the message says why."""


def install_command(packages: list[str]) -> str:
    return f"apt-get install -y --no-install-recommends {' '.join(packages)}"


def ensure_installed(
    packages: list[str],
    what: str,
    find: Callable[[], T | None],
    progress: Progress,
    *,
    missing: str,
) -> T:
    """``find()``'s answer, installing ``packages`` first if it has none. ``missing`` says what
    was looked for (e.g. "no /usr/bin/chromium"); ``what`` names the program in messages."""
    found = find()
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise AptError(
            f"{what} is not installed ({missing}) and only root can install it: "
            f"run `sudo apt-get update && sudo {install_command(packages)}`"
        )
    if shutil.which("apt-get") is None:
        raise AptError(
            f"{what} is not installed ({missing}) and apt-get is not available to install it"
        )
    lock_dir = cache_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / "apt-install.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        found = find()  # another session may have installed it meanwhile
        if found is not None:
            return found
        progress(f"installing {what} (first run only)…")
        started = time.monotonic()
        _apt(["apt-get", "update"], what)
        _apt(["apt-get", "install", "-y", "--no-install-recommends", *packages], what)
        found = find()
        if found is None:
            raise AptError(f"`{install_command(packages)}` succeeded but there is still {missing}")
        progress(f"installed {what} in {time.monotonic() - started:.1f}s")
        return found


def _apt(command: list[str], what: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Wait for a dpkg lock held by someone else instead of failing at once.
    full = [command[0], "-o", "DPkg::Lock::Timeout=300", *command[1:]]
    try:
        result = subprocess.run(
            full, env=env, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise AptError(
            f"`{' '.join(command)}` did not finish in {_TIMEOUT}s while installing {what}"
        ) from exc
    if result.returncode != 0:
        tail = last_lines(result.stdout + result.stderr, _LOG_TAIL_LINES)
        raise AptError(
            f"installing {what} failed: `{' '.join(command)}` exited with "
            f"{result.returncode}:\n{tail}"
        )
