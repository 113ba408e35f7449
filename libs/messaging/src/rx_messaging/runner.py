"""Worker process mains shared by every service: an outbox relay, an inbox consumer."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rx_config.kafka_auth import KafkaAuth
from rx_telemetry.metrics import OUTBOX_BATCH_RECORDS, OUTBOX_PUBLISHED
from rx_telemetry.ops import serve_ops
from rx_telemetry.pool import add_pool_probe
from sqlalchemy.engine import Engine

from .consumer import COMMIT_INTERVAL_S, Handler, InboxConsumer
from .kafka import DeadLetterPublisher, KafkaPublisher, KafkaRecordSource
from .relay import OutboxRelay
from .telemetry import (
    CountedDeadLetters,
    add_lag_probe,
    add_outbox_probes,
    broker_check,
    count_batch,
    database_check,
    observed,
)
from .wake import commit_signal
from .worker import Backoff, Cycle, install_stop_signals, run_loop

T = TypeVar("T")

log = logging.getLogger(__name__)

FALLBACK_POLL_S = 2.0
"""How often an idle relay looks at its outbox without being woken (a lost wake-up, a writer
on another machine): the latency of the rare event that was not announced."""
POLL_S = 0.05
"""How often a relay that cannot be woken (another OS, a second relay on one SQLite file)
looks at its outbox."""
IDLE_POLL_S = 5.0
"""How long a consumer's poll waits for records. A record that arrives ends the wait at once,
and so does a stop request (the poll is woken); settled offsets still go out when due (the poll
is cut short for them). So the length only decides how often an idle consumer goes round its
loop: each round is a few hand-offs to kafka-python's I/O thread and a heartbeat file touched.
1 s cost an idle consumer 1.4 times the CPU of 5 s; 15 s saved little more (0.92 of it):
inside one poll kafka-python goes round its own loop at each group heartbeat (3 s) and each
fetch's end (``fetch_max_wait_ms``, 5 s) anyway. The heartbeat file stays well inside the
health check's 30 s (bench/RESULTS.md, "An idle consumer's long poll")."""
COMMIT_INTERVAL_ENV = "RX_CONSUMER_COMMIT_INTERVAL_MS"
COMMIT_INTERVAL_MAX_MS = 60_000.0
"""The most ``RX_CONSUMER_COMMIT_INTERVAL_MS`` may say: beyond it a stopped or crashed member's
successor reads too much again."""


def run_relay(
    service: str,
    engine: Engine,
    bootstrap_servers: str,
    heartbeat_dir: Path,
    *,
    auth: KafkaAuth | None = None,
    before_each: Callable[[], bool] | None = None,
    fallback_poll: float = FALLBACK_POLL_S,
    pace: float = 0.0,
) -> None:
    """Publish the service's outbox until SIGTERM/SIGINT. Survives the broker being down.

    ``before_each`` runs before every relay step (e.g. a timer that stages outbox rows); it
    returns True when it did work. Between batches the relay sleeps until a writer's commit
    wakes it (``rx_messaging.wake``), looking anyway every ``fallback_poll`` seconds. ``pace``
    seconds: a cycle that published something is followed by the next no earlier than
    ``pace`` after it started (``rx_messaging.worker.Pacing``), so under load the commits of
    that time leave together in one produce request; a commit after a quiet spell leaves at
    once."""
    signal = commit_signal(engine)
    stop = install_stop_signals(on_stop=signal.interrupt)
    name = f"{service}-relay"
    serve_worker_ops(name, engine, bootstrap_servers)
    add_outbox_probes(engine, name)
    publisher = _connect(
        lambda: KafkaPublisher(bootstrap_servers, client_id=name, auth=auth),
        stop,
        name,
        bootstrap_servers,
    )
    if publisher is None:
        signal.close()
        return
    relay = OutboxRelay(engine, publisher, name=name)
    published = OUTBOX_PUBLISHED.labels(name)
    batch_records = OUTBOX_BATCH_RECORDS.labels(name)

    def step() -> Cycle:
        staged = before_each() if before_each is not None else False
        sent = relay.relay_once()
        if sent:
            published.inc(sent)
            batch_records.observe(sent)
        if sent >= relay.batch_size or staged:
            return Cycle.MORE
        # A short batch emptied the outbox: wait for the next wake-up (a commit made while
        # this batch was out is one already) instead of reading an empty outbox again.
        return Cycle.DONE if sent else Cycle.IDLE

    try:
        run_loop(
            name,
            step,
            stop,
            idle_sleep=fallback_poll if signal.wakes else POLL_S,
            idle_wait=signal.wait,
            heartbeat=heartbeat_dir / f"{name}.alive",
            pace=pace,
        )
    finally:
        relay.close()
        publisher.close()
        signal.close()


def run_consumer(
    service: str,
    engine: Engine,
    bootstrap_servers: str,
    group_id: str,
    handler: Handler,
    heartbeat_dir: Path,
    *,
    topics: list[str] | None = None,
    pattern: str | None = None,
    auth: KafkaAuth | None = None,
    after_batch: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
    process: str | None = None,
    serve: bool = True,
    pace: float = 0.0,
    idle_poll: float = IDLE_POLL_S,
) -> None:
    """Consume ``topics`` (or ``pattern``) as ``group_id`` until SIGTERM/SIGINT (or ``stop``,
    if given, is set); poison records go to ``<topic>.dlq`` through a second producer with the
    same credentials, which creates that topic if it is missing and it may
    (``rx_messaging.kafka.DeadLetterPublisher``). ``after_batch`` runs after each batch whose effects were committed.
    ``process`` names the process in its metrics when the consumer is part of a larger one;
    ``serve`` False: the caller serves the ops endpoints (a consumer started more than once).

    ``pace`` seconds: after a batch, the next poll starts no earlier than ``pace`` after the
    previous one did (``rx_messaging.worker.Pacing``), so the records that arrive meanwhile
    come in one fetch and are applied in one batch instead of one by one (each fetch and each
    batch has a fixed cost). It adds up to ``pace`` to a record's way through under load; a
    record after a quiet spell is handled at once (the consumer waits in its poll).

    ``idle_poll`` seconds: how long one poll waits for records (``IDLE_POLL_S``); a stop
    request wakes it at once."""
    interval = commit_interval_seconds()  # a bad setting fails before anything connects
    stop = stop or install_stop_signals()
    name = f"{service}-consumer"
    if serve:
        serve_worker_ops(process or name, engine, bootstrap_servers)
    source = _connect(
        lambda: KafkaRecordSource(
            bootstrap_servers,
            group_id,
            topics=topics or [],
            pattern=pattern,
            client_id=name,
            auth=auth,
        ),
        stop,
        name,
        bootstrap_servers,
    )
    dlq = _connect(
        lambda: DeadLetterPublisher(bootstrap_servers, client_id=f"{name}-dlq", auth=auth),
        stop,
        name,
        bootstrap_servers,
    )
    if source is None or dlq is None:
        return
    add_lag_probe(group_id, source.lag)
    consumer = InboxConsumer(
        group_id,
        source,
        engine,
        observed(handler, group_id),
        CountedDeadLetters(dlq, group_id),
        on_batch=count_batch(group_id),
        commit_interval=interval,
    )

    threading.Thread(
        target=_wake_on_stop, args=(stop, source), name=f"{name}-stop", daemon=True
    ).start()

    def step() -> bool:
        busy = consumer.step(timeout=idle_poll)
        if busy and after_batch is not None:
            after_batch()
        return busy

    try:
        run_loop(
            name,
            step,
            stop,
            idle_sleep=0,  # poll() itself waits for records
            heartbeat=heartbeat_dir / f"{name}.alive",
            pace=pace,
        )
    finally:
        consumer.close()
        source.close()
        dlq.close()


def _wake_on_stop(stop: threading.Event, source: KafkaRecordSource) -> None:
    """End the consumer's poll as soon as ``stop`` is set, from whatever thread set it (a
    signal handler, a lost writer lease): blocked in ``wait``, it costs nothing meanwhile."""
    stop.wait()
    source.wakeup()


def commit_interval_seconds() -> float:
    """``RX_CONSUMER_COMMIT_INTERVAL_MS`` in seconds (``COMMIT_INTERVAL_S`` when unset); 0
    commits offsets after every batch."""
    text = os.environ.get(COMMIT_INTERVAL_ENV, "").strip()
    try:
        ms = float(text) if text else COMMIT_INTERVAL_S * 1000
    except ValueError:
        raise ValueError(
            f"{COMMIT_INTERVAL_ENV} must be a number of milliseconds, not {text!r}"
        ) from None
    if not 0 <= ms <= COMMIT_INTERVAL_MAX_MS:
        raise ValueError(
            f"{COMMIT_INTERVAL_ENV} must be between 0 and {COMMIT_INTERVAL_MAX_MS:g} ms, not {text}"
        )
    return ms / 1000


def serve_worker_ops(process: str, engine: Engine, bootstrap_servers: str | None = None) -> None:
    """The worker's /metrics, /health and /ready (its database and, if it uses one, the
    broker answer), on ``RX_METRICS_PORT``; its connection pool among the metrics."""
    add_pool_probe(engine, process)
    checks = {"database": database_check(engine)}
    if bootstrap_servers is not None:
        checks["broker"] = broker_check(bootstrap_servers, reachable)
    serve_ops(process, checks)


def _connect(
    factory: Callable[[], T], stop: threading.Event, what: str, bootstrap: str
) -> T | None:
    """Build a Kafka client once the broker answers (it may start after us). None if asked
    to stop first. A kafka-python client whose constructor fails leaves its I/O thread
    behind, so we wait for a TCP answer before constructing rather than retry constructors."""
    backoff = Backoff()
    while not stop.is_set():
        if any(reachable(server) for server in bootstrap.split(",")):
            try:
                return factory()
            except Exception as exc:
                log.warning("%s: Kafka client failed to start: %s", what, exc)
        delay = backoff.failed()
        log.warning("%s: waiting for Kafka at %s; retrying in %.1fs", what, bootstrap, delay)
        stop.wait(delay)
    return None


def reachable(server: str) -> bool:
    """Whether ``host:port`` accepts a TCP connection within a second."""
    host, _, port = server.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=1):
            return True
    except (OSError, ValueError):
        return False
