"""The portal in headless Chromium against the whole platform, as people use it: a GP refers,
a rapid response team sees the offer arrive live and rejects it with a reason, the next team
accepts, starts and completes it, and the GP sees the outcome. A team asks the GP a question,
the GP answers it with a document, and the team accepts, sends an update and completes with
an outcome. Around those journeys: another
organisation's referral is not found, a form without its CSRF token is refused, an expired
session goes back to sign-in, sign-out ends the sign-in at the issuer too. axe-core (served
by the portal from its npm package) checks every page: no serious or critical violation."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from devstack.chromium import CHROMIUM_ARGS
from devstack.ports import free_ports
from devstack.stack import ProcessSpec, Stack
from issuer.users import demo_password
from playwright.sync_api import Browser, Page, sync_playwright

from .conftest import running_stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

WAIT_MS = 30_000
GP = "b81001.referrer"
FIRST_TEAM = "rxa01.clinician"
NEXT_TEAM = "rxa02.lead"
SERIOUS = ("serious", "critical")
AXE = Path(__file__).resolve().parents[2] / "services/portal/node_modules/axe-core/axe.min.js"
LETTER: Any = {
    "name": "letter.txt",
    "mimeType": "text/plain",
    "buffer": b"Lives alone; key safe 1234.",
}


@pytest.fixture(scope="module")
def portal_stack(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    with running_stack(
        request, tmp_path_factory.mktemp("portal"), kafka_bootstrap, "portal-", timeout=120
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser(chromium_executable: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium_executable), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield launched
        finally:
            launched.close()


class Person:
    """One person at their own browser (a context of its own: cookies are theirs)."""

    def __init__(
        self, browser: Browser, portal: str, username: str, bypass_csp: bool = False
    ) -> None:
        self.portal, self.username = portal, username
        # bypass_csp: to check the issuer's pages too, whose policy allows no script at all.
        self.context = browser.new_context(
            viewport={"width": 1280, "height": 1200}, bypass_csp=bypass_csp
        )
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.checked: list[str] = []

    def sign_in(self, then: str = "/worklist") -> None:
        self.page.goto(self.portal + then)
        self.page.wait_for_url(re.compile(r"/signin"))
        self.accessible("the sign-in page")
        self.page.click("#sign-in")
        self.page.fill("#username", self.username)  # the issuer's page
        self.page.fill("#password", demo_password(self.username))
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(re.escape(self.portal + then)), timeout=WAIT_MS)
        assert self.username.split(".")[0].upper() in self.page.inner_text("#signed-in-as")

    def accessible(self, what: str) -> None:
        """axe-core, loaded from the portal under its own CSP: nothing serious or critical."""
        if self.page.url.startswith(self.portal):
            self.page.add_script_tag(url=f"{self.portal}/dev/axe/axe.min.js")
        else:  # the issuer's page (a context that bypasses its no-script policy)
            self.page.add_script_tag(path=AXE)
        found: list[dict[str, Any]] = self.page.evaluate(
            "async () => (await axe.run(document)).violations"
            ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.map(n => n.target.join(' '))}))"
        )
        serious = [v for v in found if v["impact"] in SERIOUS]
        assert serious == [], f"accessibility violations on {what}: {serious}"
        self.checked.append(what)

    def open_referral(self, referral_id: str) -> None:
        self.page.goto(f"{self.portal}/referrals/{referral_id}")
        self.page.wait_for_selector("#referral-status")

    def wait_for_status(self, label: str) -> None:
        """Reload the referral page until its status reads ``label`` (routing is a consumer)."""

        def shows() -> bool:
            self.page.reload()
            return label in self.page.inner_text("#referral-status")

        wait_for(f"the referral to be {label}", shows, timeout=30, every=0.5)

    def act(self, label: str) -> None:
        self.page.get_by_role("button", name=label).click()
        self.page.wait_for_selector("#done", timeout=WAIT_MS)

    def open_form(self, action: str) -> None:
        """The form of an action that asks for details, once it has loaded."""
        self.page.click(f"[data-action={action}]")
        self.page.wait_for_selector("#action-form")

    def close(self) -> None:
        assert self.errors == [], f"{self.username}'s pages threw: {self.errors}"
        self.context.close()


@pytest.fixture
def people(browser: Browser, portal_stack: Stack) -> Iterator[Callable[..., Person]]:
    opened: list[Person] = []

    def open_as(username: str, bypass_csp: bool = False) -> Person:
        person = Person(browser, portal_stack.url("portal"), username, bypass_csp)
        opened.append(person)
        return person

    yield open_as
    for person in opened:
        person.close()


def test_a_referral_travels_from_gp_to_two_teams_and_back_with_its_outcome(
    portal_stack: Stack, people: Callable[..., Person]
) -> None:
    first = people(FIRST_TEAM)
    first.sign_in()
    first.accessible("an empty worklist")
    navigations: list[str] = []
    first.page.on("framenavigated", lambda frame: navigations.append(frame.url))

    gp = people(GP)
    gp.sign_in("/referrals/new")
    gp.accessible("the new referral form")
    gp.page.fill("#patient-name", "Alex Smith")
    gp.page.fill("#patient-nhs_number", "9434765918")  # a wrong check digit
    gp.page.fill("#patient-postcode", "BS5 0AA")
    gp.page.select_option("#service_type", "urgent-community-response")
    gp.page.get_by_label("Urgent").check()
    gp.page.click("#create-form button[type=submit]")
    gp.page.wait_for_selector(".nhsuk-error-summary")
    message = gp.page.inner_text("#patient-nhs_number-error")
    assert "check digit" in message.lower() or "modulus" in message.lower(), message
    assert gp.page.input_value("#patient-postcode") == "BS5 0AA", "what was typed is kept"
    gp.accessible("the new referral form with an error")
    gp.page.fill("#patient-nhs_number", "9434765919")
    gp.page.fill("#reason-text", "Fall at home, no injury")
    gp.page.click("#create-form button[type=submit]")
    gp.page.wait_for_selector("#done")
    referral_id = gp.page.url.split("/referrals/")[1].split("?")[0]
    gp.page.set_input_files("#document", files=[LETTER])
    gp.page.click("form.rx-upload button[type=submit]")
    gp.page.wait_for_selector("#attachments a")
    gp.accessible("the referral page")

    # The first team's open worklist shows the offer without a reload.
    row = f'#worklist-table tr[data-referral="{referral_id}"]'
    first.page.wait_for_selector(row, timeout=WAIT_MS)
    assert navigations == [], "the worklist refreshed itself; the page never reloaded"
    assert re.search(r"Due in \d", first.page.inner_text(f"{row} .rx-due"))
    first.accessible("a worklist with an offer")
    first.page.click(f"{row} a")
    first.page.wait_for_selector("#actions")
    assert "Alex Smith" in first.page.inner_text("h1")
    with first.page.expect_download() as download:
        first.page.click("#attachments a")
    assert download.value.suggested_filename == LETTER["name"]
    assert Path(download.value.path()).read_bytes() == LETTER["buffer"]
    offered = first.page.locator("#actions [data-action]").evaluate_all(
        "nodes => nodes.map(n => n.dataset.action)"
    )
    assert offered == ["accept", "reject", "redirect", "request-info", "message"]
    first.open_form("redirect")
    first.accessible("the redirect form")
    first.page.go_back()
    first.open_form("reject")
    first.page.get_by_label("Other (say why below)").check()
    first.page.click("#action-form button[type=submit]")
    first.page.wait_for_selector("#reason_text-error")  # the API wants words for 'other'
    first.accessible("the reject form with an error")
    first.page.get_by_label("Not available within the timescale").check()
    first.page.fill("#reason_text", "No capacity before 18:00")
    first.page.click("#action-form button[type=submit]")
    first.page.wait_for_url(re.compile(r"/referrals/[^/]+\?done=reject"))

    # Routing offers it to the next team, which accepts, starts and completes it.
    second = people(NEXT_TEAM)
    second.sign_in()
    second.page.wait_for_selector(row, timeout=WAIT_MS)
    second.open_referral(referral_id)
    second.act("Accept referral")
    second.act("Start work")
    second.open_form("complete")
    second.accessible("the complete form")
    second.page.get_by_label("Remained at home").check()
    second.page.fill("#summary", "Mobilising safely with a frame")
    second.page.click("#action-form button[type=submit]")
    second.page.wait_for_selector("#done")
    assert "Completed" in second.page.inner_text("#referral-status")

    # The GP sees the outcome, and the whole history.
    gp.open_referral(referral_id)
    assert "Remained at home" in gp.page.inner_text("#outcome")
    steps = gp.page.locator("#history tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.action)"
    )
    assert steps[0] == "submit" and steps[-3:] == ["accept", "start", "complete"]
    assert "reject" in steps
    history = gp.page.inner_text("#history")
    assert "RXA01" in history and "No capacity before 18:00" in history
    gp.accessible("a completed referral")
    gp.page.goto(f"{gp.portal}/worklist?view=sent&status=completed")
    gp.page.wait_for_selector(row)
    gp.accessible("the sent worklist, filtered")


def test_a_question_is_answered_then_the_team_updates_and_completes_with_an_outcome(
    portal_stack: Stack, people: Callable[..., Person]
) -> None:
    gp = people(GP)
    gp.sign_in("/referrals/new")
    gp.page.fill("#patient-name", "Sam Jones")
    gp.page.fill("#patient-postcode", "BS5 0AA")
    gp.page.select_option("#service_type", "urgent-community-response")
    gp.page.fill("#reason-text", "Confused since this morning")
    gp.page.click("#create-form button[type=submit]")
    gp.page.wait_for_selector("#done")
    referral_id = gp.page.url.split("/referrals/")[1].split("?")[0]
    gp.wait_for_status("Offered")

    # The team asks before it accepts: the referral waits on the GP, its clock paused.
    team = people(FIRST_TEAM)
    team.sign_in(f"/referrals/{referral_id}")
    team.open_form("request-info")
    team.accessible("the question form")
    team.page.fill("#question", "Is there a key safe, and its code?")
    team.page.click("#action-form button[type=submit]")
    team.page.wait_for_selector("#done")
    assert "Question asked" in team.page.inner_text("#referral-status")
    assert "Waiting for the referrer" in team.page.inner_text("#question-waiting")

    # The GP's worklist says a question is waiting; the GP answers with a document.
    row = f'#worklist-table tr[data-referral="{referral_id}"]'
    gp.page.goto(f"{gp.portal}/worklist?view=sent")
    gp.page.wait_for_selector(f"{row} [data-question-waiting]", timeout=WAIT_MS)
    gp.accessible("the sent worklist with a question waiting")
    gp.page.click(f"{row} a")
    assert "key safe" in gp.page.inner_text("#question-waiting")
    gp.open_form("provide-info")
    gp.page.fill("#answer", "Key safe by the front door, code 4512")
    gp.page.set_input_files("#document", files=[LETTER])
    gp.accessible("the answer form")
    gp.page.click("#action-form button[type=submit]")
    gp.page.wait_for_selector("#done")
    assert "Offered" in gp.page.inner_text("#referral-status"), "back to the same team"

    # The team sees question and answer with who and when, accepts, sends an update (a
    # refusal first, named at its field) and completes with an outcome of the service type.
    team.open_referral(referral_id)
    timeline = team.page.inner_text("#timeline")
    assert "Is there a key safe" in timeline and "code 4512" in timeline
    assert "from RXA01" in timeline and "from B81001" in timeline
    assert team.page.locator("#timeline a", has_text=LETTER["name"]).count() == 1
    team.accessible("a referral with a question answered")
    team.act("Accept referral")
    team.open_form("report-progress")
    team.page.get_by_label("Other (describe below)").check()
    team.page.click("#action-form button[type=submit]")
    team.page.wait_for_selector("#text-error")  # 'other' needs words
    team.accessible("the update form with an error")
    team.page.get_by_label("Visit booked").check()
    team.page.fill("#text", "Visit booked for 15:30 today")
    team.page.click("#action-form button[type=submit]")
    team.page.wait_for_selector("#done")
    team.act("Start work")
    team.open_form("complete")
    outcomes = team.page.locator("#outcome input").evaluate_all("nodes => nodes.map(n => n.value)")
    assert "remained-at-home" in outcomes and "package-of-care-arranged" not in outcomes
    team.page.get_by_label("Remained at home").check()
    team.page.fill("#summary", "Family staying overnight")
    team.page.click("#action-form button[type=submit]")
    team.page.wait_for_selector("#done")

    gp.open_referral(referral_id)
    assert "Remained at home" in gp.page.inner_text("#outcome")
    updates = gp.page.locator("#timeline [data-action]").evaluate_all(
        "items => items.map(i => i.dataset.action)"
    )
    assert updates == ["request-info", "provide-info", "report-progress"]
    assert "Visit booked for 15:30 today" in gp.page.inner_text("#timeline")


def test_the_referrer_amends_and_cancels_and_another_organisation_cannot_see_it(
    portal_stack: Stack, people: Callable[..., Person]
) -> None:
    gp = people(GP)
    gp.sign_in("/referrals/new")
    gp.page.fill("#patient-postcode", "BS5 0AA")
    gp.page.select_option("#service_type", "social-care-assessment")
    gp.page.check("#consent-1")  # social care needs the basis for sharing: consent
    gp.page.click("#create-form button[type=submit]")
    gp.page.wait_for_selector("#done")
    url = gp.page.url.split("?")[0]
    gp.wait_for_status("Offered")

    gp.open_form("amend")
    gp.accessible("the amend form")
    gp.page.select_option("#priority", "asap")
    gp.page.fill("#clinical_summary", "Carer unwell; needs a package of care today")
    gp.page.click("#action-form button[type=submit]")
    gp.page.wait_for_selector("#done")
    assert "Asap" in gp.page.inner_text("#referral-status")
    gp.open_form("cancel")
    gp.page.click("#action-form button[type=submit]")
    gp.page.wait_for_selector("#reason_text-error")  # a cancellation says why
    gp.accessible("the cancel form with an error")
    gp.page.fill("#reason_text", "Family arranged care")
    gp.page.click("#action-form button[type=submit]")
    gp.page.wait_for_selector("#done")
    assert "Cancelled" in gp.page.inner_text("#referral-status")
    assert gp.page.locator("#actions").count() == 0, "nothing is left to do"

    other = people("l81002.referrer")
    other.sign_in()
    answer = other.page.goto(url)
    assert answer is not None and answer.status == 404
    assert "Page not found" in other.page.inner_text("h1")
    assert "BS5 0AA" not in other.page.content()
    other.accessible("the not-found page")


def test_a_form_posted_without_its_csrf_token_is_refused(
    portal_stack: Stack, people: Callable[..., Person]
) -> None:
    gp = people(GP)
    gp.sign_in("/referrals/new")
    form = {
        "patient.postcode": "BS5 0AA",
        "service_type": "gp-review",
        "idempotency_key": "csrf-test",
    }
    # The person's own cookies, but not the page's hidden token: what a forged form sends.
    refused = gp.page.request.post(f"{gp.portal}/referrals/new", form=form)
    assert refused.status == 403
    assert "could not be accepted" in refused.text()
    wrong = gp.page.request.post(
        f"{gp.portal}/referrals/new", form={**form, "csrf_token": "not-the-token"}
    )
    assert wrong.status == 403
    gp.page.goto(f"{gp.portal}/worklist?view=sent")
    assert "GP review" not in gp.page.inner_text("#worklist"), "nothing was created"

    # In the browser: the page's own form, its hidden token removed before it is sent.
    gp.page.goto(f"{gp.portal}/referrals/new")
    gp.page.fill("#patient-postcode", "BS5 0AA")
    gp.page.select_option("#service_type", "gp-review")
    gp.page.evaluate("document.querySelector('#create-form input[name=csrf_token]').remove()")
    with gp.page.expect_navigation() as posted:
        gp.page.click("#create-form button[type=submit]")
    assert posted.value is not None and posted.value.status == 403
    assert "could not be accepted" in gp.page.inner_text("#csrf-refused")
    gp.accessible("the refused form page")
    gp.page.goto(f"{gp.portal}/worklist?view=sent")
    assert "GP review" not in gp.page.inner_text("#worklist"), "nothing was created"


def test_sign_out_ends_the_session_here_and_at_the_issuer(
    portal_stack: Stack, people: Callable[..., Person]
) -> None:
    person = people(FIRST_TEAM, bypass_csp=True)
    person.sign_in()
    person.page.click("#sign-out")
    person.page.wait_for_url(re.compile(r"/signed-out(\?|$)"), timeout=WAIT_MS)
    person.accessible("the signed-out page")
    person.page.goto(f"{person.portal}/worklist")
    person.page.wait_for_url(re.compile(r"/signin"))
    person.page.click("#sign-in")
    person.page.wait_for_selector("#password")  # the issuer asks again
    person.accessible("the issuer's sign-in page")
    person.page.fill("#username", FIRST_TEAM)
    person.page.fill("#password", "not the password")
    person.page.click("button[type=submit]")
    person.page.wait_for_selector("#signin-error")
    person.accessible("the issuer's sign-in page with an error")


@pytest.fixture
def short_session_portal(portal_stack: Stack, tmp_path: Path) -> Iterator[str]:
    """A second portal process on the same stack whose sessions end after 2 s idle."""
    [port] = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    env = {
        **portal_stack.env(ProcessSpec("portal", "api")),
        "PORTAL_PORT": str(port),
        "PORTAL_URL": url,
        "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}",
        "PORTAL_IDLE_TIMEOUT_SECONDS": "2",
    }
    with (tmp_path / "portal.log").open("wb") as log:
        process = subprocess.Popen(
            ProcessSpec("portal", "api").argv, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for("the second portal", lambda: _answers(f"{url}/health"), timeout=60)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_an_expired_session_goes_back_to_sign_in(
    short_session_portal: str, browser: Browser
) -> None:
    person = Person(browser, short_session_portal, FIRST_TEAM)
    try:
        person.sign_in()
        # The worklist's next refresh finds the session over and takes the page to sign-in.
        person.page.wait_for_url(re.compile(r"/signin\?expired=1"), timeout=WAIT_MS)
        assert "Your session has ended" in person.page.inner_text("#session-expired")
        person.accessible("sign-in after an expired session")
        answer = person.page.request.get(f"{short_session_portal}/worklist", max_redirects=0)
        assert answer.status == 303 and "/signin" in answer.headers["location"]
    finally:
        person.close()


def test_the_portal_is_in_the_stack_and_serves_its_assets_itself(portal_stack: Stack) -> None:
    portal = portal_stack.url("portal")
    page = httpx.get(f"{portal}/signin", timeout=10)
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    sources = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    assert sources and all(s.startswith("/") for s in sources), sources
    for asset in (
        "/nhsuk/nhsuk-frontend.min.css",
        "/nhsuk/nhsuk-frontend.min.js",
        "/htmx/htmx.min.js",
    ):
        response = httpx.get(portal + asset, timeout=10)
        assert response.status_code == 200, asset
        assert "assets.nhs.uk" not in response.text, f"{asset} loads from elsewhere"
