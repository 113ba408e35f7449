"""devstack's Kafka clients (the load driver's provider follower, the conservation check's
topic reader, the topic admin) are built like the services' own (``client_config``): a
devstack pointed at a broker that wants a login logs in. Checked on the settings each client
is constructed with, without a broker."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from devstack import load, topics
from devstack.conservation import read_in_order
from devstack.load import Endpoints, LoadDriver
from devstack.providers import ProviderTopics
from rx_config.kafka_auth import KafkaAuth

LOGIN = {
    "security_protocol": "SASL_PLAINTEXT",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_plain_username": "reader",
    "sasl_plain_password": "s3cret-enough",
}
AUTH = KafkaAuth.sasl("reader", "s3cret-enough")


class FakeClient:
    """Records what it is constructed with; has no partitions and reads nothing."""

    built: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, **config: Any) -> None:
        FakeClient.built.append(config)

    def partitions_for_topic(self, topic: str) -> None:
        return None

    def assign(self, partitions: list[object]) -> None:
        pass

    def seek_to_beginning(self, *partitions: object) -> None:
        pass

    def end_offsets(self, partitions: list[object]) -> dict[object, int]:
        return {}

    def close(self, **kwargs: Any) -> None:
        pass


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    FakeClient.built = []
    monkeypatch.setattr(topics, "KafkaConsumer", FakeClient)
    monkeypatch.setattr(topics, "KafkaAdminClient", FakeClient)
    return FakeClient.built


def test_the_provider_follower_logs_in_and_reads_outside_any_group(
    built: list[dict[str, Any]],
) -> None:
    ProviderTopics("127.0.0.1:1,127.0.0.1:2", AUTH).close()
    [config] = built
    assert config["bootstrap_servers"] == ["127.0.0.1:1", "127.0.0.1:2"]
    assert {key: config[key] for key in LOGIN} == LOGIN
    assert config["group_id"] is None
    assert config["enable_auto_commit"] is False
    assert config["metrics_enabled"] is False


def test_the_load_driver_follows_the_provider_topics_with_its_endpoints_login(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    followed: list[tuple[str, KafkaAuth | None]] = []

    class Followed(Exception):
        pass

    def follower(bootstrap_servers: str, auth: KafkaAuth | None = None) -> None:
        followed.append((bootstrap_servers, auth))
        raise Followed  # stop before any referral is sent

    class Tokens:
        def get(self, client_id: str, audience: str = "referrals") -> str:
            return "token"

    monkeypatch.setattr(load, "ProviderTopics", follower)
    endpoints = Endpoints("http://127.0.0.1:1", "http://127.0.0.1:2", "127.0.0.1:3", AUTH)
    driver = LoadDriver(endpoints, tokens=Tokens())  # type: ignore[arg-type]
    try:
        with pytest.raises(Followed):
            driver.start()
    finally:
        driver._loop.close()
    assert followed == [("127.0.0.1:3", AUTH)]


def test_the_conservation_check_reads_each_topic_as_its_own_principal(
    built: list[dict[str, Any]],
) -> None:
    other = KafkaAuth.sasl("other", "an0ther-secret")
    read = read_in_order("127.0.0.1:1", ["a.topic", "b.topic"], {"a.topic": AUTH, "b.topic": other})
    assert set(read) == {"a.topic", "b.topic"}
    assert [config["sasl_plain_username"] for config in built] == ["reader", "other"]
    assert all(config["group_id"] is None for config in built)


def test_the_topic_admin_logs_in(built: list[dict[str, Any]]) -> None:
    with topics.admin_client("127.0.0.1:1", auth=AUTH):
        pass
    [config] = built
    assert config["client_id"] == "devstack-admin"
    assert {key: config[key] for key in LOGIN} == LOGIN


def test_without_a_login_the_clients_connect_in_plaintext(built: list[dict[str, Any]]) -> None:
    ProviderTopics("127.0.0.1:1").close()
    [config] = built
    assert "security_protocol" not in config
    assert "sasl_plain_username" not in config
