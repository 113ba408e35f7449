"""The AsyncAPI document: valid AsyncAPI 3.0, and it describes every event and topic."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from rx_contracts import EVENT_TYPES, asyncapi
from rx_contracts.channels import channels
from rx_contracts.schemas import CONTRACTS_DIR
from rx_contracts.topics import all_topics

SPEC = Path(__file__).parent / "vendor" / "asyncapi-3.0.0.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SPEC.read_text()))


def test_the_committed_document_is_valid_asyncapi_3(validator) -> None:
    document = yaml.safe_load((CONTRACTS_DIR / "asyncapi.yaml").read_text())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []


def test_the_validation_catches_a_malformed_document(validator) -> None:
    document = copy.deepcopy(asyncapi.document())
    operation = next(iter(document["operations"].values()))
    operation["action"] = "publish"  # AsyncAPI 2 wording; 3.0 says send/receive
    assert list(validator.iter_errors(document))


def test_every_event_type_travels_on_some_channel() -> None:
    carried = {model.EVENT_TYPE for channel in channels() for model in channel.events}
    assert set(EVENT_TYPES) - carried == set(), "add the event to rx_contracts.channels"


def test_the_channels_are_exactly_the_topics_the_platform_creates_besides_dead_letters() -> None:
    streams = {name for name in all_topics() if not name.endswith(".dlq")}
    assert sorted(c.topic for c in channels()) == sorted(streams), (
        "describe the topic in rx_contracts.channels: the AsyncAPI document and the Kafka ACL "
        "plan are made from it"
    )


def test_each_message_points_at_its_committed_schema() -> None:
    for message in asyncapi.document()["components"]["messages"].values():
        assert (CONTRACTS_DIR / message["payload"]["$ref"]).exists()
