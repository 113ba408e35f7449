"""Kafka authentication and ACLs on a real broker with SASL/SCRAM and the StandardAuthorizer,
set up exactly as ``make run`` sets up its own (``devstack.access``).

The broker's topics are the platform's real names (the ACLs name them), shared by these tests,
so each test tells its own records apart by a unique key and uses fresh consumer groups.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import kafka.errors as kafka_errors
import pytest
from devstack.access import plan, provider_principal
from devstack.pytest_plugin import SecuredKafka
from devstack.topics import TopicError, admin_client
from kafka import KafkaConsumer, TopicPartition
from rx_config.kafka_auth import KafkaAuth
from rx_contracts import (
    Actor,
    AdminAction,
    AdminSubject,
    RoutingConfigChanged,
    encode,
    examples,
    wrap,
)
from rx_contracts.topics import REFERRAL_EVENTS, ROUTING_ADMIN, dead_letter_topic, provider_topic
from rx_contracts.vocabulary import ProviderType
from rx_messaging.consumer import InboxConsumer, PermanentError
from rx_messaging.database import make_engine
from rx_messaging.kafka import DeadLetterPublisher, KafkaPublisher, KafkaRecordSource
from rx_messaging.outbox import add_to_outbox
from rx_messaging.records import PublishError, Record
from rx_messaging.relay import OutboxRelay
from rx_messaging.tables import InboxMessage, OutboxMessage
from sqlmodel import Session, SQLModel, select

pytestmark = pytest.mark.kafka

ACUTE = provider_principal(ProviderType.ACUTE)
PROVIDERS = list(ProviderType)


def other_type(provider_type: ProviderType) -> ProviderType:
    return PROVIDERS[(PROVIDERS.index(provider_type) + 1) % len(PROVIDERS)]


def consumer_as(kafka: SecuredKafka, principal: str, group: str) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **kafka.auth(principal).client_config(),
    )


def poll_until(consumer: KafkaConsumer, done: Callable[[], bool], timeout: float = 20) -> None:
    """Poll (bounded) until ``done()``; errors the broker returns are raised by ``poll``."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        consumer.poll(timeout_ms=300)


@pytest.mark.parametrize("provider_type", PROVIDERS, ids=str)
def test_a_provider_principal_sees_only_its_own_topic_and_may_not_read_another(
    secured_kafka: SecuredKafka, provider_type: ProviderType
) -> None:
    user = provider_principal(provider_type)
    consumer = consumer_as(secured_kafka, user, f"{user}.{uuid.uuid4().hex[:8]}")
    try:
        # Metadata lists only what the principal may describe: its own topic, nothing else.
        assert consumer.topics() == {provider_topic(provider_type)}
        foreign = provider_topic(other_type(provider_type))
        consumer.assign([TopicPartition(foreign, 0)])  # the only topic it asks for
        with pytest.raises(kafka_errors.TopicAuthorizationFailedError):
            poll_until(consumer, lambda: False, timeout=15)
    finally:
        consumer.close()


def test_a_provider_principal_may_not_read_the_full_referral_stream(
    secured_kafka: SecuredKafka,
) -> None:
    consumer = consumer_as(secured_kafka, ACUTE, f"{ACUTE}.{uuid.uuid4().hex[:8]}")
    try:
        consumer.assign([TopicPartition(REFERRAL_EVENTS, 0)])
        with pytest.raises(kafka_errors.TopicAuthorizationFailedError):
            poll_until(consumer, lambda: False, timeout=15)
    finally:
        consumer.close()


@pytest.mark.parametrize(
    "group",
    ["someone-else", f"{provider_principal(ProviderType.SOCIAL_CARE)}.x", f"{ACUTE}-lookalike"],
)
def test_a_provider_principal_may_use_only_consumer_groups_under_its_own_name(
    secured_kafka: SecuredKafka, group: str
) -> None:
    consumer = consumer_as(secured_kafka, ACUTE, group)
    try:
        consumer.subscribe([provider_topic(ProviderType.ACUTE)])
        with pytest.raises(kafka_errors.GroupAuthorizationFailedError) as refused:
            poll_until(consumer, lambda: False, timeout=15)
        assert group in str(refused.value)
    finally:
        consumer.close()


def test_what_routing_publishes_on_a_provider_topic_reaches_that_provider_type(
    secured_kafka: SecuredKafka,
) -> None:
    referral_id = f"acl-{uuid.uuid4().hex[:12]}"
    record = encode(wrap(examples.referral_submitted(referral_id), source="/tests"))
    publisher = KafkaPublisher(
        secured_kafka.bootstrap_servers,
        client_id="routing-test",
        auth=secured_kafka.auth("routing"),
    )
    try:
        publisher.publish(provider_topic(ProviderType.ACUTE), [tuple(record)])
    finally:
        publisher.close()

    source = KafkaRecordSource(
        secured_kafka.bootstrap_servers,
        f"{ACUTE}.worklist-{uuid.uuid4().hex[:8]}",
        topics=[provider_topic(ProviderType.ACUTE)],
        auth=secured_kafka.auth(ACUTE),
    )
    got: list[Record] = []
    try:
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            got = [r for r in source.poll(0.5) if r.key == referral_id.encode()]
        # Committing needs READ on the group as well as the topic: prove that too.
        source.commit({(got[0].topic, got[0].partition): got[0].offset + 1} if got else {})
    finally:
        source.close()
    assert [r.value for r in got] == [record[1]]


def test_routings_admin_changes_reach_the_audit_and_no_one_else_may_write_them(
    secured_kafka: SecuredKafka,
) -> None:
    change = RoutingConfigChanged(
        change_id=uuid.uuid4().hex,
        actor=Actor(organisation="RXADM"),
        subject=AdminSubject.ORGANISATION,
        subject_id=f"ACL{uuid.uuid4().hex[:6].upper()}",
        action=AdminAction.CREATED,
        before=None,
        after={"active": True},
        changed_at=datetime.now(UTC),
    )
    record = encode(wrap(change, source="/tests"))
    routing = KafkaPublisher(
        secured_kafka.bootstrap_servers,
        client_id="routing-test",
        auth=secured_kafka.auth("routing"),
    )
    referrals = KafkaPublisher(
        secured_kafka.bootstrap_servers,
        client_id="referrals-test",
        auth=secured_kafka.auth("referrals"),
        max_block_ms=5000,
    )
    try:
        routing.publish(ROUTING_ADMIN, [tuple(record)])
        with pytest.raises(PublishError, match="TopicAuthorizationFailed"):
            referrals.publish(ROUTING_ADMIN, [tuple(record)], timeout=10)
    finally:
        routing.close()
        referrals.close()

    source = KafkaRecordSource(
        secured_kafka.bootstrap_servers,
        f"audit.{uuid.uuid4().hex[:8]}",
        topics=[ROUTING_ADMIN],
        auth=secured_kafka.auth("audit"),
    )
    got: list[Record] = []
    try:
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            got = [r for r in source.poll(0.5) if r.key == change.key.encode()]
    finally:
        source.close()
    assert [r.value for r in got] == [record[1]]
    provider = consumer_as(secured_kafka, ACUTE, f"{ACUTE}.{uuid.uuid4().hex[:8]}")
    try:
        provider.assign([TopicPartition(ROUTING_ADMIN, 0)])
        with pytest.raises(kafka_errors.TopicAuthorizationFailedError):
            poll_until(provider, lambda: False, timeout=15)
    finally:
        provider.close()


@pytest.mark.parametrize("principal", [p.name for p in plan()])
def test_no_principal_may_write_a_topic_it_does_not_own(
    secured_kafka: SecuredKafka, principal: str
) -> None:
    owned = next(p for p in plan() if p.name == principal).writes
    foreign = next(
        t for t in (REFERRAL_EVENTS, provider_topic(ProviderType.ACUTE)) if t not in owned
    )
    publisher = KafkaPublisher(
        secured_kafka.bootstrap_servers,
        client_id=f"{principal}-test",
        auth=secured_kafka.auth(principal),
        max_block_ms=5000,
    )
    try:
        with pytest.raises(PublishError, match="TopicAuthorizationFailed"):
            publisher.publish(foreign, [(b"acl-refused", b"{}", [])], timeout=10)
    finally:
        publisher.close()


def test_a_wrong_password_is_refused_at_authentication(secured_kafka: SecuredKafka) -> None:
    with admin_client(secured_kafka.bootstrap_servers, auth=secured_kafka.auth(ACUTE)):
        pass  # the right password logs in
    log_size = secured_kafka.log_file.stat().st_size
    wrong = KafkaAuth.sasl(ACUTE, "not-" + secured_kafka.passwords[ACUTE])
    with (
        pytest.raises(TopicError, match=f"refused the credentials of '{ACUTE}'"),
        admin_client(secured_kafka.bootstrap_servers, timeout=3, auth=wrong),
    ):
        pass
    # kafka-python sees the connection close; the broker says why.
    with secured_kafka.log_file.open() as log:
        log.seek(log_size)
        assert "Failed authentication" in log.read()


def test_the_relay_and_inbox_consumer_work_as_their_services_principals_from_env(
    secured_kafka: SecuredKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings path the services use: KAFKA_* variables -> Settings.kafka_auth -> clients.
    Referrals relays its outbox; routing consumes it and dead-letters a poison event."""
    from referrals.config import Settings as ReferralsSettings
    from routing.config import Settings as RoutingSettings

    def settings_as(principal: str, settings_class):
        for name, value in secured_kafka.auth(principal).environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", secured_kafka.bootstrap_servers)
        return settings_class(database_url=f"sqlite:///{tmp_path / (principal + '.db')}")

    engine = make_engine(f"sqlite:///{tmp_path / 'svc.db'}")
    SQLModel.metadata.create_all(engine, tables=[OutboxMessage.__table__, InboxMessage.__table__])
    good, poison = (f"acl-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("good", "poison"))
    events = [wrap(examples.referral_submitted(rid), source="/tests") for rid in (good, poison)]
    with Session(engine) as session:
        for event in events:
            add_to_outbox(session, event, [REFERRAL_EVENTS])
        session.commit()

    referrals = settings_as("referrals", ReferralsSettings)
    assert referrals.kafka_auth.username == "referrals"
    publisher = KafkaPublisher(
        referrals.kafka_bootstrap_servers, client_id="referrals-relay", auth=referrals.kafka_auth
    )
    try:
        assert OutboxRelay(engine, publisher).relay_once() == 2
    finally:
        publisher.close()

    routing = settings_as("routing", RoutingSettings)
    applied: list[str] = []

    def handle(_session: Session, envelope, _record: Record) -> None:
        if envelope.subject == poison:
            raise PermanentError("no route for this one")
        if envelope.subject == good:
            applied.append(envelope.subject)

    source = KafkaRecordSource(
        routing.kafka_bootstrap_servers,
        f"routing.{uuid.uuid4().hex[:8]}",
        topics=[REFERRAL_EVENTS],
        auth=routing.kafka_auth,
    )
    # As the services' consumer parks poison: the dead-letter topic is looked up first, which
    # its WRITE right allows (it exists, created with its topic by the admin).
    dlq = DeadLetterPublisher(
        routing.kafka_bootstrap_servers, "routing-dlq", auth=routing.kafka_auth
    )
    consumer = InboxConsumer("routing", source, engine, handle, dlq)
    dead = 0
    try:
        deadline = time.monotonic() + 30
        while (not applied or not dead) and time.monotonic() < deadline:
            dead += consumer.consume_once(timeout=0.5).dead_lettered
    finally:
        source.close()
        dlq.close()
    assert set(applied) == {good}  # (a batch may be applied twice; only one commits)
    assert dead >= 1
    with Session(engine) as session:
        recorded = set(session.exec(select(InboxMessage.event_id)))
    assert recorded == {events[0].id}, "the good event applied once, the poison not at all"

    # Nobody but the admin reads dead letters (ops tooling); the DLQ has one partition.
    admin_reader = KafkaConsumer(
        bootstrap_servers=secured_kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        **secured_kafka.admin.client_config(),
    )
    admin_reader.assign([TopicPartition(dead_letter_topic(REFERRAL_EVENTS), 0)])
    found: list[bytes] = []
    try:
        deadline = time.monotonic() + 20
        while poison.encode() not in found and time.monotonic() < deadline:
            for records in admin_reader.poll(timeout_ms=300).values():
                found += [r.key for r in records]
    finally:
        admin_reader.close()
    assert poison.encode() in found


def test_a_service_may_not_create_a_missing_dead_letter_topic_and_says_which(
    secured_kafka: SecuredKafka,
) -> None:
    """Under ACLs only the admin creates topics (each with its dead-letter topic): a service
    that meets a missing one is refused, and its error names the topic to create."""
    missing = dead_letter_topic(f"acl-nodlq-{uuid.uuid4().hex[:8]}")
    dlq = DeadLetterPublisher(
        secured_kafka.bootstrap_servers, "routing-dlq", auth=secured_kafka.auth("routing")
    )
    try:
        with pytest.raises(PublishError, match=f"dead-letter topic {missing} is missing"):
            dlq.publish(missing, [(b"k", b"poison", [])])
    finally:
        dlq.close()
    with admin_client(secured_kafka.bootstrap_servers, auth=secured_kafka.admin) as admin:
        assert missing not in admin.list_topics()
