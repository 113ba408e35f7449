"""What the FHIR interface accepts, read strictly: the elements of ServiceRequest, Patient,
Task and Bundle that map onto a referral, and nothing else. An element we would not keep is
refused (naming it) rather than dropped, so a sender never believes we stored what we did not.

These are our own Pydantic models of that subset, not a FHIR model library's: they run on
every create, where the library's full models cost milliseconds (bench/RESULTS.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from . import codes

FhirId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-.]{1,64}$")]


class Element(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coding(Element):
    system: str | None = None
    version: str | None = None
    code: str | None = None
    display: str | None = None


class CodeableConcept(Element):
    coding: list[Coding] = Field(default_factory=list)
    text: str | None = None

    def code_in(self, system: str) -> str | None:
        return next((c.code for c in self.coding if c.system == system and c.code), None)


class Extension(Element):
    url: str
    valueCodeableConcept: CodeableConcept | None = None
    valueBoolean: bool | None = None


class Identifier(Element):
    extension: list[Extension] = Field(default_factory=list, max_length=1)
    system: str | None = None
    value: str | None = None
    assigner: Reference | None = None


class Reference(Element):
    reference: str | None = None
    type: str | None = None
    identifier: Identifier | None = None
    display: str | None = None


class Period(Element):
    start: str | None = None
    end: str | None = None


class Annotation(Element):
    text: str = Field(min_length=1, max_length=10000)


class Meta(Element):
    """Accepted and ignored on input: the server sets versionId and lastUpdated."""

    versionId: str | None = None
    lastUpdated: str | None = None
    profile: list[str] = Field(default_factory=list)


class HumanName(Element):
    text: str | None = Field(default=None, max_length=200)
    family: str | None = None
    given: list[str] = Field(default_factory=list)

    def full(self) -> str | None:
        return self.text or " ".join([*self.given, self.family or ""]).strip() or None


class Address(Element):
    postalCode: str


class Patient(Element):
    resourceType: Literal["Patient"]
    id: FhirId | None = None
    meta: Meta | None = None
    extension: list[Extension] = Field(default_factory=list, max_length=1)
    identifier: list[Identifier] = Field(default_factory=list, max_length=2)
    name: list[HumanName] = Field(default_factory=list, max_length=1)
    birthDate: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    address: list[Address] = Field(min_length=1, max_length=1)


class PractitionerRole(Element):
    resourceType: Literal["PractitionerRole"]
    id: FhirId
    practitioner: Reference | None = None
    organization: Reference


class Provision(Element):
    type: Literal["permit"] | None = None


class Consent(Element):
    """The sharing basis, contained in the ServiceRequest (see ``identity.py``)."""

    resourceType: Literal["Consent"]
    id: FhirId
    status: Literal["active"]
    scope: CodeableConcept
    category: list[CodeableConcept] = Field(min_length=1)
    patient: Reference | None = None
    dateTime: str | None = None
    organization: list[Reference] = Field(default_factory=list, max_length=1)
    policyRule: CodeableConcept | None = None
    provision: Provision | None = None


class ServiceRequest(Element):
    resourceType: Literal["ServiceRequest"]
    id: FhirId | None = None
    meta: Meta | None = None
    extension: list[Extension] = Field(default_factory=list, max_length=1)
    identifier: list[Identifier] = Field(default_factory=list, max_length=1)
    """The referrer's own identifier for the referral (system and value), if it has one."""
    contained: list[
        Annotated[Patient | PractitionerRole | Consent, Field(discriminator="resourceType")]
    ] = Field(default_factory=list, max_length=3)
    status: Literal["active", "revoked", "completed", "draft", "on-hold", "entered-in-error"]
    intent: Literal["order"]
    category: list[CodeableConcept] = Field(default_factory=list)
    priority: Literal["routine", "urgent", "asap", "stat"] = "routine"
    code: CodeableConcept
    reasonCode: list[CodeableConcept] = Field(default_factory=list, max_length=1)
    subject: Reference
    requester: Reference
    performerType: CodeableConcept | None = None
    occurrencePeriod: Period | None = None
    authoredOn: str | None = None
    note: list[Annotation] = Field(default_factory=list, max_length=1)
    supportingInfo: list[Reference] = Field(default_factory=list)
    """The contained Consent, and the referral's documents as read (``DocumentReference/…``,
    which a write leaves as they are)."""

    def contained_resource(
        self, reference: str | None
    ) -> Patient | PractitionerRole | Consent | None:
        if not reference or not reference.startswith("#"):
            return None
        return next((c for c in self.contained if c.id == reference[1:]), None)

    def requester_ods(self) -> str | None:
        """The referring organisation's ODS code, from the requester or its PractitionerRole."""
        found = self.contained_resource(self.requester.reference)
        target = found.organization if isinstance(found, PractitionerRole) else self.requester
        ident = target.identifier
        return ident.value if ident and ident.system == codes.ODS_CODE else None

    def cancel_reason(self) -> CodeableConcept | None:
        """The request-statusReason extension's concept (coded, in words, or both)."""
        for ext in self.extension:
            if ext.url == codes.STATUS_REASON_EXTENSION and ext.valueCodeableConcept:
                return ext.valueCodeableConcept
        return None


class Request(Element):
    method: Literal["POST"]
    url: Literal["Patient", "ServiceRequest"]
    ifNoneExist: str | None = None
    """Read only to be refused (no conditional create), naming the entry."""


class Entry(Element):
    fullUrl: str | None = None
    resource: Annotated[Patient | ServiceRequest, Field(discriminator="resourceType")]
    request: Request


class TransactionBundle(Element):
    """A transaction creating one referral: a Patient and a ServiceRequest whose subject
    points at the Patient's fullUrl."""

    resourceType: Literal["Bundle"]
    id: FhirId | None = None
    meta: Meta | None = None
    type: Literal["transaction"]
    entry: list[Entry] = Field(min_length=2, max_length=2)


class Task(Element):
    """A Task as a PUT or the result of a JSON Patch sends it back: only status,
    statusReason, businessStatus and output may differ from the stored Task."""

    model_config = ConfigDict(extra="allow", frozen=True)

    resourceType: Literal["Task"]
    id: FhirId | None = None
    status: str
    statusReason: CodeableConcept | None = None
    output: list[dict[str, Any]] = Field(default_factory=list, max_length=1)

    def outcome(self) -> tuple[str | None, str | None]:
        if not self.output:
            return None, None
        value = self.output[0].get("valueCodeableConcept")
        concept = CodeableConcept.model_validate(value or {})
        return concept.code_in(codes.OUTCOME), concept.text


class Attachment(Element):
    """A document sent with a message or an answer: the address of one already attached to
    the referral (the JSON API's ``/referrals/{id}/attachments/{attachment id}``)."""

    contentType: str | None = None
    url: str = Field(min_length=1, max_length=1000)
    title: str | None = None


class CommunicationPayload(Element):
    contentString: str | None = Field(default=None, min_length=1, max_length=2000)
    contentAttachment: Attachment | None = None


class Communication(Element):
    """A question, an answer, a message or an interim update about a referral: ``basedOn``
    its ServiceRequest, ``category`` which of the four, the words in ``payload``."""

    resourceType: Literal["Communication"]
    id: FhirId | None = None
    meta: Meta | None = None
    basedOn: list[Reference] = Field(min_length=1, max_length=1)
    inResponseTo: list[Reference] = Field(default_factory=list, max_length=1)
    status: Literal["completed"]
    category: list[CodeableConcept] = Field(min_length=1, max_length=1)
    subject: Reference | None = None
    topic: CodeableConcept | None = None
    sent: str | None = None
    sender: Reference | None = None
    payload: list[CommunicationPayload] = Field(default_factory=list, max_length=2)


class MessageHeader(Element):
    """A BaRS-style message's header. Its routing details (sender, destination, source) are
    the message's envelope, not the referral's, and are not kept."""

    resourceType: Literal["MessageHeader"]
    id: FhirId
    meta: Meta | None = None
    eventCoding: Coding
    reason: CodeableConcept | None = None
    source: dict[str, Any]
    destination: list[dict[str, Any]] = Field(default_factory=list)
    sender: dict[str, Any] | None = None
    focus: list[Reference] = Field(min_length=1, max_length=1)
    definition: str | None = None


class MessageEntry(Element):
    fullUrl: str | None = None
    resource: Annotated[
        MessageHeader | Patient | ServiceRequest, Field(discriminator="resourceType")
    ]


class MessageBundle(Element):
    """A message: its MessageHeader first, then the ServiceRequest it is about and, for a new
    referral or a change of the patient's details, the Patient."""

    resourceType: Literal["Bundle"]
    id: FhirId | None = None
    meta: Meta | None = None
    identifier: Identifier | None = None
    timestamp: str | None = None
    type: Literal["message"]
    entry: list[MessageEntry] = Field(min_length=2, max_length=3)


class DocumentAttachment(Element):
    """A document uploaded as a DocumentReference: its type, its bytes (base64) and its file
    name; ``size`` and ``hash`` (base64 SHA-1), if given, are checked against the bytes. What
    the server sets on the read (``url``, ``creation``) is refused."""

    contentType: str = Field(min_length=1, max_length=200)
    data: str = Field(min_length=1)
    title: str = Field(min_length=1, max_length=1000)
    size: int | None = Field(default=None, ge=0)
    hash: str | None = Field(default=None, min_length=1, max_length=100)


class DocumentContent(Element):
    attachment: DocumentAttachment


class DocumentContext(Element):
    related: list[Reference] = Field(min_length=1, max_length=1)


class DocumentReference(Element):
    """A document to attach to the referral ``context.related`` names; ``subject``, if given,
    is that referral's patient."""

    resourceType: Literal["DocumentReference"]
    id: FhirId | None = None
    meta: Meta | None = None
    masterIdentifier: Identifier | None = None
    """The uploader's own identifier for the document (system and value), if it has one."""
    status: Literal["current"]
    subject: Reference | None = None
    content: list[DocumentContent] = Field(min_length=1, max_length=1)
    context: DocumentContext
