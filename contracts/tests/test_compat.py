"""Schema changes that would break subscribers of the released contracts are caught."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from rx_contracts import ReferralRejected, schemas
from rx_contracts.compat import breaking_changes

RELEASED: dict[str, Any] = ReferralRejected.model_json_schema(mode="serialization")


def changed(edit) -> dict[str, Any]:
    new = copy.deepcopy(RELEASED)
    edit(new)
    return new


def test_the_current_schemas_keep_the_released_version_working() -> None:
    assert schemas.incompatible() == [], (
        "a payload change breaks subscribers of the released contracts; make it compatible "
        "(optional fields, looser constraints) or publish a new event version"
    )


def test_an_unchanged_schema_is_compatible() -> None:
    assert breaking_changes(RELEASED, copy.deepcopy(RELEASED)) == []


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s["properties"].pop("reason_code"), "$.reason_code: removed"),
        (
            lambda s: (
                s["properties"].__setitem__("team", {"type": "string"}),
                s["required"].append("team"),
            ),
            "$.team: now required",
        ),
        (
            lambda s: s["properties"]["version"].__setitem__("type", "string"),
            "$.version: type changed from integer to string",
        ),
        (
            lambda s: s["$defs"]["RejectionReason"]["enum"].remove("failed-contact"),
            "$.reason_code: enum value 'failed-contact' removed",
        ),
        (
            lambda s: s["properties"]["rejected_by"].__setitem__("pattern", "^[A-Z]{3}$"),
            "$.rejected_by: pattern changed",
        ),
        (
            lambda s: s["$defs"]["Actor"]["properties"]["practitioner"]["anyOf"][0].__setitem__(
                "maxLength", 10
            ),
            "$.actor.practitioner: maxLength lowered from 64 to 10",
        ),
        (
            lambda s: s["properties"]["sequence"].__setitem__("minimum", 5),
            "$.sequence: minimum raised from 2 to 5",
        ),
        (
            lambda s: s["properties"]["assigned_org"].__setitem__("anyOf", [{"type": "string"}]),
            "$.assigned_org: no longer accepts null",
        ),
    ],
    ids=[
        "removed",
        "new-required",
        "type",
        "enum-removed",
        "pattern",
        "nested-max-length",
        "minimum",
        "not-nullable",
    ],
)
def test_breaking_changes_are_reported(edit, expected) -> None:
    problems = breaking_changes(RELEASED, changed(edit))
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s["properties"].__setitem__(
            "note", {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
        ),
        lambda s: s["$defs"]["RejectionReason"]["enum"].append("capacity"),
        lambda s: s["$defs"]["Actor"]["properties"]["practitioner"]["anyOf"][0].__setitem__(
            "maxLength", 128
        ),
        lambda s: s["required"].remove("occurred_at"),
        lambda s: s["properties"].__setitem__(
            "rejected_by", {"anyOf": [s["properties"]["rejected_by"], {"type": "null"}]}
        ),
    ],
    ids=["new-optional", "enum-added", "longer", "now-optional", "now-nullable"],
)
def test_compatible_changes_pass(edit) -> None:
    assert breaking_changes(RELEASED, changed(edit)) == []
