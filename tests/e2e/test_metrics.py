"""Every process of a running stack serves Prometheus metrics, and the figures operators
watch move when referrals flow: HTTP requests, outbox publishing and backlog, consumer lag
and event timings, dead letters, SLA clocks, connection pools."""

from __future__ import annotations

import json

import httpx
import pytest
from devstack.stack import PROCESSES, Stack
from kafka import KafkaProducer
from rx_contracts.topics import REFERRAL_EVENTS
from rx_telemetry.scrape import Series, parse, samples, total

from .conftest import audit_entries, submit, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

SUBMITTED = "rx.referrals.ReferralSubmitted.v1"


def scrape(stack: Stack) -> dict[str, Series]:
    """Each role's figures (``referrals-api`` …): with several processes of a role, all of
    theirs, each sample labelled with its ``process``."""
    found: dict[str, Series] = {spec.name: {} for spec in PROCESSES}
    for name, spec in stack.processes().items():
        response = httpx.get(f"{stack.ops_url(name)}/metrics", timeout=10)
        assert response.status_code == 200, f"{name}: {response.status_code}"
        assert response.headers["content-type"].startswith("text/plain")
        for (sample, labels), value in parse(response.text).items():
            found[spec.name][(sample, labels | {("process", name)})] = value
    return found


def test_every_process_logs_json_lines_with_its_service_and_role(
    kafka_bootstrap, shared_stack
) -> None:
    stack = shared_stack
    rid = submit(stack)["id"]
    wait_for("routing in the audit log", lambda: len(audit_entries(stack, rid)) >= 2)
    for name, spec in stack.processes().items():
        lines = stack.log_file(name).read_text().splitlines()
        assert lines, f"{name} logged nothing"
        for line in lines:
            entry = json.loads(line)
            assert (entry["service"], entry["role"]) == (spec.service, spec.role), line
            assert {"time", "level", "logger", "message"} <= set(entry), line


def test_every_process_serves_metrics_that_move_with_referrals(
    kafka_bootstrap, shared_stack
) -> None:
    stack = shared_stack
    workers = [name for name, spec in stack.processes().items() if not spec.is_api]
    for name in workers:
        url = stack.ops_url(name)
        assert url != stack.url(name.split("-")[0]), "a worker has a port of its own"
        assert httpx.get(f"{url}/health", timeout=5).json()["status"] == "ok"
        ready = wait_for(
            f"{name} ready",
            lambda u=url: (r := httpx.get(f"{u}/ready", timeout=5)).is_success and r,
        )
        assert ready.json()["database"] == "ok"
        if not name.startswith("routing-clock"):
            assert ready.json()["broker"] == "ok"
    before = scrape(stack)

    referrals = [submit(stack)["id"] for _ in range(3)]
    with KafkaProducer(bootstrap_servers=kafka_bootstrap.split(",")) as producer:
        producer.send(REFERRAL_EVENTS, key=b"poison-metrics", value=b"{not json").get(timeout=10)
    for rid in referrals:
        wait_for("routing in the audit log", lambda r=rid: len(audit_entries(stack, r)) >= 2)

    def moved() -> dict[str, Series] | None:
        after = scrape(stack)
        consumed = total(
            after["routing-consumer"], "rx_consumer_events_total", outcome="applied"
        ) - total(before["routing-consumer"], "rx_consumer_events_total", outcome="applied")
        dead = total(after["audit-consumer"], "rx_dead_letters_total")
        return after if consumed >= 3 and dead >= 1 else None

    after = wait_for("the consumers' counters to move", moved)

    def grew(process: str, name: str, **labels: str) -> float:
        return total(after[process], name, **labels) - total(before[process], name, **labels)

    post = {"service": "referrals", "method": "POST", "route": "/referrals", "status": "201"}
    assert grew("referrals-api", "rx_http_requests_total", **post) == 3
    assert (
        grew(
            "referrals-api",
            "rx_http_request_duration_seconds_count",
            service="referrals",
            method="POST",
            route="/referrals",
        )
        == 3
    )
    assert grew("audit-api", "rx_http_requests_total", service="audit", status="200") >= 3
    assert grew("referrals-relay", "rx_outbox_published_total") >= 3
    assert grew("routing-relay", "rx_outbox_published_total") >= 6, "decision + provider copy"
    for relay in ("referrals-relay", "routing-relay", "audit-relay"):
        for name in ("rx_outbox_backlog", "rx_outbox_oldest_age_seconds"):
            assert [labels for labels, _ in samples(after[relay], name)] == [
                {"relay": relay, "process": process} for process in stack.named(relay)
            ]
    assert (
        grew("routing-consumer", "rx_consumer_event_duration_seconds_count", event_type=SUBMITTED)
        == 3
    )
    lag = {
        (labels["topic"], labels["partition"])
        for labels, _ in samples(after["routing-consumer"], "rx_consumer_lag")
    }
    assert any(topic == REFERRAL_EVENTS for topic, _ in lag), "lag per partition it consumed"
    assert grew("routing-consumer", "rx_dead_letters_total", topic=REFERRAL_EVENTS) == 1
    assert grew("audit-consumer", "rx_dead_letters_total", topic=REFERRAL_EVENTS) == 1
    assert grew("audit-consumer", "rx_consumer_events_total", outcome="applied") >= 6
    assert total(after["routing-clock"], "rx_sla_clocks", state="pending") >= 3, (
        "each routed referral starts an acceptance clock"
    )
    for spec in PROCESSES:
        pool = list(samples(after[spec.name], "rx_db_pool_connections"))
        assert pool or spec.service == "portal", f"{spec.name} reports its connection pool"
