"""The ops console is served by the audit service itself: the page and its assets need no
identity and load nothing from elsewhere; the data behind them stays ops-only."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from audit.api import create_app
from audit.config import Settings
from fastapi.testclient import TestClient

ASSETS = {"ops.css": "text/css", "ops.js": "javascript", "charts.js": "javascript"}


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


def test_nothing_is_loaded_from_another_site(client: TestClient) -> None:
    for path in ["/ops", *(f"/ops/assets/{name}" for name in ASSETS)]:
        text = client.get(path).text
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path
