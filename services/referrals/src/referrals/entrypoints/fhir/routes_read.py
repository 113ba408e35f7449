"""read and vread of ServiceRequest, Patient and Task: the same reads (and access records) as
the JSON API's GET /referrals/{id}."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...service_layer import versions
from . import resources
from .deps import CallerDep, Uow, fhir_response

router = APIRouter()


def _answer(resource: dict[str, object], version: int) -> JSONResponse:
    return fhir_response(resource, headers={"ETag": resources.etag(version)})


@router.get("/ServiceRequest/{resource_id}", name="read ServiceRequest")
def read_service_request(resource_id: str, caller: CallerDep, uow: Uow) -> JSONResponse:
    found = versions.read_referral(resource_id, caller, uow)
    return _answer(resources.service_request(found), found.referral.version)


@router.get("/ServiceRequest/{resource_id}/_history/{version}", name="vread ServiceRequest")
def vread_service_request(
    resource_id: str, version: int, caller: CallerDep, uow: Uow
) -> JSONResponse:
    found = versions.read_referral(resource_id, caller, uow, version)
    return _answer(resources.service_request(found), found.referral.version)


@router.get("/Patient/{resource_id}", name="read Patient")
def read_patient(resource_id: str, caller: CallerDep, uow: Uow) -> JSONResponse:
    found = versions.read_referral(resource_id, caller, uow)
    return _answer(resources.patient(found), found.referral.version)


@router.get("/Patient/{resource_id}/_history/{version}", name="vread Patient")
def vread_patient(resource_id: str, version: int, caller: CallerDep, uow: Uow) -> JSONResponse:
    found = versions.read_referral(resource_id, caller, uow, version)
    return _answer(resources.patient(found), found.referral.version)


@router.get("/Task/{resource_id}", name="read Task")
def read_task(resource_id: str, caller: CallerDep, uow: Uow) -> JSONResponse:
    found = versions.read_assignment(resource_id, caller, uow)
    return _answer(resources.task(found), found.version)


@router.get("/Task/{resource_id}/_history/{version}", name="vread Task")
def vread_task(resource_id: str, version: int, caller: CallerDep, uow: Uow) -> JSONResponse:
    found = versions.read_assignment(resource_id, caller, uow, version)
    return _answer(resources.task(found), found.version)
