"""The shared KAFKA_* security settings become the same kafka-python arguments everywhere."""

from __future__ import annotations

import pytest
from rx_config.kafka_auth import KafkaAuth, KafkaAuthError


def test_without_settings_clients_connect_in_plaintext_with_no_credentials() -> None:
    auth = KafkaAuth.from_env({})
    assert not auth.uses_sasl
    assert auth.client_config() == {}


def test_sasl_settings_from_the_environment_become_client_arguments() -> None:
    auth = KafkaAuth.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_USERNAME": "routing",
            "KAFKA_SASL_PASSWORD": "s3cret-s3cret",
        }
    )
    assert auth.client_config() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "routing",
        "sasl_plain_password": "s3cret-s3cret",
    }


def test_a_child_process_given_environment_reads_the_same_settings_back() -> None:
    auth = KafkaAuth.sasl("audit", "pw-of-audit-123", mechanism="SCRAM-SHA-256")
    assert KafkaAuth.from_env(auth.environment()) == auth
    assert KafkaAuth.from_env(KafkaAuth().environment()) == KafkaAuth()


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "KAFKA_SASL_USERNAME"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "x"},
            "KAFKA_SASL_PASSWORD",
        ),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL"}, "KAFKA_SECURITY_PROTOCOL='SSL'"),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": "GSSAPI",
                "KAFKA_SASL_USERNAME": "x",
                "KAFKA_SASL_PASSWORD": "y",
            },
            "KAFKA_SASL_MECHANISM='GSSAPI'",
        ),
    ],
)
def test_incomplete_or_unsupported_settings_are_refused_naming_the_variable(
    settings: dict[str, str], names: str
) -> None:
    with pytest.raises(KafkaAuthError, match=names):
        KafkaAuth.from_env(settings)


def test_the_password_never_shows_in_the_repr() -> None:
    assert "pw-of-audit-123" not in repr(KafkaAuth.sasl("audit", "pw-of-audit-123"))


@pytest.mark.parametrize("password", ["routing-dev", "changeme", "password", "routing", " "])
def test_default_and_guessable_passwords_are_recognised(password: str) -> None:
    assert KafkaAuth("SASL_PLAINTEXT", username="routing", password=password).has_default_password()


def test_a_generated_password_is_not_a_default() -> None:
    assert not KafkaAuth.sasl("routing", "9tZqk3l7Vx0-fA2_mB8wQe").has_default_password()
