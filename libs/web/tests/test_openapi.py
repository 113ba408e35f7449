"""What every service's OpenAPI document says about the answers its routes do not list
themselves: they come from what the route depends on, and every error is problem+json."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel
from rx_contracts import Identity, Role
from rx_web.app import service_app
from rx_web.auth import PRACTITIONER_PATTERN, AuthScheme, AuthSettings
from rx_web.identity import (
    IdentityDep,
    documented_identity,
    get_identity,
    reads_identity,
    require_roles,
)
from rx_web.problems import PROBLEM_JSON
from rx_web.settings import Environment
from sqlalchemy import create_engine


class Thing(BaseModel):
    name: str


class Container:
    engine = create_engine("sqlite://")


def app(monkeypatch: Any, rate_limit: str) -> FastAPI:
    monkeypatch.setenv("RX_RATE_LIMIT_PER_SECOND", rate_limit)
    made = service_app(
        "things",
        "Things.",
        Container,
        max_body_size=1000,
        auth=AuthSettings(env=Environment.DEVELOPMENT, auth=AuthScheme.DEV_HEADERS),
    )

    @made.get("/public")
    def public() -> str:
        return "hello"

    @made.get("/mine", responses={404: {"description": "Not one of yours"}})
    def mine(identity: IdentityDep) -> str:
        return identity.organisation

    @made.post("/things", status_code=201)
    def add(thing: Thing, _admin: Annotated[Identity, Depends(require_roles(Role.ADMIN))]) -> Thing:
        return thing

    return made


async def step(idempotency_key: Annotated[str, Header()], identity: IdentityDep) -> Identity:
    """A dependency with a header of its own that reads the identity (as the referrals API's
    lifecycle operations have)."""
    return identity


@reads_identity
async def marked_step(idempotency_key: Annotated[str, Header()], request: Request) -> Identity:
    """``step`` reading the identity itself."""
    return await get_identity(request)


async def declared_step(
    idempotency_key: Annotated[str, Header()], _: Annotated[None, Depends(documented_identity)]
) -> None:
    """``step`` with the identity's scheme and header declared for FastAPI to solve."""


def responses(app: FastAPI, method: str, path: str) -> dict[str, Any]:
    answers: dict[str, Any] = app.openapi()["paths"][path][method]["responses"]
    return answers


def test_answers_follow_from_what_each_route_depends_on(monkeypatch) -> None:
    things = app(monkeypatch, rate_limit="5")
    assert set(responses(things, "get", "/public")) == {"200", "429", "503"}
    # 422: the X-Practitioner header every identity route documents has a pattern
    assert set(responses(things, "get", "/mine")) == {"200", "401", "404", "422", "429", "503"}
    added = responses(things, "post", "/things")
    assert set(added) == {"201", "400", "401", "403", "413", "422", "429", "503"}
    assert "admin" in added["403"]["description"]
    assert "Retry-After" in added["429"]["headers"]
    assert responses(things, "get", "/mine")["404"]["description"] == "Not one of yours"


def test_without_a_rate_limit_no_429_is_promised(monkeypatch) -> None:
    assert "429" not in responses(app(monkeypatch, rate_limit="0"), "get", "/mine")


def test_every_error_is_documented_as_the_problem_json_it_is(monkeypatch) -> None:
    things = app(monkeypatch, rate_limit="5")
    document = things.openapi()
    errors = [
        answer
        for operations in document["paths"].values()
        for operation in operations.values()
        for code, answer in operation["responses"].items()
        if code >= "400"
    ]
    assert errors and all(list(e["content"]) == [PROBLEM_JSON] for e in errors)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    with TestClient(things) as client:
        refused = client.post(
            "/things", json={}, headers={"X-Organisation": "X26", "X-Roles": "admin"}
        )
    assert refused.status_code == 422
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert set(refused.json()) <= set(document["components"]["schemas"]["Problem"]["properties"])


def test_identity_routes_document_the_bearer_scheme_and_x_practitioner(monkeypatch) -> None:
    """The scheme and the header are read by the Authenticate middleware, not by FastAPI per
    request; the document still shows them exactly where FastAPI would put them if the route
    declared them itself (after the parameters of the dependency that reads the identity)."""
    things = app(monkeypatch, rate_limit="0")

    @things.post("/things/{thing_id}/move")
    def move(thing_id: str, _step: Annotated[Identity, Depends(step)]) -> str:
        return thing_id

    @things.post("/things/{thing_id}/mark")
    def mark(thing_id: str, _step: Annotated[Identity, Depends(marked_step)]) -> str:
        return thing_id

    declared = FastAPI()

    @declared.get("/mine")
    def mine(_: Annotated[None, Depends(documented_identity)]) -> str:
        return ""

    @declared.post("/things/{thing_id}/move")
    def declared_move(thing_id: str, _step: Annotated[None, Depends(declared_step)]) -> str:
        return thing_id

    ours, theirs = things.openapi(), declared.openapi()
    assert ours["components"]["securitySchemes"] == theirs["components"]["securitySchemes"]
    assert list(ours["components"]["securitySchemes"]) == ["HTTPBearer"]
    for path, method, declared_path in (
        ("/mine", "get", "/mine"),
        ("/things/{thing_id}/move", "post", "/things/{thing_id}/move"),
        ("/things/{thing_id}/mark", "post", "/things/{thing_id}/move"),
    ):
        operation = ours["paths"][path][method]
        declared_operation = theirs["paths"][declared_path][method]
        assert operation["security"] == declared_operation["security"] == [{"HTTPBearer": []}]
        assert operation["parameters"] == declared_operation["parameters"]
    practitioner = ours["paths"]["/mine"]["get"]["parameters"]
    assert [(p["in"], p["name"]) for p in practitioner] == [("header", "X-Practitioner")]
    assert practitioner[0]["schema"]["anyOf"][0]["pattern"] == PRACTITIONER_PATTERN
    moved = ours["paths"]["/things/{thing_id}/move"]["post"]["parameters"]
    assert [p["name"] for p in moved] == ["thing_id", "idempotency-key", "X-Practitioner"]
    assert "401" in ours["paths"]["/things/{thing_id}/mark"]["post"]["responses"]
    public = ours["paths"]["/public"]["get"]
    assert "security" not in public and "parameters" not in public
