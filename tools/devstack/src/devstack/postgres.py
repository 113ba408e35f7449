"""A real PostgreSQL server for dev and tests, from Debian's packages, on any port and data dir.

The services must work on PostgreSQL as well as SQLite; tests prove that only if they run
against a real server. Docker is not assumed, so this module installs Debian's ``postgresql``
package on first use (we run as root on dev and CI machines) and runs a private cluster with
``initdb`` and ``pg_ctl``: no system service, no fixed port, nothing shared between sessions.

CLI::

    python -m devstack.postgres start  [--data-dir .run/postgres] [--port 5433]
    python -m devstack.postgres status [--data-dir .run/postgres]
    python -m devstack.postgres stop   [--data-dir .run/postgres]
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path

from .apt import AptError, ensure_installed
from .jars import last_lines, read_text_or_none, repo_root

__all__ = [
    "POSTGRESQL_ROOT",
    "PostgresError",
    "PostgresPortInUseError",
    "PostgresServer",
    "create_database",
    "drop_database",
    "ensure_databases",
    "ensure_postgres_installed",
    "find_bin_dir",
    "server_version",
]

POSTGRESQL_ROOT = Path("/usr/lib/postgresql")
"""Where Debian puts each major version's server binaries (``<root>/<version>/bin``)."""

SERVER_USER = "postgres"
"""OS user the server runs as when we are root (PostgreSQL refuses to run as root); Debian's
package creates it."""

_LOG_TAIL_LINES = 40
_SOCKET_PATH_MAX = 107  # sun_path size on Linux, minus the terminating NUL
# Speed over durability: a test cluster is thrown away, and fsync dominates DDL-heavy tests.
_TEST_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # One engine per test keeps a small pool open until it is disposed or collected.
    "max_connections": "200",
}

Progress = Callable[[str], None]


class PostgresError(RuntimeError):
    """PostgreSQL could not be installed, started, stopped or used; the message says why
    (with the server log tail when the server itself failed)."""


class PostgresPortInUseError(PostgresError):
    """The server could not listen because another process holds the port (callers choosing
    a free port may retry with another one)."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- installation


def find_bin_dir(root: Path = POSTGRESQL_ROOT) -> Path | None:
    """``<root>/<version>/bin`` of the newest installed version that has the server tools."""
    candidates: list[tuple[tuple[int, ...], Path]] = []
    if root.is_dir():
        for version_dir in root.iterdir():
            bin_dir = version_dir / "bin"
            if not re.fullmatch(r"\d+(\.\d+)*", version_dir.name):
                continue
            if all(os.access(bin_dir / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
                version = tuple(int(part) for part in version_dir.name.split("."))
                candidates.append((version, bin_dir))
    return max(candidates)[1] if candidates else None


def ensure_postgres_installed(
    progress: Progress = _stderr, *, root: Path = POSTGRESQL_ROOT
) -> Path:
    """Return the newest PostgreSQL server ``bin`` dir, installing Debian's package if none
    (as root; anyone else gets an error that says what to install)."""
    try:
        return ensure_installed(
            ["postgresql"],
            "PostgreSQL",
            lambda: find_bin_dir(root),
            progress,
            missing=f"no {root}/<version>/bin/initdb",
        )
    except AptError as exc:
        raise PostgresError(
            f"{exc}\n(or set RX_POSTGRES_URL to a server you already have)"
        ) from exc


# --------------------------------------------------------------------------- databases


def _libpq_url(url: str, database: str | None = None) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://…``) as a libpq URI, optionally re-targeted."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    path = f"/{database}" if database is not None else parts.path
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, parts.query, parts.fragment))


def _with_database(url: str, database: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment)
    )


def _check_name(name: str) -> None:
    # Plain lower-case identifiers: no quoting surprises in URLs, psql or logs.
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise PostgresError(
            f"database name {name!r} must be 1-63 characters of a-z, 0-9 and _, "
            "not starting with a digit"
        )


def server_version(server_url: str, timeout: float = 10) -> str:
    """The server's version string; raises ``PostgresError`` if it does not answer (so a
    wrong ``RX_POSTGRES_URL`` fails once, clearly, instead of in every test)."""
    import psycopg

    try:
        with psycopg.connect(_libpq_url(server_url), connect_timeout=max(1, int(timeout))) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        raise PostgresError(f"cannot connect: {str(exc).strip()}") from exc
    return str(row[0]) if row else "unknown"


def create_database(server_url: str, name: str) -> str:
    """Create the empty database ``name`` on the server of ``server_url``; return its URL.

    ``server_url`` is any SQLAlchemy URL of that server (usually ``…/postgres``); the result is
    the same URL pointing at the new database. CREATE DATABASE cannot run in a transaction,
    hence autocommit.
    """
    import psycopg
    from psycopg import sql

    _check_name(name)
    try:
        with psycopg.connect(_libpq_url(server_url), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise PostgresError(f"cannot create database {name!r}: {exc}") from exc
    return _with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """Drop ``name`` if it exists, disconnecting whoever still uses it (PostgreSQL 13+)."""
    import psycopg
    from psycopg import sql

    _check_name(name)
    try:
        with psycopg.connect(_libpq_url(server_url), autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    except psycopg.Error as exc:
        raise PostgresError(f"cannot drop database {name!r}: {exc}") from exc


def ensure_databases(server_url: str, names: Sequence[str]) -> dict[str, str]:
    """Create those of ``names`` the server does not have yet; name -> its SQLAlchemy URL
    (a restart keeps what the databases hold)."""
    import psycopg

    for name in names:
        _check_name(name)
    try:
        with psycopg.connect(_libpq_url(server_url), autocommit=True, connect_timeout=10) as conn:
            rows = conn.execute("SELECT datname FROM pg_database").fetchall()
    except psycopg.Error as exc:
        raise PostgresError(f"cannot list databases: {exc}") from exc
    existing = {row[0] for row in rows}
    return {
        name: _with_database(server_url, name)
        if name in existing
        else create_database(server_url, name)
        for name in names
    }


# --------------------------------------------------------------------------- server


class PostgresServer:
    """One private PostgreSQL cluster owned by ``data_dir``, listening on 127.0.0.1:``port``.

    ``data_dir`` holds the cluster (``pgdata/``), the server log (``server.log``) and the unix
    socket dir (``socket/``). Everything about a running server is found through the cluster's
    ``postmaster.pid``, so another process (the CLI) can check or stop a server it did not
    start. As root, every server tool runs as the ``postgres`` OS user, which therefore needs
    to reach ``data_dir`` (pytest's own temp dirs are private to root, so use one under /tmp).
    """

    def __init__(self, data_dir: Path, port: int = 5433, *, bin_dir: Path | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self._bin_dir = bin_dir

    def __repr__(self) -> str:
        return f"PostgresServer({str(self.data_dir)!r}, port={self.port})"

    # paths ---------------------------------------------------------------------------------

    @property
    def cluster_dir(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "socket"

    @property
    def settings_file(self) -> Path:
        """Our settings, rewritten on every start (included from ``postgresql.conf``)."""
        return self.cluster_dir / "devstack.conf"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` on this server (trust auth: no password)."""
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        """Pid of the running postmaster, or None (a stale postmaster.pid is ignored)."""
        text = read_text_or_none(self.cluster_dir / "postmaster.pid")
        first = text.splitlines()[0] if text else ""
        if not first.isdigit():
            return None
        pid = int(first)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # running as another user (postgres) is exactly what we expect when root
        cmdline = read_text_or_none(Path(f"/proc/{pid}/cmdline"))
        if cmdline is not None and "postgres" not in cmdline:
            return None  # the pid was reused by some other program
        return pid

    def is_running(self) -> bool:
        return self.pid is not None

    # lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start the server and return once it accepts connections; raise ``PostgresError``
        (``PostgresPortInUseError`` if the port is taken) with the server log tail if not.

        Runs ``initdb`` only on first use, so a restart on the same ``data_dir`` keeps every
        database.
        """
        running = self.pid
        if running is not None:
            raise PostgresError(
                f"a PostgreSQL server is already running from {self.data_dir} (pid {running}); "
                "stop it first (python -m devstack.postgres stop --data-dir …)"
            )
        bin_dir = self._bin_dir or ensure_postgres_installed()  # before the clock starts
        self._bin_dir = bin_dir
        deadline = time.monotonic() + timeout
        self._prepare_dirs()
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        self._initdb_if_needed(bin_dir)
        self._write_settings()
        wait = max(1, int(deadline - time.monotonic()))
        result = self._run_as_server_user(
            [
                str(bin_dir / "pg_ctl"),
                "start",
                "--pgdata",
                str(self.cluster_dir),
                "--log",
                str(self.log_file),
                "--wait",
                "--timeout",
                str(wait),
                "--silent",
            ],
            timeout=wait + 10,
            new_session=True,  # Ctrl-C in the terminal must not kill the server mid-test
        )
        if result.returncode != 0:
            log_tail = self._log_tail(log_offset)
            error = (
                PostgresPortInUseError if "Address already in use" in log_tail else PostgresError
            )
            if self.is_running():  # pg_ctl gave up waiting; do not leave it running
                self.stop(timeout=10, mode="immediate")
            raise error(
                self._failure(
                    f"PostgreSQL did not start on 127.0.0.1:{self.port} "
                    f"(pg_ctl exited with {result.returncode}: {result.stdout.strip()})",
                    log_tail,
                )
            )
        self._wait_until_ready(deadline, timeout, log_offset)

    def stop(self, timeout: float = 30, *, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions and disconnect clients);
        fall back to ``immediate`` if that does not finish. A stopped server is a no-op."""
        if not self.is_running():
            return
        bin_dir = self._bin_dir or find_bin_dir()
        if bin_dir is None:
            raise PostgresError(f"cannot stop pid {self.pid}: no pg_ctl under {POSTGRESQL_ROOT}")
        for attempt_mode in (mode, "immediate"):
            result = self._run_as_server_user(
                [
                    str(bin_dir / "pg_ctl"),
                    "stop",
                    "--pgdata",
                    str(self.cluster_dir),
                    "--mode",
                    attempt_mode,
                    "--wait",
                    "--timeout",
                    str(max(1, int(timeout))),
                    "--silent",
                ],
                timeout=timeout + 10,
            )
            if result.returncode == 0 or not self.is_running():
                return
        raise PostgresError(
            f"PostgreSQL (pid {self.pid}) did not stop:\n{result.stdout.strip()}\n"
            + self._failure("", self._log_tail(0))
        )

    def create_database(self, name: str) -> str:
        """Create the empty database ``name``; return its SQLAlchemy URL."""
        return create_database(self.url("postgres"), name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, even while clients are still connected."""
        drop_database(self.url("postgres"), name)

    # helpers -------------------------------------------------------------------------------

    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _server_user(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(SERVER_USER)
        except KeyError as exc:
            raise PostgresError(
                f"running as root, but there is no {SERVER_USER!r} OS user to run PostgreSQL "
                "as (PostgreSQL refuses to run as root; Debian's postgresql package creates it)"
            ) from exc

    def _prepare_dirs(self) -> None:
        """Create our dirs, owned by whoever runs the server, and check the socket path fits."""
        socket_path = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(socket_path)) > _SOCKET_PATH_MAX:
            raise PostgresError(
                f"data dir {self.data_dir} is too deep: the unix socket path {socket_path} "
                f"would exceed {_SOCKET_PATH_MAX} bytes; choose a shorter data dir"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self.log_file.touch()
        if not self._as_root():
            return
        user = self._server_user()
        for path in (self.data_dir, self.socket_dir, self.log_file):
            os.chown(path, user.pw_uid, user.pw_gid)
        self.data_dir.chmod(0o700)
        reach = self._run_as_server_user(["test", "-w", str(self.data_dir)], timeout=10)
        if reach.returncode != 0:
            raise PostgresError(
                f"the {SERVER_USER!r} OS user cannot reach {self.data_dir}: a parent directory "
                "is not searchable by other users (pytest's /tmp/pytest-of-root is private, for "
                "one); use a data dir under /tmp or another world-searchable directory"
            )

    def _initdb_if_needed(self, bin_dir: Path) -> None:
        """Create the cluster once; an existing one is reused so restarts keep the data."""
        if (self.cluster_dir / "PG_VERSION").is_file():
            return
        if self.cluster_dir.exists():
            shutil.rmtree(self.cluster_dir)  # a half-made cluster from an interrupted initdb
        command = [
            str(bin_dir / "initdb"),
            "--pgdata",
            str(self.cluster_dir),
            "--username",
            SERVER_USER,
            "--auth",
            "trust",  # local socket and 127.0.0.1/::1 only (initdb's pg_hba.conf lines)
            "--encoding",
            "UTF8",
            "--no-locale",  # C collation: the same ordering on every machine
            "--no-sync",
            "--no-instructions",
        ]
        result = self._run_as_server_user(command, timeout=120)
        with self.log_file.open("a") as log:
            log.write(f"=== devstack: initdb {self.cluster_dir}\n{result.stdout}")
        if result.returncode != 0:
            raise PostgresError(
                f"initdb {self.cluster_dir} failed (exit {result.returncode}):\n"
                + last_lines(result.stdout, _LOG_TAIL_LINES)
            )
        conf = self.cluster_dir / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write(f"\ninclude_if_exists = '{self.settings_file.name}'\n")

    def _write_settings(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            **{key: f"'{value}'" for key, value in _TEST_SETTINGS.items()},
        }
        lines = ["# Written by devstack.postgres on every start; edits are overwritten."]
        lines += [f"{key} = {value}" for key, value in settings.items()]
        self.settings_file.write_text("\n".join(lines) + "\n")
        if self._as_root():
            user = self._server_user()
            os.chown(self.settings_file, user.pw_uid, user.pw_gid)

    def _wait_until_ready(self, deadline: float, timeout: float, log_offset: int) -> None:
        """pg_ctl saw the postmaster ready; also prove a TCP client gets in (bounded)."""
        import psycopg

        last_error = ""
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(_libpq_url(self.url()), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last_error = str(exc).strip()
            if not self.is_running():
                break
            time.sleep(0.1)
        log_tail = self._log_tail(log_offset)
        self.stop(timeout=10, mode="immediate")
        raise PostgresError(
            self._failure(
                f"PostgreSQL on 127.0.0.1:{self.port} did not accept connections within "
                f"{timeout:g}s ({last_error or 'server exited'})",
                log_tail,
            )
        )

    def _run_as_server_user(
        self, command: list[str], *, timeout: float, new_session: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run a server tool as ``postgres`` when we are root (the tools refuse root)."""
        if self._as_root():
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        try:
            return subprocess.run(
                command,
                cwd=self.data_dir,  # root's home is not readable by postgres
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                start_new_session=new_session,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(
                self._failure(f"`{' '.join(command)}` did not finish in {timeout:g}s", "")
            ) from exc

    def _log_tail(self, log_offset: int) -> str:
        """The tail of this attempt's part of server.log."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(log_offset)
                text = log.read().decode(errors="replace")
        except OSError as exc:
            return f"(cannot read {self.log_file}: {exc})"
        return last_lines(text, _LOG_TAIL_LINES)

    def _failure(self, headline: str, log_tail: str) -> str:
        tail = log_tail or "(server.log is empty)"
        return f"{headline}\n--- last {_LOG_TAIL_LINES} lines of {self.log_file} ---\n{tail}"


# --------------------------------------------------------------------------- CLI


def _configured_port(server: PostgresServer) -> int | None:
    """Port written by the last start (for status and stop output)."""
    text = read_text_or_none(server.settings_file) or ""
    match = re.search(r"^port = (\d+)$", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def main(argv: Sequence[str] | None = None) -> int:
    """``start`` (background, returns when ready), ``stop`` and ``status`` of the dev server."""
    parser = argparse.ArgumentParser(prog="python -m devstack.postgres", description=main.__doc__)
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--data-dir", type=Path, default=None, help="default: <repo>/.run/postgres")
    parser.add_argument("--port", type=int, default=5433, help="TCP port (default 5433)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait (start/stop)")
    args = parser.parse_args(argv)
    data_dir = args.data_dir if args.data_dir is not None else repo_root() / ".run" / "postgres"
    server = PostgresServer(data_dir, port=args.port)
    pid = server.pid
    if pid is not None or args.command != "start":
        # Report the port the server really uses, not the default of this invocation.
        server.port = _configured_port(server) or args.port

    if args.command == "start":
        if pid is not None:
            print(f"PostgreSQL already running: {server.url()} (pid {pid})")
            return 0
        try:
            server = PostgresServer(data_dir, args.port, bin_dir=ensure_postgres_installed())
            started = time.monotonic()
            server.start(timeout=args.timeout)
        except PostgresError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(
            f"PostgreSQL ready at {server.url()} in {time.monotonic() - started:.1f}s "
            f"(pid {server.pid}, log {server.log_file})"
        )
        return 0

    if args.command == "stop":
        if pid is None:
            print(f"PostgreSQL not running (data {server.data_dir})")
            return 0
        try:
            server.stop(timeout=args.timeout)
        except PostgresError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"PostgreSQL stopped (pid {pid})")
        return 0

    if pid is None:
        print(f"PostgreSQL not running (data {server.data_dir})")
        return 1
    print(f"PostgreSQL running: {server.url()} (pid {pid}, data {server.data_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
