"""Verifying the whole chain on request; the public keys checkpoints are signed with."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...service_layer import handlers
from .deps import CallerDep, ContainerDep, Uow
from .schemas import Jwks, VerificationPublic

router = APIRouter(tags=["audit"])


@router.get("/audit/verify", response_model=VerificationPublic)
def verify(_caller: CallerDep, uow: Uow, container: ContainerDep) -> VerificationPublic:
    """Recompute the whole chain, compare it with the signed checkpoints published to Kafka,
    and report the first entry that does not fit — or, the chain fitting, the checkpoints on
    the topic that the audit service did not sign (`verdict`: tampered, forged-checkpoint,
    unvouched or intact)."""
    result = handlers.verify_chain(container.checkpoints, uow)
    return VerificationPublic.model_validate(result, from_attributes=True)


@router.get(
    "/audit/checkpoint-keys",
    response_model=Jwks,
    summary="The public keys audit checkpoints are signed with (JWKS)",
)
def checkpoint_keys(container: ContainerDep) -> Any:
    """Every key a checkpoint on `audit.checkpoints.v1` may be signed with, as a JWK Set
    (RFC 7517): the newest signs, the older ones verify what they signed before a rotation.
    Public, like any JWKS: keep a copy outside the platform to verify checkpoints with
    (`python -m audit verify --jwks <copy>`)."""
    return JSONResponse(
        container.checkpoint_keys.jwks(), headers={"Cache-Control": "public, max-age=300"}
    )
