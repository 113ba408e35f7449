"""Code systems and identifier systems the FHIR interface uses, and how the lifecycle's words
map onto FHIR's."""

from __future__ import annotations

from rx_contracts import ReferralStatus, ServiceType

BASE = "https://referral-exchange.example/fhir"
"""Our own code and identifier systems live under this base (identifiers, not addresses)."""

SNOMED = "http://snomed.info/sct"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS_CODE = "https://fhir.nhs.uk/Id/ods-organization-code"
PRACTITIONER = f"{BASE}/Id/practitioner"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
STATUS_REASON_EXTENSION = "http://hl7.org/fhir/StructureDefinition/request-statusReason"

# Identity and sharing basis (UK Core's NHS number verification; our own codes for the rest).
NHS_NUMBER_VERIFICATION_EXTENSION = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
)
NHS_NUMBER_VERIFICATION = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
)
NHS_NUMBER_VERIFICATION_CODES = {
    "verified": ("01", "Number present and verified"),
    "unverified": ("02", "Number present but not traced"),
}
"""Our verification statuses as UK Core codes (absent: no NHS number identifier at all)."""
LOCAL_PATIENT_ID = f"{BASE}/Id/local-patient-identifier"
DATA_OPT_OUT_EXTENSION = f"{BASE}/StructureDefinition/national-data-opt-out"
SHARING_BASIS = f"{BASE}/CodeSystem/sharing-basis"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC = "http://loinc.org"

SERVICE_TYPE = f"{BASE}/CodeSystem/service-type"
PROVIDER_TYPE = f"{BASE}/CodeSystem/provider-type"
COHORT = f"{BASE}/CodeSystem/cohort"
REFERRAL_STATUS = f"{BASE}/CodeSystem/referral-status"
REJECTION_REASON = f"{BASE}/CodeSystem/rejection-reason"
END_REASON = f"{BASE}/CodeSystem/assignment-end-reason"
OUTCOME = f"{BASE}/CodeSystem/outcome"
CANCELLATION_REASON = f"{BASE}/CodeSystem/cancellation-reason"
FAILURE_REASON = f"{BASE}/CodeSystem/failure-reason"
TASK_OUTPUT = f"{BASE}/CodeSystem/task-output"
COMMUNICATION_CATEGORY = f"{BASE}/CodeSystem/communication-category"
PROGRESS = f"{BASE}/CodeSystem/progress"

REFERRAL_CATEGORY = {"system": SNOMED, "code": "3457005", "display": "Patient referral"}

SERVICE_TYPE_SNOMED: dict[ServiceType, tuple[str, str]] = {
    ServiceType.SOCIAL_CARE_ASSESSMENT: ("306238000", "Referral to social services"),
}
"""SNOMED CT concepts for the service types that have a confirmed one; the others carry our
own code only."""

SERVICE_REQUEST_STATUS: dict[ReferralStatus, str] = {
    ReferralStatus.SUBMITTED: "active",
    ReferralStatus.ROUTED: "active",
    ReferralStatus.ACCEPTED: "active",
    ReferralStatus.IN_PROGRESS: "active",
    ReferralStatus.UNROUTABLE: "active",
    ReferralStatus.INFO_REQUESTED: "active",
    ReferralStatus.COMPLETED: "completed",
    ReferralStatus.CANCELLED: "revoked",
    ReferralStatus.FAILED: "revoked",
}
"""A referral's status as a ServiceRequest status (request-status)."""

STATUS_REASON_SYSTEMS: dict[str, str] = {
    "rejected": REJECTION_REASON,
    "failed": FAILURE_REASON,
}
"""The code system of a Task's statusReason by its business status (otherwise END_REASON)."""

END_REASON_SYSTEMS: dict[ReferralStatus, str] = {
    ReferralStatus.CANCELLED: CANCELLATION_REASON,
    ReferralStatus.FAILED: FAILURE_REASON,
}
"""The code system of a ServiceRequest's statusReason extension by the referral's end."""

MESSAGE_EVENTS = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
MESSAGE_REASONS = "https://fhir.nhs.uk/CodeSystem/message-reason-bars"
SERVICE_REQUEST_EVENT = "servicerequest-request"
"""The BaRS message event for a referral; its reason says new, update or delete."""
