"""Localities and organisations: read by any caller, changed by administrators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from ...adapters.tables import OrganisationRow
from ...domain.directory import Locality
from ...service_layer import admin
from .deps import Admin, CallerDep, Uow
from .schemas import (
    LocalityIn,
    LocalityPublic,
    OrganisationBody,
    OrganisationCreate,
    OrganisationPublic,
)

router = APIRouter(tags=["directory"])

NO_ORGANISATION: dict[int | str, dict[str, Any]] = {
    404: {"description": "No organisation with that ODS code"}
}


@router.get("/localities", response_model=list[LocalityPublic])
def list_localities(uow: Uow, _caller: CallerDep) -> list[LocalityPublic]:
    """Every locality with its population and postcode districts."""
    return [_locality(locality) for locality in admin.localities(uow)]


@router.put("/localities/{code}", response_model=LocalityPublic)
def put_locality(code: str, body: LocalityIn, uow: Uow, caller: Admin) -> LocalityPublic:
    """Create or replace a locality (admin). A district already in another locality is
    refused."""
    data = admin.LocalityData(code, body.name, body.population, body.districts)
    return _locality(admin.put_locality(data, uow, caller.actor))


@router.get("/organisations", response_model=list[OrganisationPublic])
def list_organisations(
    uow: Uow,
    _caller: CallerDep,
    provider_type: str | None = None,
    locality: str | None = None,
) -> list[OrganisationRow]:
    """The provider directory, by ODS code; filter by provider type or locality served."""
    return admin.organisations(uow, provider_type, locality)


@router.get(
    "/organisations/{ods_code}", response_model=OrganisationPublic, responses=NO_ORGANISATION
)
def get_organisation(ods_code: str, uow: Uow, _caller: CallerDep) -> OrganisationRow:
    return admin.get_organisation(ods_code, uow)


@router.post(
    "/organisations",
    response_model=OrganisationPublic,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "An organisation with that ODS code exists"}},
)
def create_organisation(body: OrganisationCreate, uow: Uow, caller: Admin) -> OrganisationRow:
    """Add an organisation (admin). 409 if the ODS code exists."""
    return admin.create_organisation(_data(body.ods_code, body), uow, caller.actor)


@router.put(
    "/organisations/{ods_code}", response_model=OrganisationPublic, responses=NO_ORGANISATION
)
def replace_organisation(
    ods_code: str, body: OrganisationBody, uow: Uow, caller: Admin
) -> OrganisationRow:
    """Replace an organisation's details (admin); set ``active`` false to stop routing to it."""
    return admin.replace_organisation(_data(ods_code, body), uow, caller.actor)


def _locality(locality: Locality) -> LocalityPublic:
    return LocalityPublic(
        code=locality.code,
        name=locality.name,
        population=locality.population,
        districts=sorted(locality.districts),
    )


def _data(ods_code: str, body: OrganisationBody) -> admin.OrganisationData:
    return admin.OrganisationData(
        ods_code=ods_code,
        name=body.name,
        provider_type=body.provider_type,
        localities=body.localities,
        opening_hours=body.opening_hours,
        daily_capacity=body.daily_capacity,
        active=body.active,
    )
