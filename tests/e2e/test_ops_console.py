"""The ops console in headless Chromium against the whole platform: the page loads, an ops
user signs in with the issuer (a wrong secret is refused), an entry appears live when a
referral is posted, its journey (a question asked and answered, then acceptance) opens, a
subscription's delivery health shows, and the figures' charts render and follow the selection
of an organisation, locality and cohort."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from devstack.chromium import CHROMIUM_ARGS
from devstack.stack import Stack
from issuer.clients import demo_secret
from playwright.sync_api import BrowserContext, Page, sync_playwright

from .conftest import as_client, submit, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

WAIT_MS = 30_000


@pytest.fixture
def browser(chromium_executable: Path, tmp_path: Path) -> Iterator[BrowserContext]:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",  # fresh every time
            executable_path=str(chromium_executable),
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": 1300, "height": 1600},
        )
        try:
            yield context
        finally:
            context.close()


def act(stack: Stack, referral_id: str, client: str, action: str, body: dict[str, str]) -> None:
    """``client`` takes ``action`` once routing has assigned the referral."""
    url = f"{stack.url('referrals')}/referrals/{referral_id}"
    headers = as_client(stack, client)
    etag = wait_for(
        "the referral to be routed to the team",
        lambda: (
            (r := httpx.get(url, headers=headers, timeout=10)).json().get("status") == "routed"
            and r.headers["ETag"]
        ),
    )
    response = httpx.post(
        f"{url}/{action}",
        json=body,
        headers={**headers, "If-Match": etag, "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def ask_then_accept(stack: Stack, referral_id: str) -> None:
    """The assigned rapid response team asks a question, the practice answers it, and the
    team accepts."""
    act(stack, referral_id, "rxa01", "request-info", {"question": "Is a carer at home?"})
    url = f"{stack.url('referrals')}/referrals/{referral_id}"
    gp = as_client(stack, "b81001")
    etag = httpx.get(url, headers=gp, timeout=10).headers["ETag"]
    response = httpx.post(
        f"{url}/provide-info",
        json={"answer": "Yes, her daughter."},
        headers={**gp, "If-Match": etag, "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    act(stack, referral_id, "rxa01", "accept", {})


def test_the_console_shows_a_new_referral_live_and_charts_the_figures(
    broker_factory, stack_factory, browser: BrowserContext, tmp_path: Path
) -> None:
    # A broker of its own: the counts it expects would include other stacks' events.
    kafka_bootstrap = broker_factory().bootstrap_servers
    stack = stack_factory(kafka_bootstrap)
    # A webhook whose endpoint is down, so the console has a failing subscription to show.
    subscription = httpx.post(
        f"{stack.url('notify')}/subscriptions",
        json={"topic": "referrals-sent", "endpoint": "http://127.0.0.1:9/down"},
        headers=as_client(stack, "b81001", "notify", **{"Idempotency-Key": str(uuid.uuid4())}),
        timeout=10,
    )
    assert subscription.status_code == 201, subscription.text
    page: Page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{stack.url('audit')}/ops")
    page.fill("#identity-secret", "wrong")
    page.click("#identity button")
    page.wait_for_selector("#identity-status.error", timeout=WAIT_MS)  # the issuer said no
    page.fill("#identity-client", "ops")
    page.fill("#identity-secret", demo_secret("ops"))
    page.click("#identity button")
    page.wait_for_selector("#identity-status.live", timeout=WAIT_MS)
    assert "RX0PS" in page.inner_text("#identity-status")
    page.wait_for_selector("#stream-status.live", timeout=WAIT_MS)

    referral_id = submit(stack)["id"]
    row = f'#stream tr[data-referral="{referral_id}"]'
    page.wait_for_selector(row, timeout=WAIT_MS)  # pushed over the stream, no reload
    ask_then_accept(stack, referral_id)
    page.wait_for_selector(f"{row}[title='rx.referrals.ReferralAccepted.v1']", timeout=WAIT_MS)

    page.click(f"{row} a.referral")
    # A selector, not wait_for_function: that evaluates a string in the page, which the
    # console's Content-Security-Policy (no 'unsafe-eval') rightly refuses.
    page.locator(
        "#timeline tbody tr td:nth-child(2)", has_text=re.compile(r"^ReferralAccepted$")
    ).first.wait_for(timeout=WAIT_MS)
    steps = page.locator("#timeline tbody tr td:nth-child(2)").all_inner_texts()
    assert "ReferralAccessed: referral" in steps, "the team's read of the referral, and what"
    journey = [step for step in steps if not step.startswith("ReferralAccessed")]
    assert journey[:5] == [
        "ReferralSubmitted",
        "ReferralRouted",
        "ReferralInfoRequested",
        "ReferralInfoProvided",
        "ReferralAccepted",
    ]

    # Subscriptions' health, read from the notify API with the console's own token.
    subscription_row = f'#subscriptions tr[data-subscription="{subscription.json()["id"]}"]'
    page.click("#subscriptions-form button")
    page.locator(f"{subscription_row} td", has_text="ConnectError").first.wait_for(timeout=WAIT_MS)
    assert "B81001" in page.inner_text(subscription_row)

    page.click("#figures-form button")
    page.wait_for_selector("#chart-accept-service svg rect.bar", timeout=WAIT_MS)
    for chart in ("chart-accept-service", "chart-accept-org", "chart-flows", "chart-daily"):
        assert page.locator(f"#{chart} svg").count() == 1, f"{chart} did not render"
    assert "urgent-community-response" in page.inner_text("#chart-accept-service")
    assert "referrer → rapid-response" in page.inner_text("#chart-flows")
    assert "within 2 h" in page.inner_text("#chart-rapid")
    assert "1 of 1 answered" in page.inner_text("#chart-questions")
    assert "RXA01" in page.inner_text("#chart-questions")
    assert "No data" in page.inner_text("#outcome-service"), "nothing has ended"

    # The figures of one organisation, locality or cohort.
    selection = page.locator("#figures-selection")
    selection.filter(has_text="1 referral submitted (all)").wait_for(timeout=WAIT_MS)
    page.fill("#figures-organisation", "RXA01")
    page.click("#figures-form button")
    selection.filter(has_text="RXA01 sent or holds or held").wait_for(timeout=WAIT_MS)
    assert selection.inner_text().startswith("1 referral submitted")
    assert "RXA01" in page.inner_text("#chart-accept-org")
    page.fill("#figures-organisation", "RXA02")  # another team: none of its referrals
    page.click("#figures-form button")
    selection.filter(has_text="0 referrals submitted").wait_for(timeout=WAIT_MS)
    assert "No data" in page.inner_text("#chart-accept-org")
    page.fill("#figures-organisation", "")
    page.select_option("#figures-locality", "east")  # offered: where the referral was routed
    selection.filter(has_text="1 referral submitted: in east").wait_for(timeout=WAIT_MS)
    page.select_option("#figures-cohort", "frailty")
    selection.filter(has_text="0 referrals submitted: in east, cohort frailty").wait_for(
        timeout=WAIT_MS
    )
    page.select_option("#figures-cohort", "none")
    selection.filter(has_text="1 referral submitted: in east, in no cohort").wait_for(
        timeout=WAIT_MS
    )
    assert "completed" not in page.inner_text("#chart-outcome-mix"), "nothing has ended"
    page.screenshot(path=str(tmp_path / "ops-console.png"), full_page=True)
    assert errors == [], f"the page threw: {errors}"
