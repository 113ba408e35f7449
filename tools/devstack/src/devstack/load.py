"""A steady load of realistic referral journeys against a running stack, for fault tests and
the load benchmark (one implementation for both).

GP practices submit referrals at a fixed arrival rate (open loop: each referral has a
scheduled send time, and its API latency counts from then, so a stalled API cannot hide the
queue behind it). Simulated provider systems follow their provider topics like real ones do;
when a referral is routed to one of their organisations they read it, then after a think time
reject it (a share of first offers) or accept, start and complete it.

Every caller behaves as docs/api.md asks of provider systems: a POST that gets no answer, a
5xx or a 429 is retried with the *same* Idempotency-Key until it gets a final answer, so a
fault costs time, never a referral. What each referral went through is kept in a
:class:`Journey` for the caller to assert on or summarise.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kafka.errors import KafkaError
from rx_config.kafka_auth import KafkaAuth
from rx_contracts.vocabulary import OUTCOMES, ServiceType

from .http import Pool, Response
from .providers import ProviderTopics, Tokens, provider_clients

REFERRERS = ("b81001", "l81001", "l81002")
"""Demo GP practices that send referrals (client ids; the organisation in upper case)."""

CASES: tuple[tuple[str, str, str, dict[str, bool]], ...] = (
    ("urgent-community-response", "urgent", "BS5 0AA", {}),
    ("urgent-community-response", "asap", "BS7 8AA", {"frailty": True}),
    ("urgent-community-response", "urgent", "BS3 1AA", {"end_of_life": True}),
    ("social-care-assessment", "routine", "BS1 4DJ", {"care_home_resident": True}),
    ("acute-assessment", "urgent", "BS16 1AA", {}),
    ("gp-review", "routine", "BS13 7AA", {"frailty": True}),
)
"""(service type, priority, postcode, cohort) mixes across the demo localities."""

RETRY_STATUSES = {429, 500, 502, 503, 504}
TRANSPORT_ERRORS = (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError)


@dataclass(frozen=True)
class Endpoints:
    """Where the stack answers."""

    referrals: str
    issuer: str
    bootstrap_servers: str
    kafka_auth: KafkaAuth | None = None
    """A principal that may read every provider topic, for a broker with ACLs."""


@dataclass(frozen=True)
class LoadConfig:
    rate: float = 10.0
    """Referrals submitted per second."""
    journeys: bool = True
    """Simulated providers act on what they are routed."""
    reject_share: float = 0.2
    """Share of first offers a provider declines (routing then offers it elsewhere)."""
    think: tuple[float, float] = (0.2, 1.0)
    """A provider's delay before each step, uniform between these (seconds)."""
    request_timeout: float = 10.0
    give_up_after: float = 180.0
    """A call is retried (same key) until this long after it was first due."""
    connections: int = 48
    seed: int = 7


@dataclass
class Journey:
    """One referral, as its referrer and providers saw it. Times are ``time.monotonic()``."""

    key: str
    referrer: str
    scheduled: float
    id: str | None = None
    answered: float | None = None
    """When the POST got its 201."""
    attempts: list[str] = field(default_factory=list)
    """Each attempt of the POST: its status code, or the transport error's name."""
    replayed: bool = False
    """The 201 came from the Idempotency-Key store (an earlier attempt had committed)."""
    routed: float | None = None
    """When its first ReferralRouted reached a provider topic (seen by the provider)."""
    steps: list[str] = field(default_factory=list)
    """What providers did: ``accept by RXA01``, ``reject by RXA01``…"""
    errors: list[str] = field(default_factory=list)
    """Calls that ended in something other than success."""
    recovered: list[str] = field(default_factory=list)
    """Calls whose answer was lost (no response) and whose retry with the same key was
    answered from the key store: the API had committed, then died before answering."""

    @property
    def api_latency(self) -> float | None:
        return None if self.answered is None else self.answered - self.scheduled


class LoadDriver:
    """Runs the load in a background thread (its own asyncio loop) until stopped."""

    def __init__(
        self,
        endpoints: Endpoints,
        config: LoadConfig | None = None,
        *,
        tokens: Tokens | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.config = config or LoadConfig()
        self.tokens = tokens or Tokens(endpoints.issuer)
        self.journeys: list[Journey] = []
        self._by_id: dict[str, Journey] = {}
        self._early: dict[str, list[tuple[str, int, float]]] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(self.config.seed)
        self._arriving = threading.Event()
        self._stopping = threading.Event()
        self._in_flight = 0
        self._loop = asyncio.new_event_loop()
        self._threads: list[threading.Thread] = []
        self._port = urlsplit(endpoints.referrals).port or 80

    # --- control ---------------------------------------------------------------------------

    def start(self) -> None:
        """Follow the provider topics (from their current end), then start submitting."""
        for client in (*REFERRERS, *provider_clients()):
            self.tokens.get(client)  # fail now, not mid-run, if the issuer refuses one
        follower = ProviderTopics(self.endpoints.bootstrap_servers, self.endpoints.kafka_auth)
        follower.ready()
        self._arriving.set()
        self._threads = [
            threading.Thread(target=self._loop.run_until_complete, args=(self._main(),)),
            threading.Thread(target=self._follow, args=(follower,)),
        ]
        for thread in self._threads:
            thread.start()

    def stop_arrivals(self) -> None:
        """No new referrals; journeys under way carry on. Done on the load's own loop, so once
        this returns no referral is submitted any more (and ``idle`` can be trusted)."""
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._halt(), self._loop).result(timeout=30)
        self._arriving.clear()

    async def _halt(self) -> None:
        self._arriving.clear()

    def idle(self) -> bool:
        """No call of any journey is under way or waiting to be made."""
        return self._in_flight == 0

    def wait_idle(self, timeout: float) -> bool:
        """Stop arrivals and wait (bounded) until every journey's calls are done."""
        self.stop_arrivals()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.1)
        return self.idle()

    def close(self) -> None:
        """Stop everything (journeys under way are abandoned)."""
        self._arriving.clear()
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def __enter__(self) -> LoadDriver:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- results ---------------------------------------------------------------------------

    def accepted(self) -> list[str]:
        """Ids of the referrals the API answered 201 for."""
        with self._lock:
            return [j.id for j in self.journeys if j.id is not None]

    def unanswered(self) -> list[Journey]:
        """Referrals whose POST never got a 201."""
        with self._lock:
            return [j for j in self.journeys if j.id is None]

    def errors(self) -> list[str]:
        with self._lock:
            return [f"{j.key}: {e}" for j in self.journeys for e in j.errors]

    # --- the load --------------------------------------------------------------------------

    async def _main(self) -> None:
        self._pool = Pool(self._port, self.config.connections)
        tasks: set[asyncio.Task[None]] = set()
        self._tasks = tasks
        start, n = time.monotonic(), 0
        while not self._stopping.is_set():
            if not self._arriving.is_set():
                await asyncio.sleep(0.05)
                start, n = time.monotonic(), 0
                continue
            scheduled = start + n / self.config.rate
            n += 1
            await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
            if not self._arriving.is_set():
                continue  # stopped while waiting for this one's turn
            journey = Journey(str(uuid.uuid4()), self._rng.choice(REFERRERS), scheduled)
            with self._lock:
                self.journeys.append(journey)
            self._spawn(tasks, self._submit(journey))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pool.close()

    def _spawn(self, tasks: set[asyncio.Task[None]], work: Any) -> None:
        self._in_flight += 1

        async def run() -> None:
            try:
                await work
            finally:
                self._in_flight -= 1

        task = self._loop.create_task(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _submit(self, journey: Journey) -> None:
        service, priority, postcode, cohort = self._rng.choice(CASES)
        body = {
            "referrer": {"organisation": journey.referrer.upper(), "practitioner": "G1234567"},
            "patient": {"nhs_number": "9434765919", "postcode": postcode},
            "service_type": service,
            "priority": priority,
            "cohort": cohort,
            "consent": {"basis": "implied-direct-care"},  # social care needs a basis
        }
        response = await self._call(
            journey, journey.referrer, "POST", "/referrals", body, key=journey.key, record=True
        )
        if response is None:
            return
        if response.status != 201:
            journey.errors.append(f"POST /referrals: {response.status} {response.body[:200]!r}")
            return
        journey.id = response.json()["id"]
        journey.answered = time.monotonic()
        journey.replayed = response.headers.get("idempotent-replayed") == "true"
        with self._lock:
            self._by_id[journey.id] = journey
            early = self._early.pop(journey.id, [])
        for org, attempt, seen in early:
            self._routed(journey, org, attempt, seen)

    def _routed(self, journey: Journey, org: str, attempt: int, seen: float) -> None:
        """A provider saw the referral routed to ``org`` (called on the loop)."""
        if journey.routed is None:
            journey.routed = seen
        if self.config.journeys:
            self._spawn(self._tasks, self._provide(journey, org, attempt))

    async def _provide(self, journey: Journey, org: str, attempt: int) -> None:
        """What a provider system does with a referral routed to its organisation."""
        client = org.lower()
        await self._think()
        referral = await self._read_assigned(journey, client, org)
        if referral is None:
            return
        version = referral["version"]
        # The first outcome the service type allows (each type has its own vocabulary).
        outcome = OUTCOMES[ServiceType(referral["service_type"])][0].value
        if attempt == 1 and self._rng.random() < self.config.reject_share:
            reason = {"reason_code": "not-available-within-timescale", "reason_text": "No staff"}
            await self._act(journey, client, "reject", version, reason)
            return
        for action, body in (
            ("accept", None),
            ("start", None),
            ("complete", {"outcome": outcome, "summary": "Done as asked"}),
        ):
            version = await self._act(journey, client, action, version, body)
            if version is None:
                return
            await self._think()

    async def _read_assigned(self, journey: Journey, client: str, org: str) -> Any:
        """The referral once the referrals service shows it assigned to ``org`` (it learns of
        the decision from its own consumer, maybe after the provider did); None if it moved on."""
        deadline = time.monotonic() + self.config.give_up_after
        while time.monotonic() < deadline and not self._stopping.is_set():
            response = await self._call(journey, client, "GET", f"/referrals/{journey.id}")
            if response is None:
                return None
            if response.status == 200:
                referral = response.json()
                if referral["status"] == "routed" and referral["assigned_org"] == org:
                    return referral
                if referral["status"] != "submitted":
                    return None  # routed elsewhere since, or closed
            elif response.status != 404:  # 404: not visible to this organisation yet
                journey.errors.append(f"GET as {client}: {response.status}")
                return None
            await asyncio.sleep(0.2)
        journey.errors.append(f"never shown as assigned to {org}")
        return None

    async def _act(
        self, journey: Journey, client: str, action: str, version: int, body: Any
    ) -> int | None:
        response = await self._call(
            journey,
            client,
            "POST",
            f"/referrals/{journey.id}/{action}",
            body,
            key=str(uuid.uuid4()),
            if_match=version,
        )
        if response is None:
            return None
        if response.status != 200:
            journey.errors.append(
                f"{action} by {client}: {response.status} {response.body[:200]!r}"
            )
            return None
        journey.steps.append(f"{action} by {client.upper()}")
        return int(response.json()["version"])

    async def _call(
        self,
        journey: Journey,
        client: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        if_match: int | None = None,
        record: bool = False,
    ) -> Response | None:
        """One call, retried (same key) on no answer, 5xx or 429 until it is final or the
        journey gives up; None when it gave up."""
        deadline = time.monotonic() + self.config.give_up_after
        backoff, lost = 0.05, False
        while not self._stopping.is_set():
            headers = {
                "Authorization": f"Bearer {self.tokens.get(client)}",
                "X-Practitioner": "G1234567",
            }
            if key is not None:
                headers["Idempotency-Key"] = key
            if if_match is not None:
                headers["If-Match"] = f'"{if_match}"'
            conn, keep, outcome = None, False, ""
            response: Response | None = None
            try:
                conn = await self._pool.acquire()
                answer, keep = await asyncio.wait_for(
                    conn.request(method, path, headers, body), self.config.request_timeout
                )
                response, outcome = answer, str(answer.status)
            except TRANSPORT_ERRORS as exc:
                outcome, lost = type(exc).__name__, True
            finally:
                await self._pool.release(conn, keep)
            if record:
                journey.attempts.append(outcome)
            if response is not None and response.status not in RETRY_STATUSES:
                if lost and response.headers.get("idempotent-replayed") == "true":
                    journey.recovered.append(f"{method} {path}")
                return response
            if time.monotonic() + backoff > deadline:
                journey.errors.append(f"{method} {path} gave up after {outcome}")
                return None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)
        return None

    async def _think(self) -> None:
        await asyncio.sleep(self._rng.uniform(*self.config.think))

    # --- the provider topics ---------------------------------------------------------------

    def _follow(self, follower: ProviderTopics) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    routed = follower.poll()
                except KafkaError:
                    time.sleep(0.2)  # the broker is away: the client reconnects on a later poll
                    continue
                for referral_id, org, attempt in routed:
                    self._loop.call_soon_threadsafe(
                        self._seen_routed, referral_id, org, attempt, time.monotonic()
                    )
        finally:
            follower.close()

    def _seen_routed(self, referral_id: str, org: str, attempt: int, seen: float) -> None:
        with self._lock:
            journey = self._by_id.get(referral_id)
            if journey is None:
                # Not (yet) ours: another stack's, or routed before our POST got its answer.
                self._early.setdefault(referral_id, []).append((org, attempt, seen))
                return
        self._routed(journey, org, attempt, seen)
