"""Signing in and out with OpenID Connect (the issuer's sign-in page; this app never sees a
password), and the session that follows."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from authlib.integrations.base_client.errors import OAuthError
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ..adapters.sessions import User
from .web import SESSION_KEY, FormDep, SessionDep, container, page

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only paths of this app (an open redirect would help phishing)."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/worklist"


@router.get("/")
def home(request: Request) -> Response:
    return RedirectResponse("/worklist" if request.session.get(SESSION_KEY) else "/signin", 303)


@router.get("/signin")
def signin_page(request: Request, expired: bool = False, next: str | None = None) -> Response:
    return page(request, "signin.html", None, expired=expired, next=_safe_next(next))


@router.get("/login")
async def login(request: Request, next: str | None = None) -> Response:
    """Off to the issuer's sign-in page (state, nonce and PKCE verifier kept in the cookie)."""
    request.session["next"] = _safe_next(next)
    settings = container(request).settings
    response: Response = await container(request).oidc.authorize_redirect(
        request, f"{settings.url}/auth/callback"
    )
    return response


@router.get("/auth/callback")
async def callback(request: Request) -> Response:
    """Back from the issuer: the code becomes tokens (ID token checked), and a session."""
    oidc = container(request).oidc
    try:
        token = await oidc.authorize_access_token(request)
    except OAuthError as exc:
        log.info("sign-in did not complete: %s", exc.error)
        return page(request, "signin.html", None, 400, failed=True, next="/worklist")
    claims = token["userinfo"]
    user = User(
        username=str(claims["sub"]),
        name=str(claims.get("name") or claims["sub"]),
        organisation=str(claims["org"]),
        practitioner=str(claims["practitioner"]),
        job_roles=tuple(claims.get("job_roles") or ()),
        provider_type=claims.get("provider_type"),
    )
    # The session ends with the access token: the APIs would refuse it after that.
    expires_at = datetime.fromtimestamp(int(token["expires_at"]), UTC)
    session = container(request).sessions.create(
        user, token["access_token"], token["id_token"], expires_at
    )
    target = _safe_next(request.session.pop("next", None))
    request.session.clear()
    request.session[SESSION_KEY] = session.id
    log.info("%s of %s signed in", user.username, user.organisation)
    return RedirectResponse(target, status_code=303)


@router.post("/signout")
async def signout(request: Request, session: SessionDep, _form: FormDep) -> Response:
    """End the session here and at the issuer, then come back to the signed-out page."""
    container(request).sessions.delete(session.id)
    request.session.clear()
    metadata = await container(request).oidc.load_server_metadata()
    settings = container(request).settings
    logout = await container(request).oidc.create_logout_url(
        post_logout_redirect_uri=f"{settings.url}/signed-out", id_token_hint=session.id_token
    )
    log.info("%s signed out", session.user.username)
    return RedirectResponse(
        logout["url"] if metadata.get("end_session_endpoint") else "/signed-out", 303
    )


@router.get("/signed-out")
def signed_out(request: Request) -> Response:
    return page(request, "signed_out.html", None)
