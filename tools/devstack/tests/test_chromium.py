"""Chromium for browser tests: found where Debian puts it, installed with apt-get when missing,
and a clear error when it cannot be."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from devstack.chromium import ChromiumError, ensure_chromium_installed, find_chromium


def test_an_executable_browser_is_found_and_a_missing_one_is_not(tmp_path: Path) -> None:
    browser = tmp_path / "chromium"
    assert find_chromium(browser) is None
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    assert find_chromium(browser) == browser
    assert ensure_chromium_installed(path=browser) == browser, "present: nothing to install"


def test_without_root_a_missing_browser_is_an_error_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(ChromiumError, match=r"apt-get install .*chromium"):
        ensure_chromium_installed(path=tmp_path / "chromium")


def test_a_failed_install_is_an_error_with_the_apt_output_tail(
    tmp_path: Path, failing_apt: Callable[[str], None]
) -> None:
    failing_apt("chromium")
    progress: list[str] = []

    with pytest.raises(ChromiumError) as failure:
        ensure_chromium_installed(progress.append, path=tmp_path / "chromium")

    assert progress == ["installing Chromium (first run only)…"]
    assert "exited with 100" in str(failure.value)
    assert "Unable to locate package chromium" in str(failure.value)
