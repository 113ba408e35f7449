"""The baseline for `bench/referrals_post.py`: a bare FastAPI + SQLModel app with one
``POST /referrals`` that validates a small nested Pydantic body (the same shape as the
referrals API's) and inserts one row into its own SQLite file. No domain model, no outbox, no
history: what "FastAPI + SQLModel + one insert" costs on this machine.

It is served the way the referrals API is (`rx_web.server`): one uvicorn process, the same
logging set-up, ``log_level="warning", access_log=False``, and an engine from
``rx_messaging.database.make_engine`` (WAL, ``synchronous=NORMAL``, busy timeout,
``BEGIN IMMEDIATE``), so the storage settings are equal.

    .venv/bin/python bench/baseline_app.py --port 18100 --database-url sqlite:////tmp/b.db
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from rx_messaging.database import make_engine
from rx_web.server import configure_logging
from sqlmodel import Field as SQLField
from sqlmodel import Session, SQLModel


class Priority(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"


class ServiceType(StrEnum):
    URGENT_COMMUNITY_RESPONSE = "urgent-community-response"
    GP_REVIEW = "gp-review"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReferrerIn(Strict):
    organisation: str
    practitioner: str | None = Field(default=None, max_length=64)


class PatientIn(Strict):
    nhs_number: str | None = None
    postcode: str


class ReferralCreate(Strict):
    referrer: ReferrerIn
    patient: PatientIn
    service_type: ServiceType
    priority: Priority = Priority.ROUTINE


class ReferralCreated(BaseModel):
    id: str


class ReferralRow(SQLModel, table=True):
    __tablename__ = "referral"

    id: str = SQLField(primary_key=True, max_length=64)
    referrer_org: str = SQLField(max_length=10)
    practitioner: str | None = SQLField(default=None, max_length=64)
    patient_nhs_number: str | None = SQLField(default=None, max_length=10)
    patient_postcode: str = SQLField(max_length=8)
    service_type: str = SQLField(max_length=64)
    priority: str = SQLField(max_length=16)
    created_at: datetime


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


def create_app(database_url: str) -> FastAPI:
    """The app; its engine is made at startup (lifespan), like the services'."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = make_engine(database_url)
        SQLModel.metadata.create_all(app.state.engine)
        yield
        app.state.engine.dispose()

    app = FastAPI(title="bench baseline", lifespan=lifespan)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # A plain `def`, like the referrals routes: both run in Starlette's thread pool.
    @app.post("/referrals", status_code=201)
    def create_referral(
        body: ReferralCreate, session: Annotated[Session, Depends(get_session)]
    ) -> ReferralCreated:
        referral_id = str(uuid.uuid4())
        row = ReferralRow(
            id=referral_id,
            referrer_org=body.referrer.organisation,
            practitioner=body.referrer.practitioner,
            patient_nhs_number=body.patient.nhs_number,
            patient_postcode=body.patient.postcode,
            service_type=body.service_type.value,
            priority=body.priority.value,
            created_at=datetime.now(UTC),
        )
        session.add(row)
        session.commit()
        # The id we chose, not row.id: reading the expired row would cost a SELECT.
        return ReferralCreated(id=referral_id)

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    configure_logging("bench-baseline")
    uvicorn.run(
        create_app(args.database_url),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
