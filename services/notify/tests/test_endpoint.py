"""Which addresses an endpoint may have: checked by rule, with no network involved."""

from __future__ import annotations

import pytest
from notify.config import Settings
from notify.domain.endpoint import EndpointPolicy, parse_endpoint
from notify.domain.errors import InvalidSubscription

STRICT = EndpointPolicy()
DEV = EndpointPolicy.of(True, ["10.20.0.0/16"])


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "fd00:ec2::254",  # cloud metadata over IPv6
        "::ffff:10.0.0.1",
        "100.64.0.1",  # shared address space
        "0.0.0.0",
        "127.0.0.1",
        "::1",
        "fe80::1",
        "224.0.0.1",
    ],
)
def test_addresses_that_are_not_public_are_refused(address: str) -> None:
    assert STRICT.address_problem(address) is not None


def test_public_addresses_pass() -> None:
    assert STRICT.check_addresses("https", ["93.184.216.34", "2606:2800:220:1::1"]) is None


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    assert STRICT.check_addresses("https", ["93.184.216.34", "10.0.0.1"]) is not None


def test_development_allows_loopback_and_its_allow_list_only() -> None:
    assert DEV.address_problem("127.0.0.1") is None
    assert DEV.address_problem("10.20.3.4") is None
    assert DEV.address_problem("10.21.3.4") is not None
    assert DEV.check_addresses("http", ["127.0.0.1"]) is None
    assert DEV.check_addresses("http", ["10.20.3.4"]) is not None  # plain http: loopback only


def test_urls_are_https_with_a_host_and_nothing_hidden() -> None:
    assert parse_endpoint("https://ehr.example.org/hook?x=1", STRICT).port == 443
    assert parse_endpoint("http://127.0.0.1:8080/hook", DEV).origin == "http://127.0.0.1:8080"
    for url in ("ftp://ehr.example.org/", "https:///hook", "https://ehr.example.org/#frag"):
        with pytest.raises(InvalidSubscription):
            parse_endpoint(url, STRICT)


@pytest.mark.parametrize(
    "url", ["https://-f6.A*/hook", "https://ehr_1.example.org/", "https://ehr.exämple.org/"]
)
def test_a_host_that_is_not_a_host_name_is_refused_naming_the_host(url: str) -> None:
    with pytest.raises(InvalidSubscription) as refused:
        parse_endpoint(url, STRICT)
    assert refused.value.rule == "host"


def test_allow_lists_are_refused_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RX_ENV", "production")
    with pytest.raises(ValueError, match="NOTIFY_ALLOW_LOOPBACK"):
        Settings(allow_loopback=True)
