"""OpenAPI links: from a referral in a response to what a provider system can do next.

They document the journey (read it, act on it with its ETag as If-Match) for client
generators and people, and let the stateful fuzz tests walk it."""

from __future__ import annotations

from typing import Any

ACTIONS = (
    "amend_referral",
    "accept_referral",
    "reject_referral",
    "redirect_referral",
    "start_referral",
    "complete_referral",
    "cancel_referral",
    "reroute_referral",
)
"""Operation ids (route function names) of the lifecycle actions."""

_ID = "$response.body#/id"


def referral_links() -> dict[str, Any]:
    """Links from a response whose body is a referral (and whose ETag is its version)."""
    links: dict[str, Any] = {
        name: {"operationId": operation, "parameters": {"referral_id": _ID}, "description": text}
        for name, operation, text in (
            ("read", "read_referral", "Read the referral again."),
            ("history", "referral_history", "Its transition history."),
            ("attachments", "list_attachments", "Its attachments."),
        )
    }
    for operation in ACTIONS:
        links[operation.removesuffix("_referral")] = {
            "operationId": operation,
            "parameters": {"referral_id": _ID, "header.If-Match": "$response.header.ETag"},
            "description": "Act on this version (If-Match: its ETag).",
        }
    return links
