"""What the simulated provider systems of the load driver use: access tokens from the
stack's issuer (client credentials, as a real system gets them) and the provider topics,
followed from their current end."""

from __future__ import annotations

import contextlib
import json
import time

import httpx
from issuer.clients import demo_secret
from kafka import TopicPartition
from rx_config.kafka_auth import KafkaAuth
from rx_contracts import ProviderType
from rx_contracts.topics import provider_topic

from .topics import reader

ROUTED = "rx.routing.ReferralRouted.v1"


class Tokens:
    """Access tokens of the demo clients, from the stack's issuer, renewed before expiry."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self._cache: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, client_id: str, audience: str = "referrals") -> str:
        cached = self._cache.get((client_id, audience))
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        response = httpx.post(
            f"{self.issuer}/oauth2/token",
            data={"grant_type": "client_credentials", "audience": audience},
            auth=(client_id, demo_secret(client_id)),
            timeout=10,
        )
        response.raise_for_status()
        body = response.json()
        expires = time.monotonic() + float(body["expires_in"]) / 2
        self._cache[(client_id, audience)] = (body["access_token"], expires)
        return str(body["access_token"])


def provider_clients() -> list[str]:
    """Every demo organisation routing may assign (their client ids)."""
    return [
        "rxa01",
        "rxa02",
        "scc01",
        "scc02",
        "scc03",
        "rac01",
        "rac02",
        "l81001",
        "l81002",
        "l81099",
    ]


class ProviderTopics:
    """Reads every provider topic from its current end, as the providers' systems do.

    ``auth``: a principal that may read every provider topic, for a broker with ACLs."""

    def __init__(self, bootstrap_servers: str, auth: KafkaAuth | None = None) -> None:
        self.consumer = reader(bootstrap_servers, "devstack-providers", auth)
        topics = [provider_topic(t) for t in ProviderType]
        self.partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(self.consumer.partitions_for_topic(topic) or ())
        ]
        self.consumer.assign(self.partitions)
        # The topics are at least once (a relay publishes again what it cannot know was
        # written, e.g. across a broker outage): a provider acts on each offer once.
        self._offers: set[tuple[str, str, int]] = set()

    def ready(self) -> None:
        """Pin the start to the topics' current end before any referral is sent."""
        self.consumer.seek_to_end(*self.partitions)
        for tp in self.partitions:
            self.consumer.position(tp)

    def poll(self) -> list[tuple[str, str, int]]:
        """(referral id, assigned organisation, attempt) of each ReferralRouted read, once
        each (a record delivered again is left out)."""
        routed = []
        for records in self.consumer.poll(timeout_ms=200).values():
            for record in records:
                headers = dict(record.headers or [])
                if headers.get("ce_type") != ROUTED.encode():
                    continue
                with contextlib.suppress(ValueError, KeyError):
                    data = json.loads(record.value)
                    offer = (data["referral_id"], data["assigned_org"], int(data["attempt"]))
                    if offer not in self._offers:
                        self._offers.add(offer)
                        routed.append(offer)
        return routed

    def close(self) -> None:
        self.consumer.close(autocommit=False)
