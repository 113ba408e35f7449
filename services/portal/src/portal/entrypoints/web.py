"""What every page route shares: the templates, who is signed in, the API with their token,
CSRF checks on every form, and the answers for a missing session or an API problem."""

from __future__ import annotations

import contextlib
import hmac
import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from .. import views
from ..adapters.referrals_api import ApiError, ReferralsApi
from ..adapters.sessions import Lookup, Session
from ..bootstrap import Container

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SESSION_KEY = "sid"


def templates() -> Jinja2Templates:
    found = Jinja2Templates(directory=TEMPLATES)
    found.env.filters.update(
        words=views.words,
        when=views.when,
        countdown=views.countdown,
        size=views.size,
        step_label=views.step_label,
    )
    found.env.globals.update(
        STATUS_LABELS=views.STATUS_LABELS,
        PRIORITY_CLASSES=views.PRIORITY_CLASSES,
        PLATFORM_ORG=views.PLATFORM_ORG,
        STEP_LABELS=views.STEP_LABELS,
        ENDED=views.ENDED,
        CONSENT_LABELS=views.CONSENT_LABELS,
        is_overdue=views.is_overdue,
        new_key=lambda: str(uuid.uuid4()),
    )
    return found


class NotSignedIn(Exception):
    """No live session: back to the sign-in page (saying so if it expired)."""

    def __init__(self, expired: bool) -> None:
        super().__init__("expired" if expired else "not signed in")
        self.expired = expired


class CsrfRefused(Exception):
    """A form came without this session's CSRF token."""


def container(request: Request) -> Container:
    found: Container = request.app.state.container
    return found


def current_session(request: Request) -> Session:
    """The signed-in session, or :class:`NotSignedIn`."""
    lookup, session = container(request).sessions.find(request.session.get(SESSION_KEY))
    if lookup is not Lookup.FOUND or session is None:
        request.session.pop(SESSION_KEY, None)
        raise NotSignedIn(expired=lookup is Lookup.EXPIRED)
    return session


SessionDep = Annotated[Session, Depends(current_session)]


def referrals_api(request: Request, session: SessionDep) -> ReferralsApi:
    return ReferralsApi(container(request).http, session.access_token)


ApiDep = Annotated[ReferralsApi, Depends(referrals_api)]


async def checked_form(request: Request, session: SessionDep) -> dict[str, Any]:
    """The posted form, once its CSRF token matches the session's (403 otherwise)."""
    form = await request.form()
    sent = form.get("csrf_token")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf_token):
        raise CsrfRefused()
    return dict(form.items())


FormDep = Annotated[dict[str, Any], Depends(checked_form)]


def page(
    request: Request, name: str, session: Session | None, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page, with the signed-in person (if any) and their CSRF token for its forms."""
    render: Jinja2Templates = request.app.state.templates
    return render.TemplateResponse(
        request,
        name,
        {
            "user": session.user if session else None,
            "csrf_token": session.csrf_token if session else "",
            **context,
        },
        status_code=status,
    )


def signin_redirect(request: Request, expired: bool) -> Response:
    """To the sign-in page; htmx requests (the worklist polling) get HX-Redirect instead, so
    the whole page goes rather than a fragment."""
    target = "/signin?expired=1" if expired else "/signin"
    if not expired and request.method == "GET" and request.url.path not in ("/", "/signin"):
        target += "?next=" + quote(
            request.url.path + (f"?{request.url.query}" if request.url.query else "")
        )
    if request.headers.get("hx-request"):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def problem_page(request: Request, error: ApiError) -> Response:
    """An API problem the route did not handle itself, said to the person."""
    if error.status == 401:  # the token is no longer accepted: the session is over
        request.session.pop(SESSION_KEY, None)
        return signin_redirect(request, expired=True)
    session = None
    with contextlib.suppress(NotSignedIn):
        session = current_session(request)
    if error.status == 404:
        return page(request, "not_found.html", session, 404)
    return page(
        request, "problem.html", session, error.status if error.status >= 400 else 502, error=error
    )
