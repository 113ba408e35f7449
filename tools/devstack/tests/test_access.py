"""The principal/ACL plan gives each principal exactly what its code needs (no broker here:
``tests/integration/test_kafka_access.py`` proves the broker enforces it)."""

from __future__ import annotations

import re

import pytest
from audit.config import Settings as AuditSettings
from devstack.access import (
    AccessError,
    markdown_table,
    password_variable,
    passwords_from_environment,
    plan,
    principal,
    provider_principal,
)
from devstack.jars import repo_root
from kafka.admin import ACLOperation, ACLResourcePatternType, ResourceType
from notify.config import Settings as NotifySettings
from notify.entrypoints.workers import TOPICS as NOTIFY_TOPICS
from referrals.config import Settings as ReferralsSettings
from routing.config import Settings as RoutingSettings
from rx_contracts.topics import (
    REFERRAL_EVENTS,
    ROUTING_DECISIONS,
    ROUTING_SLA,
    all_topics,
    dead_letter_topic,
    provider_topic,
)
from rx_contracts.vocabulary import ProviderType

DEAD_LETTERS = {dead_letter_topic(t) for t in all_topics()}
STREAMS = [t for t in all_topics() if t not in DEAD_LETTERS]
SERVICES = ("referrals", "routing", "audit", "notify")


def owner(topic: str) -> str:
    """``<owner>.<stream>.v<N>``; routing publishes every provider type's topic."""
    first = topic.split(".")[0]
    return "routing" if first == "provider" else first


@pytest.mark.parametrize("topic", STREAMS)
def test_each_stream_is_written_by_its_owner_alone(topic: str) -> None:
    writers = {p.name for p in plan() if topic in p.writes}
    assert writers == {owner(topic)}


@pytest.mark.parametrize("provider_type", list(ProviderType), ids=str)
def test_every_provider_type_has_a_principal_that_reads_only_its_own_topic(
    provider_type: ProviderType,
) -> None:
    found = principal(provider_principal(provider_type))
    assert found.reads == (provider_topic(provider_type),)
    assert found.writes == ()


def test_readers_of_each_provider_topic_are_its_provider_type_and_audit() -> None:
    for provider_type in ProviderType:
        topic = provider_topic(provider_type)
        readers = {p.name for p in plan() if topic in p.reads}
        assert readers == {provider_principal(provider_type), "audit"}


def test_consumers_may_dead_letter_what_they_read_and_nobody_reads_dead_letters() -> None:
    for p in plan():
        if p.name in SERVICES:
            assert {dead_letter_topic(t) for t in p.reads} <= set(p.writes), p.name
        assert not DEAD_LETTERS & set(p.reads), p.name


def test_what_each_service_consumes_and_the_group_it_uses_are_allowed() -> None:
    consumed = {
        "referrals": [ROUTING_DECISIONS, ROUTING_SLA],
        "routing": [REFERRAL_EVENTS],
        # audit subscribes by pattern: whatever the pattern matches it must be allowed to read
        "audit": [t for t in all_topics() if re.match(AuditSettings().topic_pattern, t)],
        "notify": NOTIFY_TOPICS,
    }
    groups = {
        "referrals": ReferralsSettings().consumer_group,
        "routing": RoutingSettings().consumer_group,
        "audit": AuditSettings().consumer_group,
        "notify": NotifySettings().consumer_group,
    }
    for service in SERVICES:
        found = principal(service)
        assert set(consumed[service]) == set(found.reads), service
        assert groups[service] == found.name


def test_acls_allow_reads_writes_and_the_principals_own_groups_only() -> None:
    routing = principal("routing")
    rules = {
        (a.resource_pattern.resource_type, a.resource_pattern.resource_name, a.operation)
        for a in routing.acls()
    }
    assert rules == {
        (ResourceType.TOPIC, REFERRAL_EVENTS, ACLOperation.READ),
        *((ResourceType.TOPIC, t, ACLOperation.WRITE) for t in routing.writes),
        (ResourceType.GROUP, "routing", ACLOperation.READ),
        (ResourceType.GROUP, "routing.", ACLOperation.READ),
    }
    prefixed = [
        a
        for a in routing.acls()
        if a.resource_pattern.pattern_type is ACLResourcePatternType.PREFIXED
    ]
    assert [a.resource_pattern.resource_name for a in prefixed] == ["routing."]
    assert {a.principal for a in routing.acls()} == {"User:routing"}


def test_the_kafka_access_guide_shows_the_plan_as_it_is() -> None:
    guide = (repo_root() / "docs" / "kafka-access.md").read_text()
    assert markdown_table() in guide, (
        "docs/kafka-access.md's table of users is out of date; "
        "paste `python -m devstack.access show`"
    )


def test_deployments_pass_each_password_in_its_own_variable() -> None:
    assert password_variable("provider-rapid-response") == "KAFKA_PROVIDER_RAPID_RESPONSE_PASSWORD"
    environ = {password_variable(p.name): f"{p.name}-dev" for p in plan()}
    assert passwords_from_environment(environ)["routing"] == "routing-dev"
    with pytest.raises(AccessError, match="KAFKA_ROUTING_PASSWORD is a well-known default"):
        passwords_from_environment({**environ, "RX_ENV": "production"})
    del environ["KAFKA_AUDIT_PASSWORD"]
    with pytest.raises(AccessError, match="KAFKA_AUDIT_PASSWORD is not set"):
        passwords_from_environment(environ)


def test_the_plan_covers_the_services_and_every_provider_type_once() -> None:
    names = [p.name for p in plan()]
    assert len(names) == len(set(names))
    assert set(names) == {*SERVICES, *(provider_principal(t) for t in ProviderType)}
