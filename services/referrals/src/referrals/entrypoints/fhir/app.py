"""The FHIR R4 application, mounted inside the referrals API at /fhir/R4: its own routes and
error answers (OperationOutcome), the same container, authentication and limits."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from rx_web.app import NATIVE_TELEMETRY
from rx_web.routers import include_routes

from . import outcomes
from .capability import capability_statement
from .deps import BASE_PATH, fhir_response
from .routes_communications import router as communications_router
from .routes_documents import router as documents_router
from .routes_messaging import router as messaging_router
from .routes_operations import router as operations_router
from .routes_patient import router as patient_router
from .routes_read import router as read_router
from .routes_search import router as search_router
from .routes_tasks import router as tasks_router
from .routes_write import router as write_router

PREFIX = BASE_PATH


def create_fhir_app() -> FastAPI:
    app = FastAPI(
        title="Referral Exchange — referrals (FHIR R4)",
        openapi_url=None,  # the CapabilityStatement describes this API
        docs_url=None,
        redoc_url=None,
        telemetry=NATIVE_TELEMETRY,
    )
    outcomes.install(app)

    @app.get("/metadata", name="capabilities")
    def metadata() -> JSONResponse:
        return fhir_response(capability_statement("0.1.0"))

    # Added to the app itself, not included lazily: matched once a request (rx_web.routers).
    for router in (
        read_router,
        search_router,
        write_router,
        tasks_router,
        messaging_router,
        patient_router,
        communications_router,
        documents_router,
        operations_router,
    ):
        include_routes(app, router)
    return app


def mount(parent: FastAPI) -> None:
    """Serve the FHIR interface inside ``parent`` at :data:`PREFIX`, sharing its state (the
    container built at startup). The platform's own problem+json answers on those paths
    (authentication, limits) become OperationOutcomes in the parent's outermost layer of its
    own (:func:`.outcomes.problems_as_outcomes`)."""
    fhir = create_fhir_app()
    fhir.state = parent.state
    parent.mount(PREFIX, fhir)
