"""The HAPI FHIR instance validator (base R4) as one long-lived local process, for tests.

Its jars come from Maven Central through ``infra/fhir-validator/pom.xml`` and are cached per
user like Kafka's (``devstack.jars``); the small server program beside the pom
(``infra/fhir-validator/src``) is compiled with the machine's JDK once per version of its
source and cached too. Validating a resource is then one loopback HTTP call of a few
milliseconds instead of a JVM start of half a minute.

CLI::

    python -m devstack.fhir_validator FILE.json …   # validate files; exit 1 on any error
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from .errors import BrokerError
from .jars import (
    Progress,
    cache_dir,
    fetch_jars,
    file_lock,
    infra_dir,
    java_executable,
    jdk_command,
    last_lines,
    read_text_or_none,
)
from .ports import free_ports

HAPI_VERSION = "8.8.0"
MAIN_CLASS = "FhirValidatorServer"
HEAP = "768m"
_LOG_TAIL_LINES = 40
_PORT_ATTEMPTS = 3


class FhirValidatorError(RuntimeError):
    """The validator could not be prepared or started, or did not answer; the message says why."""


@dataclass(frozen=True)
class Issue:
    """One issue of the validator's OperationOutcome."""

    severity: str
    expression: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity} at {self.expression}: {self.message}"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def validator_dir() -> Path:
    """``infra/fhir-validator`` of this checkout."""
    return infra_dir("fhir-validator", FhirValidatorError)


def ensure_built(progress: Progress = _stderr) -> tuple[Path, Path]:
    """``(lib, classes)``: the validator's jars and the compiled server, fetched and compiled
    on first use and cached under ``<cache>/fhir-validator-<version>``."""
    home = cache_dir() / f"fhir-validator-{HAPI_VERSION}"
    lib = fetch_jars(
        validator_dir() / "pom.xml",
        home / "lib",
        f"HAPI FHIR validator {HAPI_VERSION}",
        progress,
        FhirValidatorError,
    )
    sources = sorted((validator_dir() / "src").glob("*.java"))
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()
    classes = home / f"classes-{digest[:16]}"
    if (classes / f"{MAIN_CLASS}.class").is_file():
        return lib, classes
    with file_lock(home / ".lock"):
        if (classes / f"{MAIN_CLASS}.class").is_file():
            return lib, classes
        javac = _javac()
        progress("compiling the FHIR validator server (first run only)…")
        building = home / f".building-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        result = subprocess.run(
            [javac, "-d", str(building), "-cp", f"{lib}/*", *map(str, sources)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            raise FhirValidatorError(
                f"compiling {', '.join(p.name for p in sources)} failed:\n"
                + last_lines(result.stdout + result.stderr, _LOG_TAIL_LINES)
            )
        building.rename(classes)  # whole or not at all
    return lib, classes


def _javac() -> str:
    found = jdk_command("javac")
    if found is None:
        raise FhirValidatorError(
            "the Java compiler ('javac') is not on PATH; the FHIR validator needs a JDK 17+ "
            "(e.g. `apt-get install openjdk-17-jdk-headless`)"
        )
    return found


class FhirValidator:
    """One validator process on a free loopback port; its log is ``log_file``.

    ``start()`` returns once it answers (about half a minute: it loads the whole R4
    specification); ``stop()`` ends it. It also ends by itself when the process that started
    it goes, since it watches its standard input."""

    def __init__(self, log_file: Path, heap: str = HEAP) -> None:
        self.log_file, self.heap = log_file, heap
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None
        self.started_in: float | None = None
        """Seconds from launch to the first answer."""

    @property
    def url(self) -> str:
        assert self.port is not None, "start() first"
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 240, progress: Progress = _stderr) -> None:
        lib, classes = ensure_built(progress)
        try:
            java = java_executable()
        except BrokerError as exc:
            raise FhirValidatorError(str(exc)) from exc
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        error = ""
        for _ in range(_PORT_ATTEMPTS):
            [self.port] = free_ports(1)
            error = self._launch(java, lib, classes, timeout)
            if not error:
                return
            if "Address already in use" not in error:
                break  # a port taken between choosing and binding it is worth another try
        raise FhirValidatorError(error)

    def _launch(self, java: str, lib: Path, classes: Path, timeout: float) -> str:
        """Start the process and wait until it answers; an error message, or "" once up."""
        command = [
            java,
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",  # one small heap, short pauses: no need for G1's threads
            "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            f"{classes}{os.pathsep}{lib}/*",
            MAIN_CLASS,
            str(self.port),
        ]
        log: IO[bytes] = self.log_file.open("ab")
        offset = self.log_file.stat().st_size
        started = time.monotonic()
        # stdin stays a pipe we hold: when this process ends, the validator sees end of file.
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self._client = httpx.Client(base_url=self.url, timeout=60)
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return self._failure(
                    f"the FHIR validator exited ({self._process.returncode})", offset
                )
            try:
                if self._client.get("/health", timeout=1).status_code == 200:
                    self.started_in = time.monotonic() - started
                    return ""
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        self.stop()
        return self._failure(f"the FHIR validator did not answer within {timeout:.0f}s", offset)

    def _failure(self, headline: str, offset: int) -> str:
        with self.log_file.open("rb") as handle:
            handle.seek(offset)
            tail = last_lines(handle.read().decode(errors="replace"), _LOG_TAIL_LINES)
        return f"{headline}; log {self.log_file}:\n{tail or '(empty)'}"

    def stop(self, timeout: float = 10) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def rss_bytes(self) -> int | None:
        """Resident memory of the validator process (Linux), for reports."""
        text = read_text_or_none(Path(f"/proc/{self.pid}/status")) if self.pid else None
        for line in (text or "").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None

    # ---- validating --------------------------------------------------------------------

    def outcome(self, resource: dict[str, Any] | str | bytes) -> dict[str, Any]:
        """The validator's OperationOutcome for ``resource`` (a dict or JSON text)."""
        if self._client is None:
            raise FhirValidatorError("the FHIR validator is not running: start() it first")
        body = json.dumps(resource) if isinstance(resource, dict) else resource
        response = self._client.post(
            "/validate", content=body, headers={"Content-Type": "application/fhir+json"}
        )
        if response.status_code != 200:
            raise FhirValidatorError(f"the validator refused the input: {response.text}")
        result: dict[str, Any] = response.json()
        return result

    def issues(self, resource: dict[str, Any] | str | bytes) -> list[Issue]:
        return [
            Issue(
                issue.get("severity", ""),
                ", ".join(issue.get("expression") or issue.get("location") or ["?"]),
                issue.get("diagnostics", ""),
            )
            for issue in self.outcome(resource).get("issue", [])
        ]

    def errors(self, resource: dict[str, Any] | str | bytes) -> list[Issue]:
        """The issues of severity error or fatal: none means valid against base R4."""
        return [i for i in self.issues(resource) if i.severity in ("error", "fatal")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="FHIR R4 resources as JSON")
    parser.add_argument("--log", type=Path, default=Path(".run/fhir-validator.log"))
    args = parser.parse_args(argv)
    validator = FhirValidator(args.log)
    validator.start()
    failed = False
    try:
        for path in args.files:
            issues = validator.issues(path.read_bytes())
            failed |= any(i.severity in ("error", "fatal") for i in issues)
            print(f"{path}: {len(issues)} issue(s)")
            for issue in issues:
                print(f"  {issue}")
    finally:
        validator.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
