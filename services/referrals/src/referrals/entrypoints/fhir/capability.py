"""The CapabilityStatement at /metadata: exactly what this interface supports (a test compares
it with the mounted routes). Built once with the fhir.resources models, which check its shape;
it is not on any hot path."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from . import codes, operations

SEARCH_PARAMS: dict[str, list[tuple[str, str, str]]] = {
    "Task": [
        ("owner", "token", f"ODS code of the owning organisation ({codes.ODS_CODE})"),
        ("requester", "token", "ODS code of the referring organisation"),
        ("status", "token", "Task status"),
        ("focus", "reference", "the ServiceRequest (ServiceRequest/{id})"),
        ("_lastUpdated", "date", "gt and lt only"),
    ],
    "ServiceRequest": [
        ("requester", "token", "ODS code of the referring organisation"),
        ("status", "token", "active, completed or revoked"),
        ("identifier", "token", "the referrer's identifier for the referral, system|value"),
        ("_lastUpdated", "date", "gt and lt only"),
    ],
    "Communication": [
        ("based-on", "reference", "the referral (ServiceRequest/{id}); required"),
        ("category", "token", "question, answer, message or progress"),
    ],
    "DocumentReference": [
        ("related", "reference", "the referral (ServiceRequest/{id}); this or identifier"),
        ("identifier", "token", "the uploader's masterIdentifier for the document, system|value"),
    ],
}

INTERACTIONS: dict[str, list[str]] = {
    "ServiceRequest": ["read", "vread", "search-type", "create", "update"],
    "Task": ["read", "vread", "search-type", "patch", "update"],
    "Patient": ["read", "vread", "update"],
    "Communication": ["read", "search-type", "create"],
    "DocumentReference": ["read", "search-type", "create"],
    "Binary": ["read"],
    "OperationDefinition": ["read"],
}
CONDITIONAL_CREATE = frozenset({"ServiceRequest", "DocumentReference"})
"""Created only if none matches an If-None-Exist (``identifier=system|value``)."""
WRITTEN_ONCE = frozenset({"Communication", "DocumentReference", "Binary"})
"""Resources that never change after they are made: version 1, no history to read."""
UNVERSIONED = frozenset({"OperationDefinition"})
"""Served as the software defines them: no versions."""
SYSTEM_INTERACTIONS = ["transaction"]
OPERATIONS = {
    "process-message": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message"
}


@lru_cache(maxsize=1)
def capability_statement(software_version: str) -> dict[str, Any]:
    resources = []
    for kind, interactions in INTERACTIONS.items():
        versioning = "versioned" if kind in WRITTEN_ONCE else "versioned-update"
        resource: dict[str, Any] = {
            "type": kind,
            "versioning": "no-version" if kind in UNVERSIONED else versioning,
            "readHistory": kind not in WRITTEN_ONCE | UNVERSIONED,
            "updateCreate": False,
            "conditionalCreate": kind in CONDITIONAL_CREATE,
            "conditionalUpdate": False,
            "interaction": [{"code": code} for code in interactions],
        }
        if kind in SEARCH_PARAMS:
            resource["searchParam"] = [
                {"name": name, "type": kind_, "documentation": doc}
                for name, kind_, doc in SEARCH_PARAMS[kind]
            ]
        if kind == "Task":
            resource["searchInclude"] = ["Task:focus"]
        if defined := [op for op in operations.OPERATIONS.values() if op.resource == kind]:
            resource["operation"] = [
                {"name": op.code, "definition": operations.definition_url(op)} for op in defined
            ]
        resources.append(resource)
    statement = CapabilityStatement.model_validate(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-12-03",
            "publisher": "Referral Exchange",
            "kind": "instance",
            "software": {
                "name": "Referral Exchange referrals service",
                "version": software_version,
            },
            "implementation": {
                "description": "Referrals as ServiceRequest and Task; questions, answers, "
                "messages and interim updates as Communication; documents as "
                "DocumentReference and Binary; redirect and re-route as the operations "
                "Task/$redirect and ServiceRequest/$reroute"
            },
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json"],
            "patchFormat": ["application/json-patch+json"],
            "rest": [
                {
                    "mode": "server",
                    "documentation": "Bearer tokens from the platform's issuer (audience "
                    "'referrals'); every write needs an Idempotency-Key, every change If-Match. "
                    "Conditional create of a ServiceRequest or a DocumentReference by "
                    "identifier only (If-None-Exist: identifier=system|value); elsewhere "
                    "If-None-Exist is refused (412). The Idempotency-Key makes a retried "
                    "create safe.",
                    "resource": resources,
                    "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
                    "operation": [
                        {"name": name, "definition": url} for name, url in OPERATIONS.items()
                    ],
                }
            ],
        }
    )
    result: dict[str, Any] = statement.model_dump(mode="json", exclude_none=True)
    return result
