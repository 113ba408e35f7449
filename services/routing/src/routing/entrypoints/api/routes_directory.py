"""Localities and organisations: read by any caller, changed by administrators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from sqlmodel import col, select

from ...adapters import directory_store
from ...adapters.tables import OrganisationRow
from ...service_layer import admin
from .deps import Admin, Reader, SessionDep
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
def list_localities(session: SessionDep, _caller: Reader) -> list[LocalityPublic]:
    """Every locality with its population and postcode districts."""
    return [
        LocalityPublic(
            code=row.code,
            name=row.name,
            population=row.population,
            districts=admin.districts_of(session, row.code),
        )
        for row in directory_store.localities(session)
    ]


@router.put("/localities/{code}", response_model=LocalityPublic)
def put_locality(
    code: str, body: LocalityIn, session: SessionDep, _caller: Admin
) -> LocalityPublic:
    """Create or replace a locality (admin). A district already in another locality is
    refused."""
    row = admin.put_locality(
        session, admin.LocalityData(code, body.name, body.population, body.districts)
    )
    return LocalityPublic(
        code=row.code,
        name=row.name,
        population=row.population,
        districts=admin.districts_of(session, row.code),
    )


@router.get("/organisations", response_model=list[OrganisationPublic])
def list_organisations(
    session: SessionDep,
    _caller: Reader,
    provider_type: str | None = None,
    locality: str | None = None,
) -> list[OrganisationRow]:
    """The provider directory, by ODS code; filter by provider type or locality served."""
    query = select(OrganisationRow).order_by(col(OrganisationRow.ods_code))
    if provider_type:
        query = query.where(OrganisationRow.provider_type == provider_type)
    rows = list(session.exec(query))
    return [r for r in rows if locality is None or locality in r.localities]


@router.get(
    "/organisations/{ods_code}", response_model=OrganisationPublic, responses=NO_ORGANISATION
)
def get_organisation(ods_code: str, session: SessionDep, _caller: Reader) -> OrganisationRow:
    return admin.get_organisation(session, ods_code)


@router.post(
    "/organisations",
    response_model=OrganisationPublic,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "An organisation with that ODS code exists"}},
)
def create_organisation(
    body: OrganisationCreate, session: SessionDep, _caller: Admin
) -> OrganisationRow:
    """Add an organisation (admin). 409 if the ODS code exists."""
    return admin.create_organisation(session, _data(body.ods_code, body))


@router.put(
    "/organisations/{ods_code}", response_model=OrganisationPublic, responses=NO_ORGANISATION
)
def replace_organisation(
    ods_code: str, body: OrganisationBody, session: SessionDep, _caller: Admin
) -> OrganisationRow:
    """Replace an organisation's details (admin); set ``active`` false to stop routing to it."""
    return admin.replace_organisation(session, _data(ods_code, body))


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
