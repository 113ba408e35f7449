"""FHIR R4 ``Subscription`` resources with the Subscriptions R5 Backport extensions, to and from
the domain.

Read on create and update: ``criteria`` (a topic's canonical URL), ``_criteria`` filter
extensions (``Task?status=routed,accepted&priority=urgent&service-type=…``), ``channel.type``
rest-hook, ``channel.endpoint``, ``channel.payload`` (application/fhir+json) with its
payload-content extension (empty, id-only, full-resource), ``channel.header``, and the
heartbeat-period, timeout and max-count extensions; ``end``; ``status`` 'off' or 'active' on
update. Everything else is ignored."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field
from rx_web.params import IsoDateTime

from ...adapters.fhir import BACKPORT, instant
from ...domain.errors import InvalidSubscription
from ...domain.subscription import MAX_HEADERS, Channel, Content, Filters, Subscription
from ...domain.topics import Topic
from ...service_layer.handlers import CreateSubscription
from .schemas import ENDPOINT_RULES, HEADER_RULES, Endpoint, Header

SUBSCRIPTION_PROFILE = BACKPORT + "backport-subscription"
FILTER_CRITERIA = BACKPORT + "backport-filter-criteria"
PAYLOAD_CONTENT = BACKPORT + "backport-payload-content"
HEARTBEAT = BACKPORT + "backport-heartbeat-period"
TIMEOUT = BACKPORT + "backport-timeout"
MAX_COUNT = BACKPORT + "backport-max-count"
SECRET = "http://referral-exchange.example.org/fhir/StructureDefinition/signing-secret"
"""Extension carrying the signing secret, in the answer to a create only."""
FHIR_JSON = "application/fhir+json"


class Extension(BaseModel):
    model_config = ConfigDict(extra="allow")

    url: str = Field(max_length=500)


class Element(BaseModel):
    model_config = ConfigDict(extra="allow")

    extension: list[Extension] = Field(default_factory=list, max_length=20)


class ChannelIn(BaseModel):
    """Subscription.channel: its R4 elements, nothing else."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str | None = Field(default=None, max_length=64)
    extension: list[Extension] = Field(default_factory=list, max_length=20)
    modifierExtension: list[Extension] = Field(default_factory=list, max_length=0)
    type: Literal["rest-hook"] = Field(description="Only rest-hook is offered.")
    endpoint: Endpoint = Field(description=ENDPOINT_RULES)
    payload: Literal["application/fhir+json", "application/json"] | None = None
    payload_element: Element | None = Field(default=None, alias="_payload")
    header: list[Header] = Field(
        default_factory=list, max_length=MAX_HEADERS, description=HEADER_RULES
    )


class SubscriptionResource(BaseModel):
    """An R4 Subscription (backport profile), as a client sends it: its R4 elements only (an
    unknown element is refused, naming it). ``id``, ``meta`` and ``status`` are the server's:
    ignored on create (status starts 'requested'); on update only status 'off' or 'active'
    is read."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "resourceType": "Subscription",
                    "status": "requested",
                    "reason": "Referrals offered to us",
                    "criteria": Topic.OFFERED.url,
                    "_criteria": {
                        "extension": [
                            {"url": FILTER_CRITERIA, "valueString": "Task?priority=urgent,asap"}
                        ]
                    },
                    "channel": {
                        "extension": [{"url": HEARTBEAT, "valueUnsignedInt": 3600}],
                        "type": "rest-hook",
                        "endpoint": "https://ehr.example.org/fhir/notifications",
                        "payload": FHIR_JSON,
                        "_payload": {
                            "extension": [{"url": PAYLOAD_CONTENT, "valueCode": "id-only"}]
                        },
                    },
                }
            ]
        },
    )

    resourceType: str = Field(pattern="^Subscription$")
    id: str | None = Field(default=None, max_length=64)
    meta: dict[str, Any] | None = None
    implicitRules: str | None = Field(default=None, max_length=500)
    language: str | None = Field(default=None, max_length=20)
    text: dict[str, Any] | None = None
    contained: list[dict[str, Any]] = Field(default_factory=list, max_length=0)
    extension: list[Extension] = Field(default_factory=list, max_length=20)
    modifierExtension: list[Extension] = Field(default_factory=list, max_length=0)
    status: str | None = Field(default=None, max_length=32)
    contact: list[dict[str, Any]] = Field(default_factory=list, max_length=10)
    end: IsoDateTime | None = None
    reason: str | None = Field(default=None, max_length=500)
    criteria: str = Field(
        max_length=500,
        json_schema_extra={"enum": [t.url for t in Topic]},
        description="The topic's canonical URL.",
    )
    criteria_element: Element | None = Field(default=None, alias="_criteria")
    error: str | None = Field(default=None, max_length=500)
    channel: ChannelIn


def _extension(extensions: list[Extension], url: str) -> Any:
    for extension in extensions:
        if extension.url == url:
            extra = extension.model_extra or {}
            for name, value in extra.items():
                if name.startswith("value"):
                    return value
    return None


def _int(value: Any, field_name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSubscription(field_name, "integer", "must be a whole number")
    return value


FILTER_KEYS = {"status": "statuses", "priority": "priorities", "service-type": "service_types"}


def filters_from(criteria: Element | None) -> Filters:
    """Filters from backport-filter-criteria extensions: ``[Type?]key=a,b&key=c`` (AND)."""
    chosen: dict[str, list[str]] = {name: [] for name in FILTER_KEYS.values()}
    for extension in criteria.extension if criteria else []:
        if extension.url != FILTER_CRITERIA:
            continue
        value = (extension.model_extra or {}).get("valueString")
        if not isinstance(value, str):
            raise InvalidSubscription("_criteria", "filter", "a filter criteria is a valueString")
        query = urlsplit(value).query if "?" in value else value
        for key, values in parse_qsl(query, keep_blank_values=True):
            name = FILTER_KEYS.get(key.replace("_", "-"))
            if name is None:
                raise InvalidSubscription(
                    "_criteria",
                    "filter",
                    f"unknown filter {key!r}; filter by {', '.join(FILTER_KEYS)}",
                )
            chosen[name] += [v for v in values.split(",") if v]
    return Filters.of(chosen["statuses"], chosen["service_types"], chosen["priorities"])


def command_from(resource: SubscriptionResource) -> CreateSubscription:
    """What a posted Subscription asks for; InvalidSubscription naming the element if not."""
    topic = Topic.from_url(resource.criteria)
    if topic is None:
        raise InvalidSubscription(
            "criteria", "unknown_topic", f"subscribe to one of {[t.url for t in Topic]}"
        )
    channel = resource.channel
    if channel.type != "rest-hook":
        raise InvalidSubscription("channel.type", "rest-hook", "only rest-hook is offered")
    if not channel.endpoint:
        raise InvalidSubscription("channel.endpoint", "required", "an endpoint is required")
    if channel.payload not in (None, FHIR_JSON, "application/json"):
        raise InvalidSubscription("channel.payload", "mime", f"notifications are {FHIR_JSON}")
    content_code = _extension(
        channel.payload_element.extension if channel.payload_element else [], PAYLOAD_CONTENT
    )
    try:
        content = Content(content_code or Content.ID_ONLY.value)
    except ValueError as exc:
        raise InvalidSubscription(
            "channel._payload", "content", "payload content is empty, id-only or full-resource"
        ) from exc
    timeout = _int(_extension(channel.extension, TIMEOUT), "channel.timeout")
    max_count = _int(_extension(channel.extension, MAX_COUNT), "channel.maxCount")
    return CreateSubscription(
        channel=Channel.FHIR,
        topic=topic,
        endpoint=channel.endpoint,
        content=content,
        filters=filters_from(resource.criteria_element),
        headers=list(channel.header),
        heartbeat_seconds=_int(_extension(channel.extension, HEARTBEAT), "channel.heartbeatPeriod"),
        timeout_seconds=timeout if timeout is not None else 10,
        max_count=max_count if max_count is not None else 1,
        end_at=resource.end,
    )


def changes_from(resource: SubscriptionResource, current: Subscription) -> dict[str, Any]:
    """An update (PUT) as changes to the subscription's settings."""
    wanted = command_from(resource)
    if wanted.topic is not current.topic:
        raise InvalidSubscription(
            "criteria", "immutable", "make a new subscription for another topic"
        )
    changes: dict[str, Any] = {
        "endpoint": wanted.endpoint,
        "content": wanted.content,
        "filters": wanted.filters,
        "headers": wanted.headers,
        "heartbeat_seconds": wanted.heartbeat_seconds,
        "timeout_seconds": wanted.timeout_seconds,
        "max_count": wanted.max_count,
        "end_at": wanted.end_at,
    }
    if resource.status in ("off", "active"):
        changes["status"] = resource.status
    elif resource.status not in (None, "requested", current.status.value):
        raise InvalidSubscription("status", "not_settable", "set status 'active' or 'off'")
    if current.headers and list(wanted.headers) == [_masked(h) for h in current.headers]:
        changes["headers"] = list(current.headers)  # sent back as read: unchanged
    found = {
        name: value
        for name, value in changes.items()
        if name != "status"
        and getattr(current, name) != (tuple(value) if name == "headers" else value)
    }
    if "status" in changes and changes["status"] != current.status.value:
        found["status"] = changes["status"]
    return found


def _masked(header: str) -> str:
    name, _, _ = header.partition(":")
    return f"{name.strip()}: ***"


def to_resource(subscription: Subscription, with_secret: bool = False) -> dict[str, Any]:
    """The subscription as an R4 Subscription (backport profile). Header values are masked."""
    filters = subscription.filters
    criteria: list[dict[str, Any]] = []
    for key, values in (
        ("status", filters.statuses),
        ("priority", filters.priorities),
        ("service-type", filters.service_types),
    ):
        if values:
            criteria.append(
                {"url": FILTER_CRITERIA, "valueString": f"Task?{key}={','.join(values)}"}
            )
    channel_extensions: list[dict[str, Any]] = [
        {"url": TIMEOUT, "valueUnsignedInt": subscription.timeout_seconds},
        {"url": MAX_COUNT, "valuePositiveInt": subscription.max_count},
    ]
    if subscription.heartbeat_seconds:
        channel_extensions.insert(
            0, {"url": HEARTBEAT, "valueUnsignedInt": subscription.heartbeat_seconds}
        )
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "id": subscription.id,
        "meta": {
            "versionId": str(subscription.version),
            "lastUpdated": instant(subscription.updated_at),
            "profile": [SUBSCRIPTION_PROFILE],
        },
        "status": subscription.status.value,
        "reason": f"Referral Exchange {subscription.topic.value} for {subscription.organisation}",
        "criteria": subscription.topic.url,
        "channel": {
            "extension": channel_extensions,
            "type": "rest-hook",
            "endpoint": subscription.endpoint,
            "payload": FHIR_JSON,
            "_payload": {
                "extension": [{"url": PAYLOAD_CONTENT, "valueCode": subscription.content.value}]
            },
        },
    }
    if criteria:
        resource["_criteria"] = {"extension": criteria}
    if subscription.headers:
        resource["channel"]["header"] = [_masked(h) for h in subscription.headers]
    if subscription.end_at:
        resource["end"] = instant(subscription.end_at)
    if subscription.last_error and subscription.status.value == "error":
        resource["error"] = subscription.last_error
    if with_secret:
        resource["extension"] = [{"url": SECRET, "valueString": subscription.secret}]
    return resource


def last_updated(value: datetime) -> str:
    return instant(value)
