"""Fixtures of the devstack tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def failing_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """``failing_apt(package)``: as root, with an apt-get on PATH whose install of
    ``package`` fails the way Debian's does when the package is unknown."""

    def install(package: str) -> None:
        fake = tmp_path / "fakebin"
        fake.mkdir()
        apt = fake / "apt-get"
        apt.write_text(
            '#!/bin/sh\necho "Reading package lists..."\n'
            f'case "$*" in *install*) echo "E: Unable to locate package {package}" >&2; '
            "exit 100;; esac\n"
        )
        apt.chmod(0o755)
        monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
        monkeypatch.setenv("RX_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.setattr("os.geteuid", lambda: 0)

    return install
