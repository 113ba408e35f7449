"""OpenID Connect for people signing in to a web app, on Authlib's authorization server:
authorization code with PKCE (S256, required), ID tokens, RP-initiated logout.

Authlib ships integrations for Flask and Django only; :class:`Server` is the small Starlette
one (requests in, responses out). Authorization codes live in this process's memory for a
minute and are used once: the issuer runs as one process."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.rpinitiated import EndSessionEndpoint
from joserfc.jwk import OKPKey, RSAKey
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .clients import Client, Registry
from .config import Settings
from .keys import KeyStore
from .tokens import mint_for_user
from .users import User, Users

SCOPES = ("openid", "profile")
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class _Payload(OAuth2Payload):
    def __init__(self, values: Mapping[str, list[str]]) -> None:
        self._datalist = {k: list(v) for k, v in values.items()}
        self._data = {k: v[0] for k, v in values.items() if v}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:  # type: ignore[override]
        return self._datalist


class OAuthRequest(OAuth2Request):
    """One HTTP request as Authlib reads it: its query and form parameters."""

    def __init__(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        args: Mapping[str, list[str]],
        form: Mapping[str, list[str]] | None = None,
    ) -> None:
        super().__init__(method, url, headers=headers)  # case-insensitive (Starlette)
        self._args = {k: v[0] for k, v in args.items() if v}
        self._form = {k: v[0] for k, v in (form or {}).items() if v}
        self.payload = _Payload({**args, **(form or {})})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @classmethod
    async def read(cls, request: Request, with_form: bool = True) -> OAuthRequest:
        args: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            args.setdefault(key, []).append(value)
        form: dict[str, list[str]] = {}
        if with_form and request.method == "POST":
            for key, item in (await request.form()).multi_items():
                if isinstance(item, str):
                    form.setdefault(key, []).append(item)
        return cls(request.method, str(request.url), request.headers, args, form)


class OidcClient(ClientMixin):
    """A registered client as Authlib asks about it."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {"post_logout_redirect_uris": self.client.post_logout_redirect_uris}

    def get_client_id(self) -> str:
        return self.client.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # the client must name its redirect_uri; loopback ones differ by port

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return self.client.allows_redirect(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client.secret_matches(client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in CLIENT_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.client.grant_types


@dataclass
class Code:
    """An authorization code: who signed in, for which client and request, until when."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    username: str
    auth_time: int
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[str]:
        return ["pwd"]


@dataclass
class CodeStore:
    ttl_seconds: float = 60
    _codes: dict[str, Code] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, code: Code) -> None:
        with self._lock:
            now = time.monotonic()
            for stale in [k for k, c in self._codes.items() if c.expires_at <= now]:
                del self._codes[stale]
            self._codes[code.code] = code

    def get(self, code: str, client_id: str) -> Code | None:
        with self._lock:
            found = self._codes.get(code)
        if found is None or found.client_id != client_id or found.expires_at <= time.monotonic():
            return None
        return found

    def delete(self, code: str) -> None:
        with self._lock:
            self._codes.pop(code, None)

    def has_nonce(self, client_id: str, nonce: str) -> bool:
        with self._lock:
            return any(c.client_id == client_id and c.nonce == nonce for c in self._codes.values())


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: Server

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        user: SignedIn = request.user
        self.server.codes.put(
            Code(
                code=code,
                client_id=request.client.get_client_id(),
                redirect_uri=data.get("redirect_uri", ""),
                scope=request.client.get_allowed_scope(data.get("scope", "")),
                username=user.user.username,
                auth_time=user.auth_time,
                nonce=data.get("nonce"),
                code_challenge=data["code_challenge"],
                code_challenge_method=data.get("code_challenge_method", "S256"),
                expires_at=time.monotonic() + self.server.codes.ttl_seconds,
            )
        )

    def query_authorization_code(self, code: str, client: OidcClient) -> Code | None:
        return self.server.codes.get(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code: Code) -> None:
        self.server.codes.delete(authorization_code.code)

    def authenticate_user(self, authorization_code: Code) -> User | None:
        return self.server.users.get(authorization_code.username)


class S256Required(CodeChallenge):
    """PKCE for every client (OAuth 2.0 Security BCP), and only its S256 method."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 (Authlib's name)
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        if not grant.request.payload.data.get("code_challenge"):
            raise InvalidRequestError(
                "Missing 'code_challenge': PKCE (S256) is required", redirect_uri=redirect_uri
            )
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: Code) -> str:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: Code) -> str:
        return authorization_code.code_challenge_method


def user_claims(user: User) -> dict[str, Any]:
    """What an ID token and the userinfo endpoint say of a user (scope profile)."""
    claims: dict[str, Any] = {
        "sub": user.username,
        "name": user.name,
        "preferred_username": user.username,
        "org": user.organisation,
        "practitioner": user.practitioner,
        "job_roles": sorted(role.value for role in user.job_roles),
    }
    if user.provider_type is not None:
        claims["provider_type"] = user.provider_type.value
    return claims


class IdToken(OpenIDCode):
    """ID tokens signed with the issuer's current key (the one the JWKS publishes first)."""

    def __init__(self, server: Server) -> None:
        super().__init__(require_nonce=True)
        self.server = server

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return self.server.codes.has_nonce(request.payload.client_id, nonce)

    def resolve_client_private_key(self, client: OidcClient) -> Any:
        key = self.server.keys.current()
        codec = OKPKey if key.algorithm == "EdDSA" else RSAKey
        return codec.import_key(key.private_key)

    def get_client_algorithm(self, client: OidcClient) -> str:
        return self.server.keys.current().algorithm

    def get_encode_header(self, client: OidcClient) -> dict[str, str]:
        key = self.server.keys.current()
        return {"alg": key.algorithm, "kid": key.kid, "typ": "JWT"}

    def get_client_claims(self, client: OidcClient) -> dict[str, Any]:
        return {
            "iss": self.server.settings.url,
            "aud": client.get_client_id(),  # one audience: logout finds the client by it
            "exp": int(time.time()) + self.server.settings.user_token_ttl_seconds,
        }

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return UserInfo(user_claims(user))


class EndSession(EndSessionEndpoint):
    """RP-initiated logout: the route clears the sign-in cookie; this validates the request
    and where to send the browser afterwards."""

    server: Server

    def get_server_jwks(self) -> dict[str, Any]:
        return self.server.keys.jwks()

    def end_session(self, end_session_request: Any) -> None:
        """Nothing to do here: the sign-in session is a cookie the route removes."""

    def _is_valid_post_logout_redirect_uri(self, client: OidcClient, uri: str) -> bool:
        # Registered loopback URIs match any port, as for sign-in (clients.redirect_matches).
        return client.client.allows_post_logout_redirect(uri)


@dataclass(frozen=True)
class SignedIn:
    """The person whose sign-in session the browser holds, and when they signed in."""

    user: User
    auth_time: int


class Server(AuthorizationServer):
    """Authlib's authorization server on Starlette requests and responses."""

    def __init__(self, registry: Registry, users: Users, keys: KeyStore, settings: Settings):
        super().__init__(scopes_supported=list(SCOPES))
        self.registry, self.users, self.keys, self.settings = registry, users, keys, settings
        self.codes = CodeStore(settings.code_ttl_seconds)
        self.register_token_generator("default", self._generate_token)
        self.register_grant(AuthorizationCodeGrant, [S256Required(), IdToken(self)])
        self.register_endpoint(EndSession)

    def query_client(self, client_id: str) -> OidcClient | None:
        client = self.registry.get(client_id)
        return OidcClient(client) if client is not None else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Access tokens are signed JWTs the services verify themselves: nothing to keep."""

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        assert isinstance(request, OAuthRequest), "read the request with OAuthRequest.read"
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        headers = dict(headers)
        if isinstance(body, dict):
            return JSONResponse(body, status_code=status, headers={**headers, **NO_STORE})
        return Response(body or b"", status_code=status, headers=headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No listeners."""

    def _generate_token(
        self,
        grant_type: str,
        client: OidcClient,
        user: User | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = False,
    ) -> dict[str, Any]:
        assert user is not None, "authorization_code tokens are for a person"
        ttl = self.settings.user_token_ttl_seconds
        token = mint_for_user(user, client.client, self.settings.url, self.keys.current(), ttl)
        return {"token_type": "Bearer", "access_token": token, "expires_in": ttl, "scope": scope}

    def discovery(self) -> dict[str, Any]:
        """The OpenID Provider metadata of sign-in (the app adds client credentials)."""
        url, browser = self.settings.url, self.settings.browser_url
        return {
            "authorization_endpoint": f"{browser}/oauth2/authorize",
            "userinfo_endpoint": f"{url}/oauth2/userinfo",
            "end_session_endpoint": f"{browser}/oauth2/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "subject_types_supported": ["public"],
            "scopes_supported": list(SCOPES),
            "code_challenge_methods_supported": ["S256"],
            "prompt_values_supported": ["none", "login"],
            "claims_supported": [
                "sub",
                "name",
                "preferred_username",
                "org",
                "provider_type",
                "practitioner",
                "job_roles",
                "auth_time",
                "nonce",
            ],
        }
