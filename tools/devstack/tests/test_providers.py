"""The providers' side of the load driver: each offer on a provider topic is acted on once,
even when the topic holds it twice (at least once delivery, e.g. after a broker outage)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from devstack.providers import ROUTED, ProviderTopics
from devstack.topics import ensure_topics
from kafka import KafkaProducer
from rx_contracts import ProviderType
from rx_contracts.topics import all_topics, provider_topic

pytestmark = pytest.mark.kafka


def test_an_offer_delivered_twice_is_read_once_and_the_next_attempt_again(
    kafka_bootstrap: str,
) -> None:
    ensure_topics(kafka_bootstrap, all_topics())
    follower = ProviderTopics(kafka_bootstrap)
    try:
        follower.ready()
        referral = str(uuid.uuid4())
        topic = provider_topic(ProviderType.RAPID_RESPONSE)
        with KafkaProducer(bootstrap_servers=kafka_bootstrap.split(",")) as producer:
            for org, attempt in (("RXA01", 1), ("RXA01", 1), ("RXA02", 2)):
                value = {"referral_id": referral, "assigned_org": org, "attempt": attempt}
                producer.send(
                    topic,
                    key=referral.encode(),
                    value=json.dumps(value).encode(),
                    headers=[("ce_type", ROUTED.encode())],
                ).get(timeout=10)
        read: list[tuple[str, str, int]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(read) < 2:
            read += [offer for offer in follower.poll() if offer[0] == referral]
        read += [offer for offer in follower.poll() if offer[0] == referral]
        assert read == [(referral, "RXA01", 1), (referral, "RXA02", 2)]
    finally:
        follower.close()
