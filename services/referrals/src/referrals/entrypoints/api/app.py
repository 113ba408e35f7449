"""The referrals API application (``python -m referrals api``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from rx_web.app import service_app
from rx_web.problems import problem_response

from ...bootstrap import Container, bootstrap
from ...config import Settings, get_settings
from ...domain.attachments import MAX_BYTES as MAX_ATTACHMENT_BYTES
from ...domain.errors import ReferralError
from ..fhir.app import mount as mount_fhir
from ..fhir.routes_documents import UPLOAD_PATH as FHIR_UPLOAD_PATH
from .deps import CountInFlight, InFlight
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
    app.add_middleware(CountInFlight, in_flight=app.state.in_flight)
    app.include_router(referrals_router)
    app.include_router(transitions_router)
    app.include_router(attachments_router)
    mount_fhir(app)
    return app
