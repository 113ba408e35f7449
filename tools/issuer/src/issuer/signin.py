"""The pages and endpoints a person's browser meets: sign in (the authorization endpoint),
sign out (RP-initiated logout), and userinfo for the web app holding their token.

The sign-in session is a signed cookie (who, since when), valid for ``session_ttl_seconds``;
while it lasts a web app's sign-in returns at once without asking for the password again.
The sign-in form is protected by a double-submit CSRF token."""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from authlib.oauth2 import OAuth2Error
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer

from .config import Settings
from .oidc import OAuthRequest, Server, SignedIn, user_claims

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "rx_signin"
CSRF_COOKIE = "rx_signin_csrf"
COOKIE_PATH = "/oauth2"


def page_csp(*form_targets: str) -> str:
    """No script at all; forms post here, and may redirect on to the web app (Chromium checks
    form-action against redirects too)."""
    targets = " ".join(["'self'", *sorted({t for t in form_targets if t})])
    return (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action {targets}; frame-ancestors 'none'; base-uri 'none'"
    )


def origin(uri: str | None) -> str:
    if not uri:
        return ""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


class SignInSessions:
    """The signed sign-in cookie: the username and when they signed in."""

    def __init__(self, secret: str, ttl_seconds: int, secure: bool) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt="rx-signin")
        self.ttl, self.secure = ttl_seconds, secure

    def read(self, request: Request, server: Server) -> SignedIn | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self.serializer.loads(raw, max_age=self.ttl)
        except BadSignature:
            return None
        user = server.users.get(data.get("u", ""))
        return SignedIn(user, int(data["t"])) if user is not None else None

    def write(self, response: Response, signed_in: SignedIn) -> None:
        value = self.serializer.dumps({"u": signed_in.user.username, "t": signed_in.auth_time})
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=self.ttl,
            path=COOKIE_PATH,
            httponly=True,
            secure=self.secure,
            samesite="lax",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)


def signin_router(app: FastAPI, server: Server, settings: Settings) -> APIRouter:
    """Routes of sign-in, sign-out and userinfo; static files of the sign-in page."""
    templates = Jinja2Templates(directory=HERE / "templates")
    sessions = SignInSessions(
        settings.session_secret.get_secret_value(),
        settings.session_ttl_seconds,
        secure=settings.url.startswith("https://"),
    )
    app.mount("/oauth2/static", StaticFiles(directory=HERE / "static"), name="signin-static")
    router = APIRouter(prefix="/oauth2", tags=["openid connect"])

    def page(
        request: Request, name: str, status: int = 200, targets: tuple[str, ...] = (), **ctx: Any
    ) -> HTMLResponse:
        response = templates.TemplateResponse(request, name, ctx, status_code=status)
        response.headers["Content-Security-Policy"] = page_csp(*targets)
        return response

    def error_page(request: Request, error: OAuth2Error) -> HTMLResponse:
        """An authorization request that cannot go back to the app (unknown client, bad
        redirect_uri): said to the person, never redirected."""
        return page(
            request,
            "error.html",
            400,
            error=error.error,
            description=error.get_error_description() or error.error,
        )

    def signin_form(
        request: Request, oauth: OAuthRequest, status: int = 200, username: str = ""
    ) -> HTMLResponse:
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        redirect = origin(oauth.payload.data.get("redirect_uri"))
        client = server.registry.get(oauth.payload.data.get("client_id", ""))
        response = page(
            request,
            "signin.html",
            status,
            targets=(redirect,),
            action=f"/oauth2/authorize?{request.url.query}",
            csrf_token=token,
            failed=status == 401,
            client_name=client.name if client else "",
            username=username,
        )
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path=COOKIE_PATH,
            httponly=True,
            secure=sessions.secure,
            samesite="strict",
        )
        return response

    def finish(oauth: OAuthRequest, grant: Any, signed_in: SignedIn) -> Response:
        response = server.create_authorization_response(oauth, grant_user=signed_in, grant=grant)
        log.debug("signed in %s for %s", signed_in.user.username, oauth.payload.client_id)
        return response  # type: ignore[no-any-return]

    @router.get("/authorize", summary="Authorization endpoint (sign in)")
    async def authorize(request: Request) -> Response:
        """Authorization code with PKCE: sign in (unless already), then back to the app."""
        oauth = await OAuthRequest.read(request)
        signed_in = sessions.read(request, server)
        prompts = oauth.payload.data.get("prompt", "").split()
        if "login" in prompts:
            signed_in = None
        try:
            grant = server.get_consent_grant(oauth, end_user=signed_in)
        except OAuth2Error as error:
            if error.redirect_uri:
                return server.handle_error_response(oauth, error)  # type: ignore[no-any-return]
            return error_page(request, error)
        if signed_in is not None:
            return finish(oauth, grant, signed_in)
        return signin_form(request, oauth)

    @router.post("/authorize", summary="Sign-in form", include_in_schema=False)
    async def signin(request: Request) -> Response:
        form = await request.form()
        oauth = await OAuthRequest.read(request, with_form=False)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            grant = server.get_consent_grant(oauth, end_user=None)
        except OAuth2Error as error:
            if error.redirect_uri:
                return server.handle_error_response(oauth, error)  # type: ignore[no-any-return]
            return error_page(request, error)
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(cookie, fields.get("csrf_token", "")):
            return page(
                request,
                "error.html",
                400,
                error="invalid_request",
                description="The sign-in form expired or came from elsewhere. Go back to the "
                "service and sign in again.",
            )
        user = server.users.authenticate(fields.get("username", ""), fields.get("password", ""))
        if user is None:
            log.info("failed sign-in for %r", fields.get("username", "")[:64])
            return signin_form(request, oauth, 401, fields.get("username", "")[:64])
        signed_in = SignedIn(user, int(time.time()))
        response = finish(oauth, grant, signed_in)
        sessions.write(response, signed_in)
        response.delete_cookie(CSRF_COOKIE, path=COOKIE_PATH)
        return response

    @router.api_route("/logout", methods=["GET", "POST"], summary="End session (sign out)")
    async def logout(request: Request) -> Response:
        """RP-initiated logout: ends the sign-in session; returns to the app if it sent a
        valid id_token_hint and a registered post_logout_redirect_uri."""
        oauth = await OAuthRequest.read(request)
        try:
            validated = server.validate_endpoint_request("end_session", oauth)
            response = server.create_endpoint_response("end_session", validated)
        except OAuth2Error as error:
            response = error_page(request, error)
        if response is None:
            response = page(request, "signed_out.html")
        sessions.clear(response)
        return response

    @router.get("/userinfo", summary="Userinfo (OpenID Connect)")
    async def userinfo(request: Request) -> JSONResponse:
        """Claims of the person an access token from this issuer was issued for."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        claims = (
            _user_token_claims(token.strip(), server, settings)
            if scheme.lower() == "bearer"
            else None
        )
        user = server.users.get(claims["sub"]) if claims else None
        if user is None:
            return JSONResponse(
                {"error": "invalid_token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return JSONResponse(user_claims(user), headers={"Cache-Control": "no-store"})

    return router


def _user_token_claims(token: str, server: Server, settings: Settings) -> dict[str, Any] | None:
    """The claims of a valid access token of ours that was issued to a person."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = next((k for k in server.keys.keys() if k.kid == kid), None)  # noqa: SIM118
        if key is None:
            return None
        claims: dict[str, Any] = jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=[key.algorithm],
            issuer=settings.url,
            options={"verify_aud": False, "require": ["exp", "sub"]},
        )
    except jwt.PyJWTError:
        return None
    return claims if "practitioner" in claims else None
