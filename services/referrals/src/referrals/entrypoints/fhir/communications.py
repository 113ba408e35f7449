"""Questions, answers, messages and interim updates as FHIR Communications, both ways.

Each is one step of the referral's history (request-info, provide-info, message,
report-progress), shown as a Communication ``basedOn`` the ServiceRequest, its ``category``
saying which of the four (``…/CodeSystem/communication-category``), the words as
``payload.contentString``, a document as ``payload.contentAttachment`` (the address of an
attachment of the referral), an interim update's code as ``topic``, and an answer
``inResponseTo`` the question it answers. A Communication is written once and never changes:
its id is the referral's id and the step's sequence number, its version is always 1.

Interim updates are Communications rather than Task notes: each is a thing of its own (who
said it, when, a code), which a subscriber can be told of and a search can list, where a note
would only grow the Task."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rx_contracts import ProgressCode

from ...domain.caller import Caller
from ...domain.errors import InvalidRequest, ReferralNotFound
from ...domain.lifecycle import Action
from ...domain.model import HistoryEntry, Transition
from . import codes, inbound
from .resources import coding, instant, organisation

Json = dict[str, Any]

KINDS: dict[str, str] = {
    Action.REQUEST_INFO.value: "question",
    Action.PROVIDE_INFO.value: "answer",
    Action.MESSAGE.value: "message",
    Action.REPORT_PROGRESS.value: "progress",
}
"""The history steps that are Communications, and the category each is."""
ACTIONS = {kind: Action(action) for action, kind in KINDS.items()}
_ID = re.compile(r"^(?P<referral>[A-Za-z0-9\-.]+)-(?P<sequence>[0-9]{1,9})$")


@dataclass(frozen=True)
class Said:
    """One step of a referral's history that is a Communication."""

    referral_id: str
    sequence: int
    kind: str
    by: str
    at: datetime
    text: str | None
    code: str | None
    attachment_id: str | None

    @property
    def id(self) -> str:
        return communication_id(self.referral_id, self.sequence)


def communication_id(referral_id: str, sequence: int) -> str:
    return f"{referral_id}-{sequence}"


def parse_id(resource_id: str) -> tuple[str, int]:
    """The referral and step a Communication id names; an id we never issued is not found."""
    found = _ID.fullmatch(resource_id)
    if found is None:
        raise ReferralNotFound(f"no Communication {resource_id}")
    return found["referral"], int(found["sequence"])


def from_history(referral_id: str, entry: HistoryEntry) -> Said | None:
    kind = KINDS.get(entry.action)
    if kind is None:
        return None
    return Said(
        referral_id,
        entry.sequence,
        kind,
        entry.actor_org,
        entry.at,
        entry.note,
        entry.reason_code,
        entry.attachment_id,
    )


def from_step(referral_id: str, step: Transition) -> Said:
    return Said(
        referral_id,
        step.sequence,
        KINDS[step.action],
        step.actor.organisation,
        step.at,
        step.note,
        step.reason_code,
        step.attachment_id,
    )


def thread(referral_id: str, history: list[HistoryEntry]) -> list[tuple[Said, int | None]]:
    """The referral's Communications in order, each with the sequence of the question it
    answers (answers only)."""
    found: list[tuple[Said, int | None]] = []
    question: int | None = None
    for entry in history:
        said = from_history(referral_id, entry)
        if said is None:
            continue
        if said.kind == "question":
            question = said.sequence
        found.append((said, question if said.kind == "answer" else None))
    return found


def last_question(history: list[HistoryEntry]) -> int | None:
    return next((e.sequence for e in reversed(history) if e.action == "request-info"), None)


# ---- out ---------------------------------------------------------------------------------------


def communication(said: Said, answers: int | None, base: str) -> Json:
    """``said`` as a Communication; ``base`` is the service's root URL (attachment addresses)."""
    rid = said.referral_id
    resource: Json = {
        "resourceType": "Communication",
        "id": said.id,
        "meta": {"versionId": "1", "lastUpdated": instant(said.at)},
        "basedOn": [{"reference": f"ServiceRequest/{rid}"}],
        "status": "completed",
        "category": [{"coding": [coding(codes.COMMUNICATION_CATEGORY, said.kind)]}],
        "subject": {"reference": f"Patient/{rid}"},
        "sent": instant(said.at),
        "sender": organisation(said.by),
    }
    if answers is not None:
        resource["inResponseTo"] = [
            {"reference": f"Communication/{communication_id(rid, answers)}"}
        ]
    if said.kind == "progress" and said.code:
        resource["topic"] = {"coding": [coding(codes.PROGRESS, said.code)]}
    payload: list[Json] = []
    if said.text:
        payload.append({"contentString": said.text})
    if said.attachment_id:
        url = f"{base.rstrip('/')}/referrals/{rid}/attachments/{said.attachment_id}"
        payload.append({"contentAttachment": {"url": url}})
    if payload:
        resource["payload"] = payload
    return resource


# ---- in ----------------------------------------------------------------------------------------


def referral_of(sent: inbound.Communication) -> str:
    reference = sent.basedOn[0].reference or ""
    if not reference.startswith("ServiceRequest/") or len(reference) == len("ServiceRequest/"):
        raise InvalidRequest(
            "Communication.basedOn",
            "based_on_service_request",
            "basedOn must reference the referral: ServiceRequest/{id}",
        )
    return reference.removeprefix("ServiceRequest/")


def command(
    sent: inbound.Communication, referral_id: str, caller: Caller, question: int | None
) -> tuple[Action, dict[str, Any]]:
    """The lifecycle action a new Communication is, with its details. ``question`` is the
    sequence of the referral's latest question (what an answer answers)."""
    kind = sent.category[0].code_in(codes.COMMUNICATION_CATEGORY)
    if kind not in ACTIONS:
        raise InvalidRequest(
            "Communication.category",
            "communication_category",
            f"category must be one of {codes.COMMUNICATION_CATEGORY}: {', '.join(ACTIONS)}",
        )
    _check_parties(sent, referral_id, caller)
    text, attachment_id = _payload(sent, referral_id)
    action = ACTIONS[kind]
    if attachment_id is not None and action in (Action.REQUEST_INFO, Action.REPORT_PROGRESS):
        raise InvalidRequest(
            "Communication.payload",
            "no_attachment",
            f"a {kind} carries words only; send the document as a message or an answer",
        )
    if sent.inResponseTo and (
        action is not Action.PROVIDE_INFO
        or question is None
        or sent.inResponseTo[0].reference
        != f"Communication/{communication_id(referral_id, question)}"
    ):
        raise InvalidRequest(
            "Communication.inResponseTo",
            "in_response_to",
            "only an answer is inResponseTo, and only to the referral's open question",
        )
    if action is Action.REQUEST_INFO:
        return action, {"question": text or ""}
    if action is Action.PROVIDE_INFO:
        return action, {"answer": text or "", "attachment_id": attachment_id}
    if action is Action.MESSAGE:
        return action, {"text": text or "", "attachment_id": attachment_id}
    code = sent.topic.code_in(codes.PROGRESS) if sent.topic else None
    if code not in {p.value for p in ProgressCode}:
        raise InvalidRequest(
            "Communication.topic",
            "progress_code",
            f"an interim update needs topic coded in {codes.PROGRESS} "
            f"({', '.join(p.value for p in ProgressCode)})",
        )
    return action, {"code": ProgressCode(code), "text": text}


def _check_parties(sent: inbound.Communication, referral_id: str, caller: Caller) -> None:
    if sent.subject is not None and sent.subject.reference != f"Patient/{referral_id}":
        raise InvalidRequest(
            "Communication.subject",
            "subject",
            f"subject, if given, is the referral's patient: Patient/{referral_id}",
        )
    if sent.sender is not None:
        ident = sent.sender.identifier
        if ident is None or ident.system != codes.ODS_CODE or ident.value != caller.organisation:
            raise InvalidRequest(
                "Communication.sender",
                "sender",
                f"sender, if given, is your organisation by its ODS code ({codes.ODS_CODE})",
            )


def _payload(sent: inbound.Communication, referral_id: str) -> tuple[str | None, str | None]:
    """The words and the attachment id of the payload (at most one of each)."""
    text: str | None = None
    attachment_id: str | None = None
    for index, part in enumerate(sent.payload):
        where = f"Communication.payload[{index}]"
        if (part.contentString is None) == (part.contentAttachment is None):
            raise InvalidRequest(
                where, "payload_content", "each payload is a contentString or a contentAttachment"
            )
        if part.contentString is not None:
            if text is not None:
                raise InvalidRequest(where, "one_text", "one contentString per Communication")
            text = part.contentString
            continue
        assert part.contentAttachment is not None
        if attachment_id is not None:
            raise InvalidRequest(where, "one_attachment", "one attachment per Communication")
        attachment_id = _attachment_id(part.contentAttachment.url, referral_id, where)
    return text, attachment_id


def _attachment_id(url: str, referral_id: str, where: str) -> str:
    pattern = rf"(?:^|/)referrals/{re.escape(referral_id)}/attachments/([A-Za-z0-9\-]{{1,64}})"
    found = re.search(pattern + "$", url)
    if found is None:
        raise InvalidRequest(
            f"{where}.contentAttachment.url",
            "attachment_url",
            f"the url of an attachment of this referral (/referrals/{referral_id}/attachments/"
            "{attachment id}); upload the document there first",
        )
    return found.group(1)
