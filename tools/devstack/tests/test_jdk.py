"""Java and the JDK's compiler are found the same way: $JAVA_HOME's first, then PATH's, and a
missing one is an error saying what to install."""

from __future__ import annotations

from pathlib import Path

import pytest
from devstack.errors import BrokerError
from devstack.fhir_validator import FhirValidatorError, _javac
from devstack.jars import java_executable


def tool(folder: Path, name: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("name", ["java", "javac"])
def test_java_home_comes_before_path(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tool(tmp_path / "home" / "bin", name)
    tool(tmp_path / "path", name)
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "home"))
    find = java_executable if name == "java" else _javac
    assert find() == home
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "elsewhere"))
    assert find() == str(tmp_path / "path" / name)


def test_a_missing_java_or_compiler_says_what_is_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(BrokerError, match="Java is not installed"):
        java_executable()
    with pytest.raises(FhirValidatorError, match=r"javac.*JDK 17"):
        _javac()
