"""The referrals API application (``python -m referrals api``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from rx_web.app import service_app
from rx_web.problems import problem_response
from rx_web.routers import include_routes
from starlette.types import ASGIApp, Receive, Scope, Send

from ...bootstrap import Container, bootstrap
from ...config import Settings, get_settings
from ...domain.attachments import MAX_BYTES as MAX_ATTACHMENT_BYTES
from ...domain.errors import ReferralError
from ..fhir.app import PREFIX as FHIR_PREFIX
from ..fhir.app import mount as mount_fhir
from ..fhir.outcomes import problems_as_outcomes
from ..fhir.routes_documents import UPLOAD_PATH as FHIR_UPLOAD_PATH
from .deps import InFlight
from .routes_attachments import UPLOAD_PATH
from .routes_attachments import router as attachments_router
from .routes_referrals import router as referrals_router
from .routes_transitions import router as transitions_router


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    """Build the app; the container (database engine…) is made at startup, not import."""
    settings = settings or (container.settings if container else get_settings())
    app = service_app(
        "referrals",
        "Create, move through their lifecycle and read referrals between health and care "
        "organisations. Authenticate with a bearer token from the issuer (audience 'referrals').",
        lambda: container or bootstrap(settings),
        max_body_size=settings.max_body_bytes,
        larger_bodies={
            UPLOAD_PATH: MAX_ATTACHMENT_BYTES + 1024,
            # base64 is 4 bytes for every 3, plus the DocumentReference around it
            FHIR_UPLOAD_PATH: MAX_ATTACHMENT_BYTES * 4 // 3 + 64 * 1024,
        },
    )

    @app.exception_handler(ReferralError)
    async def _domain_error(request: Request, exc: ReferralError) -> JSONResponse:
        return problem_response(exc.status, exc.title, str(exc), request.url.path, **exc.extra())

    app.state.in_flight = InFlight()  # see deps.in_transaction
    # Added to the app itself, not included lazily: matched once a request (rx_web.routers).
    for router in (referrals_router, transitions_router, attachments_router):
        include_routes(app, router)
    mount_fhir(app)
    app.add_middleware(ServiceLayer, in_flight=app.state.in_flight, fhir_prefix=FHIR_PREFIX)
    return app


class ServiceLayer:
    """The service's outermost layer of its own (outside the platform's edge, see
    ``rx_web.metrics.Edge``): it counts the requests in flight (:class:`.deps.InFlight`, by
    which ``deps.in_transaction`` places a transaction) and sends the platform's problem+json
    answers to a request on the FHIR interface as OperationOutcomes
    (:func:`..fhir.outcomes.problems_as_outcomes`). One pure ASGI layer where there were two:
    a JSON-API request pays only the path check for the second."""

    def __init__(self, app: ASGIApp, in_flight: InFlight, fhir_prefix: str) -> None:
        self.app, self.in_flight, self.fhir_prefix = app, in_flight, fhir_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(self.fhir_prefix):
            send = problems_as_outcomes(send)
        in_flight = self.in_flight
        in_flight.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            in_flight.count -= 1
