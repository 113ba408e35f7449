"""Topic administration for the development/test Kafka broker (kafka-python 3.0 admin client).

Services and tests create their topics up front because the dev broker runs with
``auto.create.topics.enable=false``: a typo in a topic name then fails loudly instead of
silently creating a second, empty topic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from rx_config.kafka_auth import KafkaAuth
from rx_contracts.topics import DEAD_LETTER_SUFFIX, dead_letter_topic
from rx_messaging.kafka import CLIENT_METRICS_OFF, client_config

from .errors import BrokerError

log = logging.getLogger(__name__)


class TopicError(BrokerError):
    """No broker answered, or topics could not be created / did not become usable in time.

    A ``BrokerError``, so callers that start a broker and create topics catch both alike.
    """


@contextmanager
def admin_client(
    bootstrap_servers: str, timeout: float = 10, auth: KafkaAuth | None = None
) -> Iterator[KafkaAdminClient]:
    """Yield a connected ``KafkaAdminClient``; raise ``TopicError`` if none answers in time.

    ``auth``: how to log in (a secured broker needs its super user to create topics and ACLs).

    kafka-python 3.0 starts the client's IO thread before it bootstraps, and a failed
    bootstrap in ``__init__`` leaves that thread running; construct in two steps so a failed
    attempt is closed too (readiness polls make many attempts).
    """
    timeout_ms = max(int(timeout * 1000), 1)
    admin = KafkaAdminClient.__new__(KafkaAdminClient)
    try:
        admin.__init__(  # type: ignore[misc]
            **client_config(bootstrap_servers, "devstack-admin", auth),
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=max(timeout_ms, 5000),
        )
    except Exception as exc:
        _close_partially_built(admin)
        # kafka-python reports a refused login only in its log, as a failed bootstrap.
        refused = (
            f", or it refused the credentials of {auth.username!r}"
            if auth is not None and auth.uses_sasl
            else ""
        )
        raise TopicError(
            f"no Kafka broker answered at {bootstrap_servers} within {timeout:g}s{refused}: {exc}"
        ) from exc
    try:
        yield admin
    finally:
        admin.close()


def reader_config(
    bootstrap_servers: str, client_id: str, auth: KafkaAuth | None = None
) -> dict[str, object]:
    """Settings of a consumer that reads assigned partitions outside any group: nothing is
    committed and no group ACL is needed. Built like the services' clients
    (``rx_messaging.kafka.client_config``), so it logs in to a secured broker as they do."""
    return {
        **client_config(bootstrap_servers, client_id, auth),
        "group_id": None,
        "enable_auto_commit": False,
        **CLIENT_METRICS_OFF,
    }


def reader(bootstrap_servers: str, client_id: str, auth: KafkaAuth | None = None) -> KafkaConsumer:
    """A consumer built with :func:`reader_config`; the caller assigns its partitions."""
    return KafkaConsumer(**reader_config(bootstrap_servers, client_id, auth))


def read_from_start(
    bootstrap_servers: str,
    topics: Sequence[str],
    until: Callable[[list[ConsumerRecord]], bool],
    *,
    timeout: float = 30,
    settle: float = 1.0,
    auth: KafkaAuth | None = None,
) -> list[ConsumerRecord]:
    """Every record of ``topics`` from their first offsets (in order within each partition),
    read until ``until`` holds for what was read or ``timeout`` seconds pass, then ``settle``
    seconds more, so a duplicate arriving just behind is caught too.

    Read outside any consumer group (partitions assigned, nothing committed): a fresh group
    member can be handed its first assignment before it has the topics' metadata, and then
    waits on a rebalance before it reads anything, which is no part of what a reader checks.
    A topic that does not exist yet is waited for within ``timeout``.
    """
    consumer = reader(bootstrap_servers, "devstack-read", auth)
    seen: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    try:
        partitions: list[TopicPartition] = []
        for topic in topics:
            while not (found := consumer.partitions_for_topic(topic)):
                if time.monotonic() > deadline:
                    raise TopicError(f"topic {topic!r} not found at {bootstrap_servers}")
                time.sleep(0.1)
            partitions += [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)

        def take(wait_ms: int) -> None:
            for records in consumer.poll(timeout_ms=wait_ms).values():
                seen.extend(records)

        while not until(seen) and time.monotonic() < deadline:
            take(300)
        end = time.monotonic() + settle
        while time.monotonic() < end:
            take(200)
    finally:
        consumer.close(autocommit=False)
    return seen


def _close_partially_built(admin: KafkaAdminClient) -> None:
    """Stop the IO thread and sockets of an admin client whose ``__init__`` raised."""
    for name in ("_client", "_metrics"):
        part = getattr(admin, name, None)
        if part is not None:
            try:
                part.close()
            except Exception:
                log.debug("closing %s of a failed admin client", name, exc_info=True)
    net = getattr(admin, "_net", None)
    if net is not None:
        try:
            net.stop()
        except Exception:
            log.debug("stopping the IO thread of a failed admin client", exc_info=True)


def cluster_info(
    bootstrap_servers: str, timeout: float = 10, auth: KafkaAuth | None = None
) -> dict[str, Any]:
    """Return ``describe_cluster()`` of the broker (cluster id, brokers); raise ``TopicError``.

    Used as the readiness probe: it succeeds only once the broker serves metadata requests.
    """
    with admin_client(bootstrap_servers, timeout, auth) as admin:
        try:
            info: dict[str, Any] = admin.describe_cluster()
        except Exception as exc:
            raise TopicError(
                f"Kafka at {bootstrap_servers} did not describe its cluster: {exc}"
            ) from exc
    if not info.get("brokers"):
        raise TopicError(f"Kafka at {bootstrap_servers} reports no live brokers yet")
    return info


def ensure_topics(
    bootstrap_servers: str,
    topics: Mapping[str, int],
    timeout: float = 30,
    auth: KafkaAuth | None = None,
    *,
    dead_letters: bool = True,
) -> None:
    """Create the missing topics (name -> partitions, replication 1) and wait until usable.

    Each topic comes with its dead-letter topic (``<topic>.dlq``, one partition) unless it is
    one itself or ``dead_letters`` is False: a consumer of a topic parks poison there, and
    retries the batch while it cannot (``rx_messaging.kafka.DeadLetterPublisher`` creates a
    missing one only where the broker lets it).

    Idempotent: topics that already exist are left as they are (a different partition count
    is logged as a warning, never changed, because adding partitions re-maps keys). Returns
    only once metadata shows a leader for every partition, so producing right after works.
    """
    if not topics:
        return
    if dead_letters:
        topics = {
            **{dead_letter_topic(n): 1 for n in topics if not n.endswith(DEAD_LETTER_SUFFIX)},
            **topics,
        }
    for name, partitions in topics.items():
        if partitions < 1:
            raise ValueError(f"topic {name!r}: partitions must be >= 1, got {partitions}")
    deadline = time.monotonic() + timeout
    names = list(topics)
    with admin_client(bootstrap_servers, timeout, auth) as admin:
        request = {
            name: {"num_partitions": partitions, "replication_factor": 1}
            for name, partitions in topics.items()
        }
        try:
            response = admin.create_topics(
                request, timeout_ms=_remaining_ms(deadline), raise_errors=False
            )
        except Exception as exc:
            raise TopicError(
                f"creating topics {names} at {bootstrap_servers} failed: {exc}"
            ) from exc
        failures = []
        for result in response["topics"]:
            error = kafka_errors.for_code(result["error_code"])
            if error in (kafka_errors.NoError, kafka_errors.TopicAlreadyExistsError):
                continue
            failures.append(
                f"{result['name']}: {error.__name__} {result.get('error_message') or ''}"
            )
        if failures:
            raise TopicError(
                f"could not create topics at {bootstrap_servers}: {'; '.join(failures)}"
            )
        try:
            admin.wait_for_topics(names, timeout_ms=_remaining_ms(deadline))
        except kafka_errors.KafkaTimeoutError as exc:
            raise TopicError(f"topics not usable within {timeout:g}s: {exc}") from exc
        for described in admin.describe_topics(names):
            wanted = topics[described["name"]]
            actual = len(described["partitions"])
            if actual != wanted:
                log.warning(
                    "topic %r already exists with %d partitions (asked for %d); left unchanged",
                    described["name"],
                    actual,
                    wanted,
                )


def _remaining_ms(deadline: float) -> int:
    """Milliseconds left until ``deadline`` (at least 1, kafka-python treats 0 as "default")."""
    return max(int((deadline - time.monotonic()) * 1000), 1)
