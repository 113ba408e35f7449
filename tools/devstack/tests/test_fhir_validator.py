"""The HAPI FHIR validator process: it finds what base R4 forbids, passes what it allows, says
clearly when it cannot be built, and never outlives the process that started it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from devstack.fhir_validator import MAIN_CLASS, FhirValidator, FhirValidatorError, ensure_built
from devstack.jars import java_executable

TASK = {
    "resourceType": "Task",
    "id": "t1",
    "status": "requested",
    "intent": "order",
    "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
    "focus": {"reference": "ServiceRequest/s1"},
    "authoredOn": "2026-01-01T10:00:00Z",
}


def test_a_valid_resource_has_no_errors(fhir_validator: FhirValidator) -> None:
    assert fhir_validator.errors(TASK) == []


def test_what_base_r4_forbids_is_an_error_naming_the_element(
    fhir_validator: FhirValidator,
) -> None:
    errors = fhir_validator.errors({**TASK, "status": "half-done", "intent": None})
    where = {error.expression for error in errors}
    assert "Task.status" in where, errors
    assert any("half-done" in error.message for error in errors)


def test_an_unknown_element_is_an_error(fhir_validator: FhirValidator) -> None:
    errors = fhir_validator.errors({**TASK, "colour": "blue"})
    assert any("colour" in error.message for error in errors), errors


def test_input_that_is_not_a_resource_is_refused(fhir_validator: FhirValidator) -> None:
    with pytest.raises(FhirValidatorError, match="refused"):
        fhir_validator.outcome(b"not json at all")


def test_the_validator_ends_when_its_starter_closes_its_input() -> None:
    lib, classes = ensure_built()
    process = subprocess.Popen(
        [java_executable(), "-cp", f"{classes}:{lib}/*", MAIN_CLASS, "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None
    process.stdin.close()  # as when the test run that started it is killed
    try:
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()


def test_a_missing_compiler_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the jars cached but the server not yet compiled and no JDK, the error says what
    to install."""
    monkeypatch.delenv("JAVA_HOME", raising=False)
    lib, _ = ensure_built()  # in the real cache
    monkeypatch.setenv("RX_CACHE_DIR", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / lib.parent.name
    cached.mkdir(parents=True)
    (cached / "lib").symlink_to(lib)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(FhirValidatorError, match="javac"):
        ensure_built()


def test_start_reports_a_process_that_dies(tmp_path: Path) -> None:
    validator = FhirValidator(tmp_path / "validator.log", heap="1k")  # the JVM refuses this heap
    with pytest.raises(FhirValidatorError, match="exited") as failure:
        validator.start(timeout=120)
    assert "heap" in str(failure.value).lower(), "the log tail says why"
