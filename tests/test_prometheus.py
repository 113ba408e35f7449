"""Monitoring as code: the Prometheus scrape config and alert rules pass ``promtool`` (and the
rules' own unit tests), every process of docker-compose.yml is scraped where it serves
/metrics, and the Grafana dashboard asks only for series the platform exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from devstack.promtool import promtool
from devstack.stack import DEFAULT_PORTS, PROCESSES
from rx_telemetry import metrics

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "infra" / "prometheus"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
WORKER_PORT = "9100"


@pytest.fixture(scope="module")
def tool() -> Path:
    return promtool()


def run(tool: Path, *args: str) -> str:
    done = subprocess.run(
        [str(tool), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_the_scrape_config_and_its_rule_files_are_valid(tool: Path) -> None:
    assert "SUCCESS" in run(tool, "check", "config", "prometheus.yml")


def test_the_alert_rules_are_valid_and_fire_as_their_tests_expect(tool: Path) -> None:
    checked = run(tool, "check", "rules", "alerts.yml")
    assert "SUCCESS: 5 rules found" in checked
    assert "SUCCESS" in run(tool, "test", "rules", "alerts.test.yml")
    names = {
        r["alert"]
        for g in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
    }
    assert {
        "ConsumerLagGrowing",
        "OutboxOldestRowOver30s",
        "DeadLettersPresent",
        "SlaBreachRateHigh",
    } <= names
    tested = (PROMETHEUS / "alerts.test.yml").read_text()
    assert all(f"alertname: {name}" in tested for name in names), "every rule has a test"


def scraped() -> dict[str, str]:
    """``name:port`` -> the ``process`` label of what Prometheus scrapes there: every address
    a name resolves to (DNS service discovery), labelled with the name itself."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets: dict[str, str] = {}
    for job in config["scrape_configs"]:
        assert "static_configs" not in job, "a fixed target would scrape one replica of many"
        assert {"source_labels": ["__meta_dns_name"], "target_label": "process"} in job[
            "relabel_configs"
        ], "each target is labelled with its process's name"
        for group in job["dns_sd_configs"]:
            assert group["type"] == "A", "every container of a name, not one of them"
            targets |= {f"{name}:{group['port']}": name for name in group["names"]}
    return targets


def test_every_replica_of_every_compose_process_is_scraped_where_it_serves_metrics() -> None:
    targets = scraped()
    services = COMPOSE["services"]
    common = COMPOSE["x-common-env"]
    assert (common["RX_METRICS_HOST"], str(common["RX_METRICS_PORT"])) == ("0.0.0.0", WORKER_PORT)
    for spec in PROCESSES:
        assert spec.name in services, f"{spec.name} is not in docker-compose.yml"
        port = str(DEFAULT_PORTS[spec.service]) if spec.is_api else WORKER_PORT
        assert targets.get(f"{spec.name}:{port}") == spec.name, f"{spec.name}:{port} not scraped"
    assert len(targets) == len(PROCESSES), f"scraped but not a process: {targets}"
    assert "prometheus" in services
    mounts = services["prometheus"]["volumes"]
    assert "./infra/prometheus:/etc/prometheus:ro" in mounts


def test_the_console_reads_the_same_processes_prometheus_scrapes() -> None:
    raw = COMPOSE["services"]["audit-api"]["environment"]["AUDIT_METRICS_TARGETS"]
    targets = {re.sub(r"^http://|/metrics$", "", t.strip()) for t in raw.split(",")}
    assert targets == set(scraped())


def test_the_dashboard_asks_only_for_series_the_platform_exports() -> None:
    dashboard = json.loads((ROOT / "infra" / "grafana" / "referral-exchange.json").read_text())
    exported = {
        "rx_http_requests_total",
        "rx_http_request_duration_seconds_bucket",
        "rx_outbox_published_total",
        "rx_consumer_events_total",
        "rx_consumer_event_duration_seconds_bucket",
        "rx_dead_letters_total",
        "rx_outbox_backlog",
        "rx_outbox_oldest_age_seconds",
        "rx_consumer_lag",
        "rx_sla_clocks",
        "rx_db_pool_connections",
        "up",
    }
    for counter in (metrics.HTTP_REQUESTS, metrics.DEAD_LETTERS, metrics.CONSUMER_EVENTS):
        assert f"{counter._name}_total" in exported
    asked = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            asked |= set(re.findall(r"\b(rx_[a-z_]+|up)\b(?=[{\[ )]|$)", target["expr"]))
    assert asked and asked <= exported, asked - exported
    wanted = {"rx_consumer_lag", "rx_outbox_backlog", "rx_dead_letters_total", "rx_sla_clocks"}
    assert wanted <= asked
