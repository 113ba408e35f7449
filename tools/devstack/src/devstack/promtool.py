"""Prometheus's ``promtool`` (Debian's ``prometheus`` package), installed on first use, for
checking the scrape config and alert rules under infra/prometheus."""

from __future__ import annotations

import shutil
from pathlib import Path

from .apt import Progress, ensure_installed


def promtool(progress: Progress = print) -> Path:
    """The path of ``promtool``, installing Debian's ``prometheus`` package if it is missing."""

    def find() -> Path | None:
        found = shutil.which("promtool")
        return Path(found) if found else None

    return ensure_installed(["prometheus"], "promtool", find, progress, missing="no promtool")
