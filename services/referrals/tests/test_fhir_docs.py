"""docs/fhir.md's mapping tables stay true: every element they list is one the interface emits,
and every element it emits is listed; every code system they name is one it uses."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from referrals.domain.assignments import AssignmentState, AssignmentStatus
from referrals.domain.attachments import Attachment
from referrals.domain.identifiers import Identifier
from referrals.domain.model import Referral, ReferrerIdentifier
from referrals.domain.patient import LocalIdentifier, Patient
from referrals.domain.sharing import Consent
from referrals.entrypoints.fhir import (
    codes,
    communications,
    documents,
    operations,
    resources,
)
from referrals.service_layer.versions import AssignmentVersion, ReferralVersion
from rx_contracts import (
    CohortFlags,
    NhsNumberVerification,
    Outcome,
    Priority,
    ProviderType,
    ReferralStatus,
    ServiceType,
    SharingBasis,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "fhir.md"
ELEMENT = re.compile(
    r"`((?:ServiceRequest|Patient|Task|Communication|DocumentReference|Binary)\.[A-Za-z]+)`"
)
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def documented() -> set[str]:
    """Elements named in the second column of the mapping tables."""
    found: set[str] = set()
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2:
            found |= set(ELEMENT.findall(cells[1]))
    return found


def emitted() -> set[str]:
    """Top-level elements of every variant of every resource the interface builds."""
    referral = Referral(
        id="r1",
        referrer_org="B81001",
        practitioner="G1234567",
        patient=Patient(
            "BS5 0AA",
            "9434765919",
            "Alex Smith",
            "1941-03-07",
            NhsNumberVerification.VERIFIED,
            LocalIdentifier("SC-204817", "SCB01"),
            national_data_opt_out=True,
        ),
        service_type=ServiceType.SOCIAL_CARE_ASSESSMENT,
        priority=Priority.URGENT,
        cohort=CohortFlags(frailty=True),
        reason_code="129839007",
        reason_text="Fall",
        clinical_summary="Lives alone",
        created_at=NOW,
        due_at=NOW,
        status=ReferralStatus.CANCELLED,
        assigned_org="RXA01",
        assigned_provider_type=ProviderType.SOCIAL_CARE,
        consent=Consent(SharingBasis.BEST_INTERESTS, "B81001", "G1234567", NOW),
        identifier=ReferrerIdentifier("https://gp-system.example/referrals", "R-1"),
    )
    found = ReferralVersion(referral, NOW, cancel_reason="Admitted overnight", documents=("a1",))
    states = [
        AssignmentState(AssignmentStatus.REJECTED, "rejected", "other", "No capacity"),
        AssignmentState(
            AssignmentStatus.COMPLETED, "completed", outcome=Outcome.DIED.value, outcome_text="x"
        ),
    ]
    built: list[dict[str, Any]] = [resources.service_request(found), resources.patient(found)]
    built += [
        resources.task(AssignmentVersion("t1", "RXA01", "social-care", NOW, s, 3, NOW, referral))
        for s in states
    ]
    said = [
        communications.Said("r1", 5, "question", "RXA01", NOW, "Key safe?", None, None),
        communications.Said("r1", 6, "answer", "B81001", NOW, "Yes", None, "a1"),
        communications.Said("r1", 9, "progress", "RXA01", NOW, None, "visit-booked", None),
    ]
    built += [
        communications.communication(s, 5 if s.kind == "answer" else None, "http://x/")
        for s in said
    ]
    document = Attachment(
        "a1",
        "r1",
        "letter.txt",
        "text/plain",
        5,
        "",
        b"hello",
        "B81001",
        NOW,
        Identifier("https://gp-system.example/documents", "D-1"),
    )
    built += [documents.document_reference(document, "http://x/"), documents.binary(document)]
    return {f"{r['resourceType']}.{name}" for r in built for name in r if name != "resourceType"}


def test_the_mapping_tables_list_exactly_the_elements_emitted() -> None:
    listed, built = documented(), emitted()
    assert built - listed == set(), "emitted but not in docs/fhir.md"
    assert listed - built == set(), "in docs/fhir.md but never emitted"


def test_the_code_systems_named_in_the_docs_are_the_ones_used() -> None:
    used = {
        value for name, value in vars(codes).items() if name.isupper() and isinstance(value, str)
    }
    named = {
        f"{codes.BASE}/{path}"
        for path in re.findall(
            r"…/((?:CodeSystem|Id|StructureDefinition)/[a-z-]+)", DOC.read_text()
        )
    }
    assert named - used == set()
    ours = {u for u in used if u.startswith(f"{codes.BASE}/")}
    assert ours - named == set(), "a code system we use is not documented"


def test_the_operations_table_lists_exactly_the_parameters_defined() -> None:
    """Each parameter of $redirect and $reroute, with the value type it takes, as their
    OperationDefinitions declare them."""
    section = DOC.read_text().split("### Operations", 1)[1].split("\n#", 1)[0]
    listed = set(re.findall(r"^\| [^|]+ \| `([a-z-]+)` \(`(value[A-Za-z]+)`\)", section, re.M))
    for op in operations.OPERATIONS.values():
        defined = {
            (p["name"], f"value{p['type'][0].upper()}{p['type'][1:]}")
            for p in operations.operation_definition(op)["parameter"]
            if p["use"] == "in"
        }
        assert defined == listed, op.id
