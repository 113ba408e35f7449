"""Attachments as a provider system uploads and reads them."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from referrals.domain.attachments import MAX_BYTES

GP = {"X-Organisation": "B81001", "X-Roles": "provider"}
OPS = {"X-Organisation": "RX0PS", "X-Roles": "ops"}
STRANGER = {"X-Organisation": "L81002", "X-Roles": "provider"}
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def rid(client: TestClient) -> str:
    body = {
        "referrer": {"organisation": "B81001"},
        "patient": {"postcode": "BS5 0AA"},
        "service_type": "gp-review",
    }
    return client.post("/referrals", json=body, headers={**GP, "Idempotency-Key": "create"}).json()[
        "id"
    ]


def upload(client, rid, content, content_type, filename="letter.pdf", who=GP, key=None):
    headers = {**who, "content-type": content_type, "Idempotency-Key": key or str(uuid.uuid4())}
    return client.post(
        f"/referrals/{rid}/attachments",
        params={"filename": filename},
        content=content,
        headers=headers,
    )


def test_a_document_is_stored_listed_and_downloaded_unchanged(client, rid) -> None:
    created = upload(client, rid, PDF, "application/pdf")
    assert created.status_code == 201, created.text
    meta = created.json()
    assert (meta["content_type"], meta["size"], meta["uploaded_by"]) == (
        "application/pdf",
        len(PDF),
        "B81001",
    )
    assert client.get(f"/referrals/{rid}/attachments", headers=OPS).json() == [meta]
    got = client.get(f"/referrals/{rid}/attachments/{meta['id']}", headers=GP)
    assert got.content == PDF and got.headers["content-type"] == "application/pdf"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert 'filename="letter.pdf"' in got.headers["content-disposition"]
    assert (
        upload(
            client, rid, b"Seen by district nurse.", "text/plain; charset=utf-8", "note.txt"
        ).status_code
        == 201
    )


def test_a_retried_upload_is_stored_once(client, rid) -> None:
    first = upload(client, rid, PNG, "image/png", "wound.png", key="up-1")
    again = upload(client, rid, PNG, "image/png", "wound.png", key="up-1")
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(client.get(f"/referrals/{rid}/attachments", headers=GP).json()) == 1
    assert upload(client, rid, PDF, "application/pdf", key="up-1").status_code == 422


@pytest.mark.parametrize(
    ("content", "content_type", "filename", "status", "rule"),
    [
        (b"MZ\x90\x00", "application/x-msdownload", "tool.exe", 415, "attachment_type"),
        (b"MZ\x90\x00", "application/pdf", "fake.pdf", 415, "content_mismatch"),
        (PNG, "image/jpeg", "x.jpg", 415, "content_mismatch"),
        (b"\xff\xfe\x00bad", "text/plain", "x.txt", 415, "content_mismatch"),
        (PDF, "application/pdf", "../../etc/passwd", 422, "filename_format"),
        (b"", "text/plain", "empty.txt", 422, "empty"),
    ],
)
def test_unacceptable_uploads_are_refused_with_the_rule_named(
    client, rid, content, content_type, filename, status, rule
) -> None:
    response = upload(client, rid, content, content_type, filename)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["rule"] == rule
    assert client.get(f"/referrals/{rid}/attachments", headers=GP).json() == []


def test_five_megabytes_is_the_limit(client, rid) -> None:
    at_limit = b"%PDF-" + b"0" * (MAX_BYTES - 5)
    assert upload(client, rid, at_limit, "application/pdf").status_code == 201
    over = upload(client, rid, at_limit + b"0", "application/pdf")
    assert over.status_code == 413 and over.json()["title"] == "Request too large"
    way_over = upload(client, rid, at_limit * 2, "application/pdf")
    assert way_over.status_code == 413


def test_who_may_attach_and_read(client, rid) -> None:
    assert upload(client, rid, PDF, "application/pdf", who=STRANGER).status_code == 404
    assert upload(client, rid, PDF, "application/pdf", who=OPS).status_code == 403
    assert client.get(f"/referrals/{rid}/attachments", headers=STRANGER).status_code == 404
    meta = upload(client, rid, PDF, "application/pdf").json()
    assert (
        client.get(f"/referrals/{rid}/attachments/{meta['id']}", headers=STRANGER).status_code
        == 404
    )
    assert client.get(f"/referrals/{rid}/attachments/nope", headers=GP).status_code == 404
    client.post(
        f"/referrals/{rid}/cancel",
        json={"reason_text": "x"},
        headers={**GP, "Idempotency-Key": "c", "If-Match": '"1"'},
    )
    assert upload(client, rid, PDF, "application/pdf").status_code == 409
