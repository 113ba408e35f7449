"""The AsyncAPI 3.0 document of the platform's Kafka topics, generated from the channel
catalogue and the payload models (``make schemas`` writes ``contracts/asyncapi.yaml``).

Message payloads point at the committed JSON Schemas (``schemas/<type>.json``) rather than
repeating them; the CloudEvents binary-mode headers are described once."""

from __future__ import annotations

from typing import Any

from .channels import Channel, channels
from .envelope import CONTENT_TYPE, SPEC_VERSION
from .events import EventPayload

ASYNCAPI_VERSION = "3.0.0"
DOCUMENT_VERSION = "1.0.0"


def _message_name(model: type[EventPayload]) -> str:
    return model.EVENT_TYPE.split(".")[2]


def _headers() -> dict[str, Any]:
    def text(description: str, **extra: Any) -> dict[str, Any]:
        return {"type": "string", "description": description, **extra}

    return {
        "type": "object",
        "description": "CloudEvents 1.0 in Kafka binary content mode: attributes as headers.",
        "required": [
            "ce_id",
            "ce_type",
            "ce_source",
            "ce_specversion",
            "ce_subject",
            "ce_time",
            "ce_dataschema",
            "ce_correlationid",
            "content-type",
        ],
        "properties": {
            "ce_id": text("Unique event id; consumers deduplicate on it."),
            "ce_type": text("Event type, e.g. rx.referrals.ReferralSubmitted.v1."),
            "ce_source": text("Producing service, e.g. /services/referrals."),
            "ce_specversion": text("CloudEvents version.", const=SPEC_VERSION),
            "ce_subject": text("The referral id; equals the Kafka key."),
            "ce_time": text("When the event happened (UTC, ISO 8601).", format="date-time"),
            "ce_dataschema": text("URN of the payload's JSON Schema."),
            "ce_correlationid": text("Id shared by every event one request caused."),
            "content-type": text("Payload media type.", const=CONTENT_TYPE),
            "traceparent": text("W3C trace context."),
        },
    }


def _message(model: type[EventPayload]) -> dict[str, Any]:
    return {
        "name": _message_name(model),
        "title": model.EVENT_TYPE,
        "summary": (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
        "contentType": CONTENT_TYPE,
        "headers": {"$ref": "#/components/schemas/CloudEventHeaders"},
        "payload": {"$ref": f"schemas/{model.EVENT_TYPE}.json"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "The referral id."},
                "bindingVersion": "0.5.0",
            }
        },
    }


def _channel_id(channel: Channel) -> str:
    return channel.topic.replace(".", "-")


def document() -> dict[str, Any]:
    """The whole AsyncAPI document as plain data."""
    catalogue = channels()
    messages: dict[str, Any] = {}
    doc_channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for channel in catalogue:
        cid = _channel_id(channel)
        refs = {}
        for model in channel.events:
            name = _message_name(model)
            messages[name] = _message(model)
            refs[name] = {"$ref": f"#/components/messages/{name}"}
        doc_channels[cid] = {
            "address": channel.topic,
            "description": channel.description,
            "messages": refs,
            "bindings": {"kafka": {"topic": channel.topic, "bindingVersion": "0.5.0"}},
        }
        message_refs = [{"$ref": f"#/channels/{cid}/messages/{name}"} for name in refs]
        operations[f"{channel.producer}-publishes-{cid}"] = {
            "action": "send",
            "title": f"{channel.producer} publishes to {channel.topic}",
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": message_refs,
        }
        for consumer in channel.consumers:
            slug = consumer.split(" ")[0]
            operations[f"{slug}-reads-{cid}"] = {
                "action": "receive",
                "title": f"{consumer} read {channel.topic}",
                "channel": {"$ref": f"#/channels/{cid}"},
                "messages": message_refs,
            }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Referral Exchange events",
            "version": DOCUMENT_VERSION,
            "description": (
                "Kafka topics of Referral Exchange. Every record is a CloudEvent in binary "
                "mode keyed by referral id, so one referral's events stay in order. Payloads "
                "carry no names, dates of birth or NHS numbers. Poison records go to "
                "`<topic>.dlq` with the error in a `dlq_error` header."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The broker `make run` starts.",
            }
        },
        "channels": doc_channels,
        "operations": operations,
        "components": {
            "schemas": {"CloudEventHeaders": _headers()},
            "messages": dict(sorted(messages.items())),
        },
    }
