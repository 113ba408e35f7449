"""Jars resolved from Maven Central with a pom of ``infra/`` and cached per user (Kafka's broker,
the FHIR validator), plus the Java that runs them."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import BrokerError

KAFKA_VERSION = "4.4.0"
_LOG_TAIL_LINES = 40
_MARKER = ".complete"

Progress = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """Per-user cache shared by all checkouts (same rule as scripts/bootstrap)."""
    explicit = os.environ.get("RX_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "referral-exchange"


def kafka_infra_dir() -> Path:
    """``infra/kafka`` of this checkout, found by walking up from this file."""
    return infra_dir("kafka")


def infra_dir(name: str, error: type[Exception] = BrokerError) -> Path:
    """``infra/<name>`` (holding a pom.xml) of this checkout, found by walking up from here."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "infra" / name
        if (candidate / "pom.xml").is_file():
            return candidate
    raise error(f"cannot find infra/{name}/pom.xml in any parent of {Path(__file__).resolve()}")


def repo_root() -> Path:
    """Root of this checkout (parent of ``infra/``)."""
    return kafka_infra_dir().parent.parent


def ensure_jars(progress: Progress = _stderr) -> Path:
    """Return ``<cache>/kafka-<version>/lib``, fetching the jars with Maven on first use."""
    pom = kafka_infra_dir() / "pom.xml"
    lib = cache_dir() / f"kafka-{KAFKA_VERSION}" / "lib"
    return fetch_jars(pom, lib, f"Kafka {KAFKA_VERSION}", progress)


def fetch_jars(
    pom: Path,
    lib: Path,
    what: str,
    progress: Progress = _stderr,
    error: type[Exception] = BrokerError,
) -> Path:
    """Fill ``lib`` with the runtime jars ``pom`` depends on (Maven Central), unless it holds
    them already; return ``lib``. Failures raise ``error`` with Maven's output tail.

    The marker file is written last and holds a hash of the POM, so an interrupted copy or an
    edited POM triggers a clean re-fetch. A file lock keeps parallel test workers from
    fetching into the same folder at once.
    """
    marker = lib / _MARKER
    wanted = hashlib.sha256(pom.read_bytes()).hexdigest()
    if read_text_or_none(marker) == wanted:
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(lib.parent / ".lock"):
        if read_text_or_none(marker) == wanted:  # another process finished while we waited
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise error(
                f"Maven ('mvn') is not on PATH; it is needed once to fetch the {what} jars "
                "(install Maven 3.8+, e.g. `apt-get install maven`)"
            )
        progress(f"fetching {what} jars from Maven Central (first run only)…")
        shutil.rmtree(lib, ignore_errors=True)
        started = time.monotonic()
        command = [
            mvn,
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-Dlib.dir={lib}",
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=900, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise error(f"Maven did not finish fetching the {what} jars in {exc.timeout}s") from exc
        jars = sorted(lib.glob("*.jar"))
        if result.returncode != 0 or not jars:
            output = last_lines(result.stdout + result.stderr, _LOG_TAIL_LINES)
            raise error(
                f"fetching the {what} jars failed (exit {result.returncode}): {' '.join(command)}\n"
                f"{output}"
            )
        marker.write_text(wanted)
        size_mb = sum(jar.stat().st_size for jar in jars) / 1e6
        progress(
            f"fetched {len(jars)} jars ({size_mb:.0f} MB) into {lib} "
            f"in {time.monotonic() - started:.1f}s"
        )
    return lib


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_text_or_none(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def last_lines(text: str, count: int) -> str:
    return "\n".join(text.splitlines()[-count:])


def jdk_command(name: str) -> str | None:
    """``$JAVA_HOME/bin/<name>`` if there is one, else ``name`` from PATH, else None."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / name).is_file():
        return str(Path(java_home) / "bin" / name)
    return shutil.which(name)


def java_executable() -> str:
    """``$JAVA_HOME/bin/java`` if set, else ``java`` from PATH (Java 17+)."""
    found = jdk_command("java")
    if found is None:
        raise BrokerError(
            "Java is not installed or not on PATH (Kafka 4 and the FHIR validator need Java 17+)"
        )
    return found
