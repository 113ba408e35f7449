"""The ops console is served by the audit service itself: the page and its assets need no
identity and load nothing from elsewhere; the data behind them stays ops-only."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from audit.config import Settings
from audit.entrypoints.api.app import create_app
from fastapi.testclient import TestClient

ASSETS = {
    "ops.css": "text/css",
    "ops.js": "javascript",
    "charts.js": "javascript",
    "pipeline.js": "javascript",
}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def test_the_page_and_its_assets_are_served_without_identity(client: TestClient) -> None:
    page = client.get("/ops")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert set(referenced) == {"data:,", *(f"/ops/assets/{name}" for name in ASSETS)}
    for name, kind in ASSETS.items():
        asset = client.get(f"/ops/assets/{name}")
        assert asset.status_code == 200, name
        assert kind in asset.headers["content-type"], name
    assert client.get("/ops/assets/nope.js").status_code == 404
    assert client.get("/audit/figures").status_code == 401, "the data is still ops-only"


TOKEN_META = re.compile(r'<meta name="rx-token-url" content="([^"]*)">')


def test_nothing_is_loaded_from_another_site(client: TestClient) -> None:
    for path in ["/ops", *(f"/ops/assets/{name}" for name in ASSETS)]:
        # The issuer's token endpoint is where the page signs in, not something it loads.
        text = TOKEN_META.sub("", client.get(path).text)
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path


def test_the_page_signs_in_at_the_issuer_and_may_talk_only_to_it_and_this_service(
    settings: Settings,
) -> None:
    browser_view = settings.model_copy(
        update={"console_token_url": "http://localhost:8000/oauth2/token"}
    )
    with TestClient(create_app(browser_view)) as client:
        page = client.get("/ops")
    [token_url] = TOKEN_META.findall(page.text)
    assert token_url == "http://localhost:8000/oauth2/token"
    policy = page.headers["content-security-policy"]
    assert "connect-src 'self' http://localhost:8000;" in policy
    assert "script-src 'self';" in policy, "no inline or foreign scripts"
