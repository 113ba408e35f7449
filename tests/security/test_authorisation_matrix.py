"""Object-level authorisation, route by route, generated from each service's route table.

Every route of every service is classified, or this test fails naming it:

* public: FastAPI's own pages and the probes and public keys in ``PUBLIC``; nothing else may
  skip identity;
* staff: guarded by ``require_roles`` without the provider role: every caller lacking those
  roles (every provider token among them) gets 403 and no data;
* object: takes an id and is in ``OBJECT_ROUTES``: for every caller below, one not entitled
  gets 403/404 with none of the referral's data; an entitled one gets through authorisation;
* collection: no id, in ``COLLECTION_ROUTES`` with a check of what each caller may see.

Every non-public route also answers 401 to a caller without a token. Callers use real tokens
from the issuer's demo clients."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from issuer.testing import TestIssuer
from routing.entrypoints.seed import seed_demo
from rx_contracts import ProviderType, Role
from rx_web.identity import IdentityDep

from .conftest import SERVICES
from .routes import RequestShape, RouteInfo, mounted_operations, request_shape, routes_of

CALLERS: dict[str, str] = {
    "referrer": "b81001",
    "assigned": "rxa01",
    "other rapid response team": "rxa02",
    "other practice": "l81002",
    "social care": "scc01",
    "ops": "ops",
    "admin": "admin",
}
"""Who calls (a name → the demo client it uses). For the referral each test creates, B81001
referred it and RXA01 is assigned it; the others have nothing to do with it."""

ROLES: dict[str, frozenset[Role]] = {
    name: frozenset({Role.OPS})
    if name == "ops"
    else frozenset({Role.ADMIN})
    if name == "admin"
    else frozenset({Role.PROVIDER})
    for name in CALLERS
}

PUBLIC = frozenset(
    {
        "GET /health",
        "GET /ready",
        "GET /metrics",  # counts only, no referral data; kept off the public network
        "GET /ops",
        "GET /ops/",
        "GET /audit/checkpoint-keys",
    }
)
"""Routes answered without an identity: the probes, the ops console's page shell (HTML
that holds no data; everything it shows comes from the ops-only API with the user's token),
and the public keys audit checkpoints are signed with (a JWKS, public by nature)."""

STATIC_MOUNTS = frozenset({"audit /ops/assets", "referrals /fhir/R4"})
"""Mounts serving files shipped inside a service (the console's JS, CSS): code, no data; and
the referrals service's FHIR interface, whose routes answer FHIR rather than this matrix's
requests: services/referrals/tests/test_fhir.py checks each of them learns its caller and
that someone else's referral is a 404 there too (test_fhir_documents.py: its documents, read
and uploaded). Its instance operations (``POST …/{id}/$name``, a Parameters body) are in the
matrix all the same (``FHIR_OPERATIONS``): lifecycle steps, like the JSON API's routes above."""
FHIR_OPERATIONS = {"referrals": "/fhir/R4"}
"""Services whose FHIR interface is mounted at this prefix: its operations join the matrix."""
FHIR_PARAMETERS = {
    "resourceType": "Parameters",
    "parameter": [
        {"name": "reason", "valueString": "matrix"},
        {
            "name": "organization",
            "valueIdentifier": {
                "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                "value": "RXA02",
            },
        },
    ],
}
"""The body of every FHIR operation call: a reason and a target."""

READERS = frozenset({"referrer", "assigned", "ops"})
OWNER_AND_OPS = frozenset({"referrer", "ops"})
PARTIES = frozenset({"referrer", "assigned"})

OBJECT_ROUTES: dict[str, frozenset[str]] = {
    "referrals GET /referrals/{referral_id}": READERS,
    "referrals GET /referrals/{referral_id}/history": READERS,
    "referrals GET /referrals/{referral_id}/attachments": READERS,
    "referrals GET /referrals/{referral_id}/attachments/{attachment_id}": READERS,
    "referrals POST /referrals/{referral_id}/attachments": PARTIES,
    "referrals POST /referrals/{referral_id}/amend": frozenset({"referrer"}),
    "referrals POST /referrals/{referral_id}/cancel": frozenset({"referrer"}),
    "referrals POST /referrals/{referral_id}/accept": frozenset({"assigned"}),
    "referrals POST /referrals/{referral_id}/reject": frozenset({"assigned"}),
    "referrals POST /referrals/{referral_id}/redirect": frozenset({"assigned"}),
    "referrals POST /referrals/{referral_id}/start": frozenset({"assigned"}),
    "referrals POST /referrals/{referral_id}/complete": frozenset({"assigned"}),
    "referrals POST /referrals/{referral_id}/reroute": frozenset({"ops"}),
    "referrals POST /referrals/{referral_id}/record-nhs-number": PARTIES,
    "referrals POST /referrals/{referral_id}/request-info": frozenset({"assigned"}),
    "referrals POST /referrals/{referral_id}/provide-info": frozenset({"referrer"}),
    "referrals POST /referrals/{referral_id}/message": frozenset({"referrer", "assigned"}),
    "referrals POST /referrals/{referral_id}/report-progress": frozenset({"assigned"}),
    "referrals POST /referrals/{referral_id}/fail": frozenset({"assigned"}),
    "referrals POST /fhir/R4/Task/{task_id}/$redirect": frozenset({"assigned"}),
    "referrals POST /fhir/R4/ServiceRequest/{referral_id}/$reroute": frozenset({"ops"}),
    # Reference data: every authenticated caller may read an organisation of the directory.
    "routing GET /organisations/{ods_code}": frozenset(CALLERS),
    # A subscription (made by the referrer's system) is its organisation's and ops' to manage.
    **{
        f"notify {route}": OWNER_AND_OPS
        for route in (
            "GET /subscriptions/{subscription_id}",
            "PATCH /subscriptions/{subscription_id}",
            "DELETE /subscriptions/{subscription_id}",
            "POST /subscriptions/{subscription_id}/secret",
            "POST /subscriptions/{subscription_id}/resend",
            "GET /subscriptions/{subscription_id}/events",
            "GET /fhir/R4/Subscription/{subscription_id}",
            "PUT /fhir/R4/Subscription/{subscription_id}",
            "DELETE /fhir/R4/Subscription/{subscription_id}",
            "GET /fhir/R4/Subscription/{subscription_id}/$status",
            "GET /fhir/R4/Subscription/{subscription_id}/$events",
        )
    },
}
"""Routes about one referral, and which callers are entitled to them. The test creates the
referral (routed to RXA01, with an attachment) and fills the path from it."""

PATIENT = {
    "nhs_number": "9434765919",
    "name": "Zebedee Quartermaine",
    "birth_date": "1941-03-07",
    "postcode": "BS5 0AA",
}
SECRETS = (
    "9434765919",
    "Zebedee",
    "1941-03-07",
    "Marmalade ladder fall",
    "G7654321",
    "zebedee-letter",
    "private note",
)
"""The referral's data: none of it may appear in an answer to a caller not entitled."""


@dataclass
class World:
    """Everything a test needs: the services' clients, the issuer, and one referral."""

    issuer: TestIssuer
    clients: dict[str, TestClient]
    ids: dict[str, str]

    def may_call(self, caller: str, service: str) -> bool:
        """Whether the issuer gives this caller tokens for ``service`` at all."""
        return self.issuer.try_token(CALLERS[caller], service) is not None

    def headers(self, caller: str, service: str, **extra: str) -> dict[str, str]:
        """The caller's token for ``service`` or, if the issuer gives it none, the token it has
        for the referrals service (every demo client may call that): a wrong audience."""
        client_id = CALLERS[caller]
        token = self.issuer.try_token(client_id, service) or self.issuer.token(
            client_id, "referrals"
        )
        return {"Authorization": f"Bearer {token}", **extra}

    def version(self) -> int:
        container = self.clients["referrals"].app.state.container  # type: ignore[attr-defined]
        with container.uow() as uow:
            version: int = uow.referrals.get(self.ids["referral_id"]).version
        return version

    def call(self, info: RouteInfo, caller: str | None) -> httpx.Response:
        client = self.clients[info.service]
        app: FastAPI = client.app  # type: ignore[assignment]
        shape = request_shape(app, info)
        missing = [p for p in info.path_params if p not in self.ids]
        assert not missing, (
            f"{info.key}: the matrix cannot fill path parameters {missing}; teach World.ids "
            "how to make one"
        )
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        if info.method != "GET" and {"referral_id", "task_id"} & set(info.path_params):
            headers["If-Match"] = f'"{self.version()}"'
        if "/$" in info.path and info.path.startswith(FHIR_OPERATIONS.get(info.service, "-")):
            shape = RequestShape(json=FHIR_PARAMETERS)
        if shape.content_type:
            headers["Content-Type"] = shape.content_type
        if info.method != "GET" and "subscription_id" in info.path_params:
            headers["If-Match"] = f'"{self.subscription_version()}"'
        if caller is not None:
            headers |= self.headers(caller, info.service)
        response = client.request(
            info.method, info.path.format(**self.ids), headers=headers, **shape.kwargs()
        )
        deleted = info.method == "DELETE" and response.status_code == 204
        if deleted and "subscription_id" in info.path_params:
            # The next entitled caller gets one to delete too.
            self.ids["subscription_id"] = new_subscription(self.issuer, self.clients)
        return response

    def subscription_version(self) -> int:
        container = self.clients["notify"].app.state.container  # type: ignore[attr-defined]
        with container.uow() as uow:
            found = uow.subscriptions.get(self.ids["subscription_id"])
            return found.version if found is not None else 1


FHIR_SUBSCRIPTION = {
    "resourceType": "Subscription",
    "status": "requested",
    "reason": "matrix",
    "criteria": "referrals-sent",
    "channel": {
        "type": "rest-hook",
        # A public address literal: nothing resolves or connects (no delivery worker runs here).
        "endpoint": "https://93.184.216.34/matrix-hook",
        "payload": "application/fhir+json",
    },
}


def new_subscription(issuer: TestIssuer, clients: dict[str, TestClient]) -> str:
    """A FHIR subscription of the referrer's organisation (B81001)."""
    made = clients["notify"].post(
        "/fhir/R4/Subscription",
        json=FHIR_SUBSCRIPTION,
        headers=issuer.headers(CALLERS["referrer"], "notify"),
    )
    assert made.status_code == 201, made.text
    subscription_id: str = made.json()["id"]
    return subscription_id


def discovered() -> list[RouteInfo]:
    routes: list[RouteInfo] = []
    for service, factory in SERVICES.items():
        app = factory("sqlite://")
        api, other = routes_of(service, app)
        if service in FHIR_OPERATIONS:
            api += mounted_operations(service, app, FHIR_OPERATIONS[service])
        other = [r for r in other if f"{service} {getattr(r, 'path', '')}" not in STATIC_MOUNTS]
        assert not other, (
            f"{service} has routes that are not API routes ({other}): the authorisation "
            "matrix cannot see what they need; make them FastAPI routes with IdentityDep"
        )
        routes += api
    return routes


ROUTES = discovered()


def classify(info: RouteInfo) -> str:
    route = f"{info.method} {info.path}"
    if route in PUBLIC:
        return "public"
    assert info.authenticated, (
        f"{info.key} learns no identity: depend on rx_web.identity.IdentityDep or "
        f"require_roles(...), or add {route!r} to PUBLIC in {__name__}"
    )
    roles = info.required_roles
    if roles is not None and Role.PROVIDER not in roles:
        return "staff"
    if info.path_params:
        assert info.key in OBJECT_ROUTES, (
            f"{info.key} takes {info.path_params} but is not classified: add it to OBJECT_ROUTES "
            f"in {__name__} with the callers entitled to it, or guard it with require_roles "
            "(ops/admin) if it has no object-level meaning"
        )
        return "object"
    assert info.key in COLLECTION_ROUTES, (
        f"{info.key} is not classified: add it to COLLECTION_ROUTES in {__name__} with a check "
        "of what each caller may see, or guard it with require_roles (ops/admin)"
    )
    return "collection"


@pytest.fixture
def world(service_client: Callable[[str], TestClient], issuer: TestIssuer) -> World:
    """The three services, and a referral B81001 sent, routed to RXA01, with an attachment."""
    clients = {service: service_client(service) for service in SERVICES}
    body = {
        "referrer": {"organisation": "B81001"},
        "patient": PATIENT,
        "service_type": "urgent-community-response",
        "priority": "urgent",
        "clinical_summary": "Marmalade ladder fall",
        "reason": {"text": "private note"},
    }
    referrals = clients["referrals"]
    gp = issuer.headers("b81001", "referrals", **{"X-Practitioner": "G7654321"})
    created = referrals.post(
        "/referrals", json=body, headers={**gp, "Idempotency-Key": str(uuid.uuid4())}
    )
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    container = referrals.app.state.container  # type: ignore[attr-defined]
    with container.uow() as uow:
        uow.referrals.get(rid).record_routing(
            "RXA01", ProviderType.RAPID_RESPONSE, datetime.now(UTC), "ev-matrix"
        )
        uow.commit()
    attached = referrals.post(
        f"/referrals/{rid}/attachments",
        params={"filename": "zebedee-letter.txt"},
        content=b"Zebedee Quartermaine 9434765919",
        headers={**gp, "Idempotency-Key": str(uuid.uuid4()), "Content-Type": "text/plain"},
    )
    assert attached.status_code == 201, attached.text
    seed_demo(clients["routing"].app.state.container.engine)  # type: ignore[attr-defined]
    [task] = referrals.get(
        "/fhir/R4/Task", params={"focus": f"ServiceRequest/{rid}"}, headers=gp
    ).json()["entry"]
    ids = {
        "referral_id": rid,
        "attachment_id": attached.json()["id"],
        "task_id": task["resource"]["id"],
        # The seeded directory's: an organisation, a locality and its first rule set, a policy.
        "ods_code": "RXA01",
        "code": "east",
        "locality": "east",
        "version": "1",
        "service_type": "urgent-community-response",
        "priority": "urgent",
        "subscription_id": new_subscription(issuer, clients),
    }
    return World(issuer, clients, ids)


def assert_refused(
    response: httpx.Response, who: str, info: RouteInfo, refused: tuple[int, ...] = (403, 404)
) -> None:
    assert response.status_code in refused, (
        f"{info.key} answered {response.status_code} to {who}, who is not entitled: "
        f"{response.text[:300]}"
    )
    leaked = [secret for secret in SECRETS if secret in response.text]
    assert not leaked, f"{info.key} told {who} {leaked}"


# ---- collections: routes without an id, each with its own check -------------------------


def check_worklist(world: World, info: RouteInfo) -> None:
    rid = world.ids["referral_id"]
    client = world.clients["referrals"]
    for view, entitled in (("assigned", {"assigned"}), ("sent", {"referrer"}), ("all", {"ops"})):
        for caller in CALLERS:
            response = client.get(
                "/referrals", params={"view": view}, headers=world.headers(caller, "referrals")
            )
            if caller in entitled:
                assert response.status_code == 200
                assert rid in {r["id"] for r in response.json()["items"]}, (caller, view)
            elif view == "all":
                assert_refused(response, caller, info)
            else:
                assert response.status_code == 200, (caller, view, response.text)
                assert rid not in response.text and not any(s in response.text for s in SECRETS)


def check_create(world: World, info: RouteInfo) -> None:
    """Nobody refers on behalf of another organisation; ops and admin do not refer at all."""
    client = world.clients["referrals"]
    body = request_shape(client.app, info).json  # type: ignore[arg-type]
    for caller in CALLERS:
        if caller == "referrer":
            continue
        response = client.post(
            "/referrals",
            json=body,  # refers for B81001
            headers=world.headers(caller, "referrals", **{"Idempotency-Key": str(uuid.uuid4())}),
        )
        assert response.status_code == 403, (caller, response.text)
    sent = client.get(
        "/referrals", params={"view": "sent"}, headers=world.headers("referrer", "referrals")
    )
    assert len(sent.json()["items"]) == 1, "nothing was created on B81001's behalf"


def check_directory(world: World, info: RouteInfo) -> None:
    """The provider directory and its localities are reference data every authenticated
    caller may read."""
    for caller in CALLERS:
        response = world.clients["routing"].get(info.path, headers=world.headers(caller, "routing"))
        assert response.status_code == 200, (caller, response.text)


def check_subscriptions(world: World, info: RouteInfo) -> None:
    """A provider system lists its own organisation's subscriptions; ops list everyone's."""
    sid = world.ids["subscription_id"]
    client = world.clients["notify"]
    for caller in CALLERS:
        response = client.request(info.method, info.path, headers=world.headers(caller, "notify"))
        if not ROLES[caller] & {Role.PROVIDER, Role.OPS}:
            assert_refused(response, caller, info, (403,))
            continue
        assert response.status_code == 200, (caller, response.text)
        assert (sid in response.text) == (caller in OWNER_AND_OPS), (caller, info.key)


def check_subscribe(world: World, info: RouteInfo) -> None:
    """Every provider system subscribes for its own organisation only; ops and admin do not."""
    client = world.clients["notify"]
    fhir = info.path.startswith("/fhir/")
    body = FHIR_SUBSCRIPTION if fhir else request_shape(client.app, info).json  # type: ignore[arg-type]
    if not fhir:
        body = {**body, "endpoint": "https://93.184.216.34/hook"}
    for caller in CALLERS:
        response = client.post(
            info.path,
            json=body,
            headers=world.headers(caller, "notify", **{"Idempotency-Key": str(uuid.uuid4())}),
        )
        if ROLES[caller] & {Role.OPS, Role.ADMIN}:
            assert response.status_code == 403, (caller, response.text)
        else:
            assert response.status_code == 201, (caller, response.text)
            owner = response.json().get("organisation") or response.json()["reason"].split()[-1]
            assert owner == CALLERS[caller].upper(), (caller, owner)


COLLECTION_ROUTES: dict[str, Callable[[World, RouteInfo], None]] = {
    "referrals GET /referrals": check_worklist,
    "referrals POST /referrals": check_create,
    "routing GET /organisations": check_directory,
    "routing GET /localities": check_directory,
    "notify GET /subscriptions": check_subscriptions,
    "notify GET /fhir/R4/Subscription": check_subscriptions,
    "notify POST /subscriptions": check_subscribe,
    "notify POST /fhir/R4/Subscription": check_subscribe,
}


# ---- the matrix -----------------------------------------------------------------------------


@pytest.mark.parametrize("info", ROUTES, ids=lambda r: r.key)
def test_route(info: RouteInfo, world: World) -> None:
    kind = classify(info)
    if kind == "public":
        return
    anonymous = world.call(info, None)
    assert anonymous.status_code == 401, (
        f"{info.key} answered {anonymous.status_code} without a token"
    )
    if kind == "staff":
        roles = info.required_roles or frozenset()
        assert roles, f"{info.key}: require_roles() with no roles lets nobody in"
        for caller, held in ROLES.items():
            if not held & roles:
                # 401 if the issuer would not even give this caller a token for the service.
                expected = (403,) if world.may_call(caller, info.service) else (401,)
                assert_refused(world.call(info, caller), caller, info, expected)
    elif kind == "object":
        entitled = OBJECT_ROUTES[info.key]
        # Callers not entitled first, so the referral is unchanged when the entitled act.
        for caller in sorted(CALLERS, key=lambda c: c in entitled):
            response = world.call(info, caller)
            if caller in entitled:
                assert response.status_code not in (401, 403, 404), (
                    f"{info.key} refused {caller}, who is entitled: {response.text[:300]}"
                )
            else:
                expected = (403, 404) if world.may_call(caller, info.service) else (401,)
                assert_refused(response, caller, info, expected)
    else:
        COLLECTION_ROUTES[info.key](world, info)


def test_the_matrix_sees_every_kind_of_route() -> None:
    """A guard on the generator itself: if reading the route table broke, the matrix would
    silently test nothing."""
    kinds: dict[str, list[str]] = {}
    for info in ROUTES:
        kinds.setdefault(classify(info), []).append(info.key)
    assert set(kinds) == {"public", "staff", "object", "collection"}
    assert set(OBJECT_ROUTES) <= set(kinds["object"]), "OBJECT_ROUTES names routes that are gone"
    assert set(COLLECTION_ROUTES) <= set(kinds["collection"]), "stale COLLECTION_ROUTES"
    assert "audit GET /audit/entries" in kinds["staff"]
    assert "routing GET /decisions" in kinds["staff"]
    assert "referrals POST /fhir/R4/Task/{task_id}/$redirect" in kinds["object"]


def test_an_unclassified_route_fails_with_advice() -> None:
    """What a developer adding a route sees until they classify it."""
    app = SERVICES["routing"]("sqlite://")

    @app.get("/organisations/{ods_code}/secrets")
    def secrets(ods_code: str, _caller: IdentityDep) -> dict[str, Any]:
        return {}

    @app.get("/open")
    def open_route() -> dict[str, Any]:
        return {}

    api, _ = routes_of("routing", app)
    by_path = {info.path: info for info in api}
    with pytest.raises(AssertionError, match="add it to OBJECT_ROUTES"):
        classify(by_path["/organisations/{ods_code}/secrets"])
    with pytest.raises(AssertionError, match="learns no identity"):
        classify(by_path["/open"])
