"""The ops console's pipeline-health panel in headless Chromium against the whole platform:
consumer lag per partition, every relay's outbox backlog, the dead letter a poison record
leaves and the SLA clocks routed referrals start, from the processes' own /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from devstack.chromium import CHROMIUM_ARGS
from issuer.clients import demo_secret
from kafka import KafkaProducer
from playwright.sync_api import BrowserContext, Page, sync_playwright
from rx_contracts.topics import REFERRAL_EVENTS

from .conftest import audit_entries, submit, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

WAIT_MS = 30_000


@pytest.fixture
def browser(chromium_executable: Path, tmp_path: Path) -> Iterator[BrowserContext]:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=str(chromium_executable),
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": 1300, "height": 1600},
        )
        try:
            yield context
        finally:
            context.close()


def test_the_pipeline_panel_shows_lag_backlog_dead_letters_and_clocks(
    broker_factory, stack_factory, browser: BrowserContext, tmp_path: Path
) -> None:
    # A broker of its own: the counts it expects would include other stacks' events.
    kafka_bootstrap = broker_factory().bootstrap_servers
    stack = stack_factory(kafka_bootstrap)
    rids = [submit(stack)["id"] for _ in range(2)]
    with KafkaProducer(bootstrap_servers=kafka_bootstrap.split(",")) as producer:
        producer.send(REFERRAL_EVENTS, key=b"poison-panel", value=b"{not json").get(timeout=10)
    for rid in rids:
        wait_for("routing in the audit log", lambda r=rid: len(audit_entries(stack, r)) >= 2)

    page: Page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{stack.url('audit')}/ops")
    assert page.locator("#pipeline-lag tbody tr").count() == 0, "nothing shown signed out"
    page.fill("#identity-client", "ops")
    page.fill("#identity-secret", demo_secret("ops"))
    page.click("#identity button")
    page.wait_for_selector("#identity-status.live", timeout=WAIT_MS)

    page.locator("#pipeline-lag tbody td", has_text=REFERRAL_EVENTS).first.wait_for(timeout=WAIT_MS)
    relays = page.locator("#pipeline-outbox tbody tr td:first-child").all_inner_texts()
    processes = stack.processes().values()  # with replicas, each role's processes
    assert sorted(relays) == sorted(s.name for s in processes if s.role == "relay")
    dead = page.locator("#pipeline-dead-letters tbody tr", has_text=REFERRAL_EVENTS)
    dead.first.wait_for(timeout=WAIT_MS)
    groups = [row.split("\t")[0] for row in dead.all_inner_texts()]
    assert any(g.endswith("routing") for g in groups) and any(g.endswith("audit") for g in groups)
    assert all(row.split("\t")[2] == "1" for row in dead.all_inner_texts()), "one poison record"
    pending = int(page.inner_text("#pipeline-sla tbody tr td:first-child"))
    assert pending >= 2, "each routed referral runs an acceptance clock"
    status = page.inner_text("#pipeline-status")
    every = len(processes)
    assert status.startswith(f"{every}/{every} processes") and "dead letter" in status
    page.screenshot(path=str(tmp_path / "ops-pipeline.png"), full_page=True)
    assert errors == [], f"the page threw: {errors}"
