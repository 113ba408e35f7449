"""The committed JSON Schemas must match the models, and every field must be documented."""

from __future__ import annotations

import json
from pathlib import Path

from rx_contracts import EVENT_TYPES, schemas


def test_committed_schemas_are_current() -> None:
    assert schemas.stale() == [], "run `make schemas` and commit contracts/schemas"


def test_a_changed_model_makes_the_committed_schema_stale(tmp_path: Path) -> None:
    schemas.write(tmp_path)
    victim = tmp_path / "schemas" / "rx.referrals.ReferralSubmitted.v1.json"
    doc = json.loads(victim.read_text())
    del doc["properties"]["priority"]
    victim.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    (tmp_path / "schemas" / "rx.old.Gone.v1.json").write_text("{}")
    (tmp_path / "asyncapi.yaml").write_text("asyncapi: 3.0.0\n")
    assert schemas.stale(tmp_path) == [
        "asyncapi.yaml",
        "schemas/rx.old.Gone.v1.json",
        "schemas/rx.referrals.ReferralSubmitted.v1.json",
    ]


def test_every_event_field_has_a_description() -> None:
    for event_type, model in EVENT_TYPES.items():
        for name, field in model.model_fields.items():
            assert field.description, f"{event_type}.{name} has no description"
