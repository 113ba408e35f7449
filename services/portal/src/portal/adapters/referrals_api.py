"""The referrals API, called with the signed-in person's own access token: the portal sees and
does exactly what their organisation may (object-level rules stay in the API)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class ApiError(Exception):
    """A problem+json answer (or a failure to get one), as the pages need it."""

    status: int
    title: str
    detail: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)
    document: bool = False
    """The refusal was of a document sent with a form (its upload), not of the form."""

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"

    def field_errors(self) -> dict[str, str]:
        """Messages by field path (``patient.postcode``), the first for each field."""
        found: dict[str, str] = {}
        for error in self.errors:
            name = str(error.get("field", ""))
            if name and name not in found:
                message = str(error.get("message") or "is not valid")
                found[name] = message.removeprefix(f"{name}: ")  # the field shows beside it
        return found


@dataclass(frozen=True)
class Document:
    content: bytes
    content_type: str
    disposition: str


class ReferralsApi:
    """One person's view of the referrals API."""

    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    async def worklist(self, params: list[tuple[str, str]]) -> dict[str, Any]:
        return await self._json("GET", "/referrals", params=params)

    async def referral(self, referral_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/referrals/{referral_id}")

    async def history(self, referral_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._json("GET", f"/referrals/{referral_id}/history")
        return found

    async def attachments(self, referral_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._json(
            "GET", f"/referrals/{referral_id}/attachments"
        )
        return found

    async def create(self, body: dict[str, Any], key: str) -> dict[str, Any]:
        return await self._json("POST", "/referrals", json=body, headers=_once(key))

    async def act(
        self, referral_id: str, action: str, version: int, body: dict[str, Any] | None, key: str
    ) -> dict[str, Any]:
        """Take one lifecycle action on the version the person saw (If-Match)."""
        headers = {**_once(key), "If-Match": f'"{version}"'}
        return await self._json(
            "POST", f"/referrals/{referral_id}/{action}", json=body, headers=headers
        )

    async def upload(
        self, referral_id: str, filename: str, content_type: str, content: bytes, key: str
    ) -> dict[str, Any]:
        return await self._json(
            "POST",
            f"/referrals/{referral_id}/attachments",
            params=[("filename", filename)],
            content=content,
            headers={**_once(key), "Content-Type": content_type},
        )

    async def download(self, referral_id: str, attachment_id: str) -> Document:
        response = await self._send("GET", f"/referrals/{referral_id}/attachments/{attachment_id}")
        return Document(
            response.content,
            response.headers.get("content-type", "application/octet-stream"),
            response.headers.get("content-disposition", "attachment"),
        )

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._send(method, path, **kwargs)).json()

    async def _send(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self.client.request(
                method, path, headers={**self.headers, **(headers or {})}, **kwargs
            )
        except httpx.HTTPError as exc:
            raise ApiError(503, "The referrals service cannot be reached", str(exc)) from exc
        if response.is_success:
            return response
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        raise ApiError(
            response.status_code,
            str(problem.get("title") or response.reason_phrase),
            str(problem.get("detail") or ""),
            list(problem.get("errors") or []),
        )


def _once(key: str | None) -> dict[str, str]:
    """The form's Idempotency-Key (made when the form was shown, so posting it twice acts
    once), or a fresh one."""
    return {"Idempotency-Key": key or str(uuid.uuid4())}
