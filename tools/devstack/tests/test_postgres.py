"""The dev/test PostgreSQL server, its installer, its CLI and the ``database_url`` fixture,
against a real server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from devstack.ports import free_ports
from devstack.postgres import (
    PostgresError,
    PostgresPortInUseError,
    PostgresServer,
    ensure_postgres_installed,
    find_bin_dir,
)
from sqlalchemy import create_engine, inspect, text


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def _name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data dir under /tmp: as root the server runs as ``postgres``, which cannot enter
    pytest's private /tmp/pytest-of-root."""
    path = Path(tempfile.mkdtemp(prefix="rx-test-postgres-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server(data_dir: Path) -> Iterator[PostgresServer]:
    """A dedicated server, so stopping and restarting it disturbs no other test."""
    [port] = free_ports(1)
    server = PostgresServer(data_dir, port=port, bin_dir=ensure_postgres_installed())
    server.start()
    yield server
    server.stop()


def test_a_created_database_stores_and_returns_rows(server: PostgresServer) -> None:
    url = server.create_database(_name())

    assert url.startswith(f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/t_")
    with _connect(url) as conn:
        conn.execute("CREATE TABLE referral (id text PRIMARY KEY, status text NOT NULL)")
        conn.execute("INSERT INTO referral VALUES ('r-1', 'submitted'), ('r-2', 'accepted')")
        rows = conn.execute("SELECT id, status FROM referral ORDER BY id").fetchall()
    assert rows == [("r-1", "submitted"), ("r-2", "accepted")]


def test_databases_created_on_one_server_are_isolated(server: PostgresServer) -> None:
    first, second = server.create_database(_name()), server.create_database(_name())
    assert first != second

    with _connect(first) as conn:
        conn.execute("CREATE TABLE referral (id text PRIMARY KEY)")
        conn.execute("INSERT INTO referral VALUES ('only-in-first')")
    with _connect(second) as conn:
        assert conn.execute("SELECT to_regclass('referral')").fetchone() == (None,)
        conn.execute("CREATE TABLE referral (id text PRIMARY KEY)")
        conn.execute("INSERT INTO referral VALUES ('only-in-second')")
    with _connect(first) as conn:
        assert conn.execute("SELECT id FROM referral").fetchall() == [("only-in-first",)]


def test_creating_an_existing_database_is_an_error(server: PostgresServer) -> None:
    name = _name()
    server.create_database(name)
    with pytest.raises(PostgresError, match="already exists"):
        server.create_database(name)


def test_restart_on_the_same_data_dir_keeps_the_data(server: PostgresServer) -> None:
    url = server.create_database(_name())
    with _connect(url) as conn:
        conn.execute("CREATE TABLE referral (id text PRIMARY KEY)")
        conn.execute("INSERT INTO referral VALUES ('r-1')")

    server.stop()
    assert not server.is_running()
    with pytest.raises(psycopg.OperationalError):
        _connect(url).close()

    server.start()
    with _connect(url) as conn:
        assert conn.execute("SELECT id FROM referral").fetchall() == [("r-1",)]


def test_the_server_is_private_and_tuned_for_tests(server: PostgresServer) -> None:
    with _connect(server.url()) as conn:

        def show(setting: str) -> object:
            row = conn.execute(f"SHOW {setting}").fetchone()
            return row[0] if row else None

        assert show("listen_addresses") == "127.0.0.1"
        assert show("unix_socket_directories") == str(server.socket_dir)
        assert show("server_encoding") == "UTF8"
        assert [show(s) for s in ("fsync", "synchronous_commit", "full_page_writes")] == [
            "off",
            "off",
            "off",
        ]
    assert (server.socket_dir / f".s.PGSQL.{server.port}").is_socket()


def test_a_taken_port_is_an_error_with_the_server_log_tail(data_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = PostgresServer(data_dir, port=port, bin_dir=ensure_postgres_installed())

        with pytest.raises(PostgresPortInUseError) as failure:
            server.start(timeout=30)

    message = str(failure.value)
    assert f"did not start on 127.0.0.1:{port}" in message
    assert f"lines of {server.log_file} ---" in message
    assert "Address already in use" in message  # the server's own words, from its log
    assert not server.is_running()


def test_the_cli_starts_reports_and_stops_a_server(data_dir: Path) -> None:
    [port] = free_ports(1)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devstack.postgres", *args, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    try:
        started = cli("start", "--port", str(port))
        assert started.returncode == 0, started.stderr
        assert f"ready at postgresql+psycopg://postgres@127.0.0.1:{port}/postgres" in started.stdout
        status = cli("status")  # no --port: the running server's port is found in its data dir
        assert status.returncode == 0
        assert f"127.0.0.1:{port}" in status.stdout
    finally:
        stopped = cli("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert cli("status").returncode == 1


def _fake_bin(root: Path, version: str, tools: tuple[str, ...] = ("initdb", "pg_ctl")) -> Path:
    bin_dir = root / version / "bin"
    bin_dir.mkdir(parents=True)
    for tool in tools:
        (bin_dir / tool).write_text("#!/bin/sh\n")
        (bin_dir / tool).chmod(0o755)
    return bin_dir


def test_the_newest_complete_installed_version_is_used(tmp_path: Path) -> None:
    _fake_bin(tmp_path, "9.6")
    _fake_bin(tmp_path, "15")
    newest_complete = _fake_bin(tmp_path, "16")
    _fake_bin(tmp_path, "17", tools=("initdb",))  # half-installed: no pg_ctl

    assert find_bin_dir(tmp_path) == newest_complete
    assert ensure_postgres_installed(root=tmp_path) == newest_complete
    assert find_bin_dir(tmp_path / "missing") is None


def test_without_root_a_missing_server_is_an_error_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(PostgresError, match=r"apt-get install .*postgresql"):
        ensure_postgres_installed(root=tmp_path)


def test_a_failed_install_is_an_error_with_the_apt_output_tail(
    tmp_path: Path, failing_apt: Callable[[str], None]
) -> None:
    failing_apt("postgresql")
    progress: list[str] = []

    with pytest.raises(PostgresError) as failure:
        ensure_postgres_installed(progress.append, root=tmp_path / "usr-lib-postgresql")

    assert progress == ["installing PostgreSQL (first run only)…"]
    assert "exited with 100" in str(failure.value)
    assert "E: Unable to locate package postgresql" in str(failure.value)


def test_database_url_is_a_fresh_empty_database_that_accepts_writes(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE referral (id VARCHAR(64) PRIMARY KEY)"))
            conn.execute(text("INSERT INTO referral VALUES ('r-1')"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM referral")).scalars().all() == ["r-1"]
    finally:
        engine.dispose()
