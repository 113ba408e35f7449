"""``make run``'s secured broker: secrets generated once and kept private, a broker config
that denies by default, and each worker started as its own service's principal."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from devstack import credentials
from devstack.access import plan
from devstack.broker import Broker, BrokerError
from devstack.run import local_broker
from devstack.sasl import BrokerSecurity, redact_format_output
from devstack.stack import PROCESSES, Stack
from rx_config.kafka_auth import KafkaAuth


def test_passwords_are_generated_once_into_an_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "kafka" / "credentials.json"
    first = credentials.load_or_create(path, ["admin", "routing"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(set(first.values())) == 2 and all(len(p) >= 32 for p in first.values())
    # A later start keeps them and adds a user the plan gained since (a new provider type).
    again = credentials.load_or_create(path, ["admin", "routing", "provider-mental-health"])
    assert {k: again[k] for k in first} == first
    assert json.loads(path.read_text()) == again


def test_a_credentials_file_others_could_read_is_made_private_again(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"admin": "x" * 32}))
    path.chmod(0o644)
    assert credentials.load_or_create(path, ["admin"]) == {"admin": "x" * 32}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_damaged_credentials_file_is_reported_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text("{not json")
    with pytest.raises(BrokerError, match="cannot read Kafka credentials"):
        credentials.load_or_create(path, ["admin"])
    assert path.read_text() == "{not json"


def test_the_secured_broker_denies_what_no_acl_allows_and_hides_its_controller() -> None:
    props = BrokerSecurity("a" * 16, "c" * 16).properties(9092, 9093)
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin;User:controller"
    assert props["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:9092"
    assert "CONTROLLER://127.0.0.1:9093" in props["listeners"]
    # No listener is left unauthenticated (no anonymous super user).
    assert set(props["listener.security.protocol.map"].split(",")) == {
        "SASL_PLAINTEXT:SASL_PLAINTEXT",
        "CONTROLLER:SASL_PLAINTEXT",
    }


@pytest.mark.parametrize("password", ["short", 'has"quote-and-more', "comma,inside-long-enough"])
def test_passwords_that_could_break_the_broker_config_are_refused(password: str) -> None:
    with pytest.raises(ValueError, match="at least 12 characters"):
        BrokerSecurity(password, "c" * 16)


def test_scram_keys_printed_by_the_format_tool_stay_out_of_the_log() -> None:
    line = "UserScramCredentialRecord(name='admin', mechanism=2, salt=[1, 2], storedKey=[3, -4], serverKey=[5], iterations=4096)"
    redacted = redact_format_output(line)
    assert "3, -4" not in redacted and "[5]" not in redacted and "1, 2" not in redacted
    assert "name='admin'" in redacted


def test_make_run_keeps_its_broker_passwords_beside_the_broker_data(tmp_path: Path) -> None:
    broker, passwords = local_broker(tmp_path / "kafka", 9092, secured=True)
    assert broker.security is not None
    assert set(passwords) == {"admin", "controller", *(p.name for p in plan())}
    again, same = local_broker(tmp_path / "kafka", 9092, secured=True)
    assert same == passwords
    assert again.security == broker.security
    plain, none = local_broker(tmp_path / "other", 9092, secured=False)
    assert plain.security is None and none == {}


def test_make_run_refuses_kafka_data_created_without_authentication(tmp_path: Path) -> None:
    (tmp_path / "kafka" / "logs").mkdir(parents=True)
    (tmp_path / "kafka" / "logs" / "meta.properties").write_text("cluster.id=x\n")
    with pytest.raises(BrokerError, match=r"created without authentication.*RX_KAFKA_SECURITY=off"):
        local_broker(tmp_path / "kafka", 9092, secured=True)


def test_each_kafka_worker_runs_as_its_services_principal_and_the_rest_get_no_kafka_secret(
    tmp_path: Path,
) -> None:
    auth = {
        s: KafkaAuth.sasl(s, f"{s}-password-123")
        for s in ("referrals", "routing", "audit", "notify")
    }
    stack = Stack(tmp_path, "127.0.0.1:1", kafka_auth=auth)
    assert {spec.name for spec in PROCESSES if not spec.uses_kafka} == {
        "referrals-api",
        "routing-api",
        "routing-clock",
        "notify-api",
        "portal-api",
    }  # the audit API verifies its chain against checkpoints read back from Kafka
    for spec in PROCESSES:
        env = stack.env(spec)
        if spec.uses_kafka:
            assert KafkaAuth.from_env(env) == auth[spec.service], spec.name
        else:  # the APIs, and the routing clock, which only writes its database
            assert env.get("KAFKA_SASL_PASSWORD") != f"{spec.service}-password-123", spec.name


def test_a_broker_without_security_is_unchanged(tmp_path: Path) -> None:
    props = Broker(tmp_path, 9092)._properties()
    assert props["listeners"].startswith("PLAINTEXT://")
    assert "authorizer.class.name" not in props
