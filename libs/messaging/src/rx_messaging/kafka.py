"""kafka-python adapters: a publisher (idempotent producer, acks=all) and a record source
(consumer group member with manual offset commits)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import kafka.errors as kafka_errors
from kafka import AsyncConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError
from kafka.structs import MemberState, OffsetAndMetadata, TopicPartition
from kafka.util import Timer
from rx_config.kafka_auth import KafkaAuth

from .ports import RejoinNeeded, Revoked
from .records import PublishError, Record

log = logging.getLogger(__name__)

CLIENT_METRICS_OFF: dict[str, object] = {"metrics_enabled": False}
"""kafka-python's own metrics (sensors updated on every request, response and record, in pure
Python) are read by nothing here: the platform's metrics are its own (``rx_telemetry``)."""


PATTERN_METADATA_MAX_AGE_MS = 10_000
"""How soon a pattern subscription (the audit consumer's) notices a new topic."""
TOPICS_METADATA_MAX_AGE_MS = 300_000


SESSION_TIMEOUT_MS = 10_000
"""How long a group member may go unheard (no heartbeat) before the broker puts it out of its
group and hands its partitions to the others."""


def client_config(
    bootstrap_servers: str, client_id: str, auth: KafkaAuth | None = None
) -> dict[str, object]:
    """What every client here (producer, consumer, admin) is built with: the brokers, the
    client id and the authentication (``KafkaAuth``: security protocol, SASL, TLS), so that a
    client never connects differently from the others."""
    return {
        "bootstrap_servers": bootstrap_servers.split(","),
        "client_id": client_id,
        **(auth or KafkaAuth()).client_config(),
    }


class KafkaPublisher:
    """Publishes records and waits for the broker's acknowledgement of each batch.

    Idempotent producers need only WRITE on their topics, also on a broker with ACLs."""

    def __init__(
        self,
        bootstrap_servers: str,
        client_id: str,
        *,
        auth: KafkaAuth | None = None,
        **overrides: object,
    ) -> None:
        config: dict[str, object] = {
            **client_config(bootstrap_servers, client_id, auth),
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 2,
            "retries": 5,
            "request_timeout_ms": 10_000,
            "max_block_ms": 10_000,
            **CLIENT_METRICS_OFF,
        }
        config.update(overrides)
        self._producer = KafkaProducer(**config)
        # kafka-python wakes its I/O thread for every new batch (one per partition) a send
        # opens; a publish_many flushes right after its sends, and that wakes it once for all.
        self._sender = self._producer._sender
        self._quiet: int | None = None  # the thread whose sends leave the I/O thread asleep
        self._sender.wakeup = self._wakeup

    def publish(
        self,
        topic: str,
        records: Sequence[tuple[bytes, bytes, list[tuple[str, bytes]]]],
        timeout: float = 15,
    ) -> None:
        """Send ``(key, value, headers)`` records to ``topic``; raise PublishError unless all
        were acknowledged. Order per key is kept (idempotent producer)."""
        self.publish_many({topic: records}, timeout)

    def publish_many(
        self,
        batches: Mapping[str, Sequence[tuple[bytes, bytes, list[tuple[str, bytes]]]]],
        timeout: float = 15,
    ) -> None:
        """:meth:`publish` for several topics, flushed once: the records of every topic go
        out in one produce request to a one-node cluster, instead of one request per topic."""
        try:
            # Only topics whose partitions are known: a send that must wait for metadata
            # needs the I/O thread awake to fetch it.
            if all(self._producer.partitions_for(topic) for topic in batches):
                self._quiet = threading.get_ident()
            try:
                futures = [
                    self._producer.send(topic, key=key, value=value, headers=headers)
                    for topic, records in batches.items()
                    for key, value, headers in records
                ]
            finally:
                self._quiet = None
            self._producer.flush(timeout=timeout)  # wakes the I/O thread: all go out at once
            for future in futures:
                future.get(timeout=timeout)
        except KafkaError as exc:
            raise PublishError(f"publishing to {', '.join(batches)} failed: {exc!r}") from exc

    def _wakeup(self) -> None:
        if self._quiet != threading.get_ident():
            type(self._sender).wakeup(self._sender)

    def close(self) -> None:
        self._producer.close(timeout=5)


class DeadLetterPublisher:
    """Parks poison records on ``<topic>.dlq``, creating that topic the first time it is missing.

    A topic is meant to be created with its dead-letter topic (``rx_contracts.topics``, the
    topic jobs, devstack), but one created otherwise (by hand, by a tool) may lack it, and a
    consumer that reads it (the audit consumer reads every ``*.v<N>`` topic) would otherwise
    retry the poison record's batch forever: nothing after it applied. So before its first
    record to a dead-letter topic, this publisher looks the topic up and creates it if it is
    missing (one partition, the broker's replication factor). On a broker with ACLs the
    services may not create topics: then the batch is retried, with the error saying which
    topic to create. One look-up per dead-letter topic and process: poison is rare."""

    def __init__(
        self,
        bootstrap_servers: str,
        client_id: str,
        *,
        auth: KafkaAuth | None = None,
        **overrides: object,
    ) -> None:
        self._publisher = KafkaPublisher(bootstrap_servers, client_id, auth=auth, **overrides)
        self._admin: dict[str, object] = {
            **client_config(bootstrap_servers, client_id, auth),
            "request_timeout_ms": 10_000,
        }
        self._present: set[str] = set()

    def publish(
        self,
        topic: str,
        records: Sequence[tuple[bytes, bytes, list[tuple[str, bytes]]]],
        timeout: float = 15,
    ) -> None:
        if topic not in self._present:
            self._ensure(topic)
            self._present.add(topic)
        self._publisher.publish(topic, records, timeout)

    def close(self) -> None:
        self._publisher.close()

    def _ensure(self, topic: str) -> None:
        # Built in two steps: a kafka-python 3.0 client whose constructor fails (no broker)
        # leaves its I/O thread running, and this is retried with every retry of the batch.
        admin = KafkaAdminClient.__new__(KafkaAdminClient)
        try:
            admin.__init__(**self._admin)  # type: ignore[misc]
        except Exception as exc:
            _close_unbuilt(admin)
            raise PublishError(f"looking up the dead-letter topic {topic} failed: {exc!r}") from exc
        try:
            [found] = admin.describe_topics([topic])
            error = kafka_errors.for_code(found["error_code"])
            if error is kafka_errors.NoError:
                return
            if error is kafka_errors.UnknownTopicOrPartitionError:
                result = admin.create_topics(
                    {topic: {"num_partitions": 1, "replication_factor": -1}},
                    timeout_ms=10_000,
                    raise_errors=False,
                )
                [created] = result["topics"]
                error = kafka_errors.for_code(created["error_code"])
                if error in (kafka_errors.NoError, kafka_errors.TopicAlreadyExistsError):
                    admin.wait_for_topics([topic], timeout_ms=10_000)
                    log.warning("created the missing dead-letter topic %s", topic)
                    return
            raise PublishError(
                f"the dead-letter topic {topic} is missing and could not be created "
                f"({error.__name__}): create it with its topic ({topic.removesuffix('.dlq')})"
            )
        except KafkaError as exc:
            raise PublishError(f"creating the dead-letter topic {topic} failed: {exc!r}") from exc
        finally:
            admin.close()


def _close_unbuilt(admin: KafkaAdminClient) -> None:
    """Stop the I/O thread and sockets of an admin client whose constructor raised."""
    client, net = getattr(admin, "_client", None), getattr(admin, "_net", None)
    for close in (getattr(client, "close", None), getattr(net, "stop", None)):
        if close is not None:
            try:
                close()
            except Exception:
                log.debug("closing a half-built admin client", exc_info=True)


class KafkaRecordSource:
    """A consumer group member. Offsets are committed only when the caller says so, after
    the effects of the records are durably stored."""

    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        *,
        topics: Iterable[str] = (),
        pattern: str | None = None,
        client_id: str | None = None,
        auth: KafkaAuth | None = None,
        **overrides: object,
    ) -> None:
        config: dict[str, object] = {
            **client_config(bootstrap_servers, client_id or group_id, auth),
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_poll_records": 200,
            # A fetch is answered as soon as any record arrives (fetch_min_bytes=1), so a long
            # wait costs no latency; it only spares an idle consumer and the broker a fetch
            # round trip every 500 ms (kafka-python's default).
            # Not longer: while a fetch waits, no other fetch goes to that broker, so partitions
            # newly assigned (a rebalance after a crash) or sought back (a retry) wait for it.
            "fetch_max_wait_ms": 5_000,
            # A pattern subscription sees new topics (a provider's) only when it refreshes its
            # metadata; a fixed topic list needs no periodic refresh (kafka-python refreshes on
            # errors and disconnects itself), so it keeps the client's default of 5 minutes
            # instead of a metadata request every 10 s to an idle broker.
            "metadata_max_age_ms": PATTERN_METADATA_MAX_AGE_MS
            if pattern is not None
            else TOPICS_METADATA_MAX_AGE_MS,
            # A worker that dies holds its partitions until its session expires; kafka-python's
            # default (45 s) stalls the stream that long after a crash (tests/reliability).
            # Heartbeats come from a background thread, so slow batches do not count against it.
            "session_timeout_ms": SESSION_TIMEOUT_MS,
            **CLIENT_METRICS_OFF,
        }
        config.update(overrides)
        self._consumer = KafkaConsumer(**config)
        _finish_every_join(self._consumer)
        self._committed: dict[tuple[str, int], int] = {}
        self._wake = threading.Condition()
        self._woken = False
        self._poller: int | None = None
        """The thread inside :meth:`poll`, if any."""
        self._revoked: Revoked | None = None
        listener = _Revocations(self)
        if pattern is not None:
            re.compile(pattern)
            self._consumer.subscribe(pattern=pattern, listener=listener)
        else:
            self._consumer.subscribe(topics=list(topics), listener=listener)
            _know_partitions_before_joining(self._consumer, list(topics))

    def poll(self, timeout: float) -> list[Record]:
        """Records as soon as any arrive, or none after ``timeout`` seconds, or none at once
        after :meth:`wakeup`."""
        with self._wake:
            if self._woken:
                self._woken = False
                return []
            self._poller = threading.get_ident()
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout * 1000))
        except _Woken:
            return []  # whatever the wait was for goes on in the client's I/O thread
        finally:
            with self._wake:
                self._poller = None
                self._woken = False
                self._wake.notify_all()
        return [
            Record(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or []))
            for records in batches.values()
            for r in records
        ]

    def commit(self, positions: dict[tuple[str, int], int]) -> None:
        """Commit ``(topic, partition) -> next offset to read``; :class:`RejoinNeeded` when
        kafka-python refuses because this member is out of its group or rebalancing (it
        rejoins in ``poll``)."""
        if positions:
            try:
                self._consumer.commit(_offsets(positions))
            except (CommitFailedError, RebalanceInProgressError) as exc:
                raise RejoinNeeded(str(exc)) from exc
            self._committed.update(positions)

    def lag(self) -> dict[tuple[str, int], int]:
        """Per assigned partition this member has committed on: the broker's last known end
        offset minus the committed one. Only cached figures (no broker round trip), so it
        is safe to call from a metrics scrape in another thread."""
        lags: dict[tuple[str, int], int] = {}
        for tp in self._consumer.assignment() or ():
            done = self._committed.get((tp.topic, tp.partition))
            try:
                end = self._consumer.highwater(tp)
            except Exception:
                continue  # reassigned meanwhile
            if done is not None and end is not None:
                lags[(tp.topic, tp.partition)] = max(end - done, 0)
        return lags

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Re-read from ``offset`` (used to retry a record whose effects failed)."""
        self._consumer.seek(TopicPartition(topic, partition), offset)

    def wakeup(self) -> None:
        """End a :meth:`poll` waiting in another thread at once (it returns no records), or
        the next one if none is under way: a stop request need not wait out a long poll.

        kafka-python 3.0 has no ``KafkaConsumer.wakeup`` (the Java client's): a caller waits
        in its network selector's ``run`` for a task of the client's I/O thread, and
        ``_fail_pending_waiters`` (what the selector itself does when it stops) ends that wait
        with an exception while the task goes on in the I/O thread, so the client's state is
        left as it was. Only waits of this consumer's own calls are ended, and only while a
        poll is under way; a poll that had not reached its wait yet is interrupted again
        until it returns."""
        interrupt = getattr(getattr(self._consumer, "_net", None), "_fail_pending_waiters", None)
        with self._wake:
            self._woken = True
            while self._poller is not None:
                if interrupt is None:
                    log.warning("this kafka-python cannot end a poll early; it ends on time")
                    return
                interrupt(_Woken())
                if self._poller == threading.get_ident():
                    return  # called inside the poll itself (a signal handler): it ends later
                self._wake.wait(WAKEUP_RETRY_S)

    def when_revoked(self, callback: Revoked) -> None:
        """``callback`` runs inside :meth:`poll` (or :meth:`close`) when partitions are about
        to be taken away; the offsets it returns are committed before the group rejoins, while
        they still count."""
        self._revoked = callback

    def close(self) -> None:
        self._consumer.close(autocommit=False)


FIRST_METADATA_WAIT_MS = 5_000
"""How long a new member waits for its topics' partitions before its first join."""


def _know_partitions_before_joining(consumer: KafkaConsumer, topics: list[str]) -> None:
    """Have the topics' partitions before the group's first join, so that join hands them out.

    kafka-python asks for a topic list's metadata when it subscribes and joins at the first
    poll without waiting for the answer (it waits only for a pattern's): the leader then assigns
    from no partitions ("No partition metadata for topic ..." logged at every start) and the
    group rebalances again once the answer comes. Waited for here, within
    :data:`FIRST_METADATA_WAIT_MS`; a topic still unknown then (not created yet) is left to
    that later rebalance, as before, and an error to the first poll, which meets it again (a
    constructor that raised would leave the client's I/O thread behind)."""
    cluster = consumer._client.cluster
    if all(cluster.partitions_for_topic(topic) for topic in topics):
        return
    try:
        consumer._net.run(
            consumer._manager.wait_for, cluster.request_update(), FIRST_METADATA_WAIT_MS
        )
    except kafka_errors.KafkaError as exc:  # a timeout, or an error the first poll meets again
        log.info("no metadata for %s yet (%s); the group rebalances when it comes", topics, exc)


def _finish_every_join(consumer: KafkaConsumer) -> None:
    """See every join of the group through to the assignment it brings, however the polls
    around it end.

    kafka-python 3.0.12 runs a join (JoinGroup, the leader's assignment, SyncGroup) as a task of
    its I/O thread, which a poll awaits; a poll that ends first (its timeout, or :meth:`wakeup`)
    leaves the task running for the next poll. Two ways lose the task's result:

    - the next poll awaits it only while the coordinator says it needs to rejoin, and a rejoin
      asked for by changed metadata (a member's first join always races its first metadata
      answer: "No partition metadata for topic ...") or by a changed pattern subscription is
      said by comparisons that the leader's own assignment makes equal again;
    - a task that finished while no poll awaited it (a pattern subscription's poll first waits
      for a metadata answer) is thrown away and a new join begun.

    Either way the assignment was never applied and heartbeats stayed off: the broker dropped
    the member after its session timeout and it read nothing until its topics' partitions
    next changed, or it rejoined over and over (``libs/messaging/tests/test_kafka_joining.py``).
    Here a join under way or finished counts as a rejoin still needed, and its result is taken
    whenever it comes. kafka-python is pinned (uv.lock); a version without these parts is
    refused here rather than left to lose assignments.
    """
    coordinator: Any = getattr(consumer, "_coordinator", None)
    parts = (
        "_join_task",
        "_manager",
        "_lock",
        "_generation",
        "rejoining",
        "rejoin_needed",
        "state",
        "need_rejoin",
        "ensure_coordinator_ready_async",
        "_on_join_prepare_async",
        "_do_join_and_sync_async",
        "_on_join_complete_async",
        "_disable_heartbeat",
        "_enable_heartbeat",
        "join_group_async",
    )
    missing = [name for name in parts if not hasattr(coordinator, name)]
    if missing:
        raise RuntimeError(
            f"this kafka-python's group coordinator lacks {', '.join(missing)}; "
            "rx_messaging.kafka._finish_every_join needs review for it"
        )
    decide = coordinator.need_rejoin

    def need_rejoin() -> bool:
        return coordinator._join_task is not None or bool(decide())

    async def join_group_async(timeout_ms: float | None = None) -> bool:
        timer = Timer(timeout_ms)
        while coordinator.need_rejoin():
            if not await coordinator.ensure_coordinator_ready_async(timeout_ms=timer.timeout_ms):
                return False
            if coordinator._join_task is None:
                if not coordinator.rejoining:  # once per rebalance: listeners, then no heartbeats
                    generation = coordinator._generation
                    await coordinator._on_join_prepare_async(
                        generation.generation_id, generation.member_id, timeout_ms=timer.timeout_ms
                    )
                    coordinator.rejoining = True
                    coordinator._disable_heartbeat()
                coordinator._join_task = coordinator._manager.call_soon(
                    coordinator._do_join_and_sync_async
                )
            try:
                assignment = await coordinator._manager.wait_for(
                    coordinator._join_task, timer.timeout_ms
                )
            except kafka_errors.KafkaTimeoutError:
                return False  # the join goes on; the next poll takes its result
            except _REJOIN_AT_ONCE:
                coordinator._join_task = None  # the response's handling reset what it had to
                continue
            except kafka_errors.RetriableError:
                coordinator._join_task = None
                if timer.expired:
                    return False
                backoff_ms = coordinator.config["retry_backoff_ms"]
                if timer.timeout_ms is not None:
                    backoff_ms = min(backoff_ms, timer.timeout_ms)
                if backoff_ms > 0:
                    await coordinator._manager._net.sleep(backoff_ms / 1000)
                continue
            except kafka_errors.KafkaError:
                coordinator._join_task = None
                raise
            coordinator._join_task = None
            generation = coordinator._generation
            with coordinator._lock:
                coordinator.rejoining = False
                coordinator.rejoin_needed = False
                coordinator.state = MemberState.STABLE
                coordinator._enable_heartbeat()
            await coordinator._on_join_complete_async(
                generation.generation_id, generation.member_id, generation.protocol, assignment
            )
            return True
        return True

    coordinator.need_rejoin = need_rejoin
    coordinator.join_group_async = join_group_async


_REJOIN_AT_ONCE = (
    kafka_errors.UnknownMemberIdError,
    kafka_errors.RebalanceInProgressError,
    kafka_errors.IllegalGenerationError,
    kafka_errors.MemberIdRequiredError,
)
"""A join's answers after which it is tried again at once (kafka-python's own list)."""


class _Woken(Exception):
    """Ends a wait inside kafka-python's poll (:meth:`KafkaRecordSource.wakeup`)."""


WAKEUP_RETRY_S = 0.02
"""How soon :meth:`KafkaRecordSource.wakeup` interrupts a poll again that had not begun to
wait the first time (only while a stop is under way)."""


def _offsets(positions: dict[tuple[str, int], int]) -> dict[TopicPartition, OffsetAndMetadata]:
    return {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in positions.items()}


class _Revocations(AsyncConsumerRebalanceListener):  # type: ignore[misc]
    """kafka-python calls a rebalance listener on its I/O thread, where the consumer's blocking
    ``commit`` refuses to run; the asynchronous listener awaits the coordinator's own offset
    commit coroutine instead (the one kafka-python's auto-commit uses before a rebalance)."""

    def __init__(self, source: KafkaRecordSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        if self._source._revoked is None:
            return
        positions = self._source._revoked([(tp.topic, tp.partition) for tp in revoked])
        if positions:
            coordinator = self._source._consumer._coordinator
            await coordinator._commit_offsets_sync_async(_offsets(positions))
            self._source._committed.update(positions)

    async def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        # Evicted: the partitions may have a new owner already, so nothing is committed.
        if self._source._revoked is not None:
            self._source._revoked([(tp.topic, tp.partition) for tp in lost])

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        pass
