"""The plain JSON API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from rx_contracts import Priority, ReferralStatus, ServiceType
from rx_web.params import on_strings

from ...domain.subscription import MAX_HEADERS, MAX_TIMEOUT_SECONDS, Channel, Content, Status
from ...domain.topics import Topic

ENDPOINT_EXAMPLE = "https://ehr.example.org/referral-exchange/webhooks"
ENDPOINT_PATTERN = (
    r"^https://([A-Za-z0-9-]{1,63}\.)+[A-Za-z][A-Za-z0-9-]{0,62}(:[0-9]{1,4})?"
    r"([/?][!-\"$-~]*)?$"
)
"""An https URL with a host name (no credentials, no fragment, no spaces)."""
ENDPOINT_RULES = (
    "https URL the events are POSTed to. The host name must resolve to public addresses only "
    "(checked now and before every delivery; a schema cannot say that). Plain http, loopback "
    "and the allow-listed private ranges are for development only and are outside this "
    "pattern."
)
HEADER_PATTERN = r"^[A-Za-z0-9-]{1,64}:[ \t]*[ -~]{1,1024}$"
HEADER_RULES = (
    "Extra headers for your endpoint, 'Name: value' (e.g. an Authorization). Names the "
    "platform sets are refused, which the pattern cannot say: Host, Content-*, "
    "Transfer-Encoding, Connection, Upgrade, TE, Trailer, Keep-Alive, Proxy-*, Webhook-*, "
    "CE-*, Cookie."
)
# The patterns are published, not enforced here: the domain checks the same rules and names
# the one broken (https, address, no_credentials, header, reserved…).
Endpoint = Annotated[
    str,
    Field(min_length=8, max_length=2000, json_schema_extra=on_strings(pattern=ENDPOINT_PATTERN)),
]
Header = Annotated[str, Field(json_schema_extra=on_strings(pattern=HEADER_PATTERN))]


class FiltersIn(BaseModel):
    """Only events that leave the referral with one of these values (empty: any)."""

    model_config = ConfigDict(extra="forbid")

    status: list[ReferralStatus] = Field(default_factory=list, max_length=7)
    service_type: list[ServiceType] = Field(default_factory=list, max_length=10)
    priority: list[Priority] = Field(default_factory=list, max_length=4)


class SubscriptionCreate(BaseModel):
    """A plain JSON webhook: CloudEvents 1.0, signed per Standard Webhooks."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "topic": "referrals-sent",
                    "endpoint": ENDPOINT_EXAMPLE,
                    "content": "full-resource",
                    "filters": {"status": [], "service_type": [], "priority": []},
                }
            ]
        },
    )

    topic: Topic = Field(description="referrals-offered (to us) or referrals-sent (by us).")
    endpoint: Endpoint = Field(description=ENDPOINT_RULES, examples=[ENDPOINT_EXAMPLE])
    content: Content = Field(
        default=Content.ID_ONLY,
        description="empty (attributes only), id-only (the referral id) or full-resource "
        "(the event and the referral's state after it; never patient details).",
    )
    filters: FiltersIn = Field(default_factory=FiltersIn)
    headers: list[Header] = Field(
        default_factory=list,
        max_length=MAX_HEADERS,
        description=HEADER_RULES,
        examples=[["Authorization: Bearer your-receiver-token"]],
    )
    timeout_seconds: int = Field(default=10, ge=1, le=MAX_TIMEOUT_SECONDS)


class SubscriptionUpdate(BaseModel):
    """Only the fields given change. ``status`` 'active' switches a subscription that is off or
    in error back on; 'off' stops numbering events for it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "active"}]},
    )

    endpoint: Endpoint | None = Field(default=None, description=ENDPOINT_RULES)
    content: Content | None = None
    filters: FiltersIn | None = None
    headers: list[Header] | None = Field(
        default=None, max_length=MAX_HEADERS, description=HEADER_RULES
    )
    timeout_seconds: int | None = Field(default=None, ge=1, le=MAX_TIMEOUT_SECONDS)
    status: Literal["active", "off"] | None = None


class HealthPublic(BaseModel):
    """How delivery to the endpoint is going."""

    status: Status
    events_since_start: int = Field(description="Events numbered for it so far.")
    delivered_through: int = Field(description="Highest event number the endpoint acknowledged.")
    backlog: int = Field(description="Events numbered but not yet acknowledged.")
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    failing_since: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None = Field(
        description="The last failure: a status code or an error kind (never the answer)."
    )


class SubscriptionPublic(BaseModel):
    id: str
    organisation: str
    channel: Channel
    topic: Topic
    topic_url: str
    endpoint: str
    content: Content
    filters: FiltersIn
    header_names: list[str] = Field(description="Names of the extra headers (values hidden).")
    timeout_seconds: int
    heartbeat_seconds: int | None
    max_count: int
    end: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    health: HealthPublic


class SubscriptionCreated(SubscriptionPublic):
    secret: str = Field(
        description="Signing secret (whsec_…): shown only now and after a rotation. Verify "
        "each delivery with any Standard Webhooks library."
    )


class SubscriptionList(BaseModel):
    items: list[SubscriptionPublic]
    next_after: str | None = Field(description="Pass as ?after= for the next page.")


class ResendIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"from_event_number": 1}]}
    )

    from_event_number: int = Field(ge=1, description="First event number to deliver again.")


class RotateIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"overlap_seconds": 3600}]}
    )

    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=7 * 86_400,
        description="How long the old secret keeps signing too (default: a day).",
    )


class EventsPage(BaseModel):
    subscription_id: str
    status: Status
    events_since_start: int
    items: list[dict[str, Any]] = Field(description="CloudEvents, in event-number order.")
