"""The portal's pages before anyone signs in: where they send people, and what they load."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from portal.config import Settings
from portal.entrypoints.app import create_app
from rx_web.settings import Environment


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'portal.db'}",
        issuer_url="http://127.0.0.1:8000",
        rx_env=Environment.DEVELOPMENT,
    )
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


def test_pages_need_a_session_and_say_where_to_sign_in(client: TestClient) -> None:
    response = client.get("/worklist?view=sent")
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=/worklist%3Fview%3Dsent"
    polled = client.get("/worklist/rows", headers={"HX-Request": "true"})
    assert polled.status_code == 200 and polled.headers["hx-redirect"].startswith("/signin")
    assert client.post("/signout").headers["location"].startswith("/signin")


def test_sign_in_goes_back_only_to_the_portals_own_pages(client: TestClient) -> None:
    page = client.get("/signin?next=https://evil.example/")
    assert 'href="/login?next=/worklist"' in page.text


def test_pages_run_no_inline_script_and_load_nothing_from_elsewhere(client: TestClient) -> None:
    page = client.get("/signin")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy
    assert "form-action 'self' http://127.0.0.1:8000" in policy
    assert page.headers.get_list("content-security-policy") == [policy]
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "inline script"
    assert " style=" not in page.text
    for src in re.findall(r'(?:src|href)="([^"#][^"]*)"', page.text):
        assert src.startswith("/"), src
    css = client.get("/nhsuk/nhsuk-frontend.min.css")
    assert css.status_code == 200 and "https://" not in css.text
    assert client.get("/htmx/htmx.min.js").status_code == 200
    assert client.get("/dev/axe/axe.min.js").status_code == 200


def test_an_unknown_page_is_not_found(client: TestClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "Page not found" in response.text


def test_shipped_secrets_are_refused_outside_development(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PORTAL_CLIENT_SECRET"):
        Settings(database_url=f"sqlite:///{tmp_path / 'p.db'}", rx_env=Environment.PRODUCTION)
