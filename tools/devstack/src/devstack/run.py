"""``make run``: broker, topics, demo data and every service process, until Ctrl-C.

Uses the broker named by KAFKA_BOOTSTRAP_SERVERS if set (as given, with the KAFKA_SECURITY_* /
KAFKA_SASL_* credentials of the environment, if any), otherwise starts one on 127.0.0.1:9092
(RX_KAFKA_PORT) with its data under .run/kafka. That broker is secured: SASL/SCRAM, ACLs from
devstack.access, passwords generated on first start into .run/kafka/credentials.json (mode
0600), each service running as its own principal. RX_KAFKA_SECURITY=off starts it without.
Service databases live in .run/data, the issuer's signing keys in .run/data/issuer.
RX_RUN_DIR moves .run elsewhere; ISSUER_PORT, REFERRALS_PORT, ROUTING_PORT, AUDIT_PORT,
NOTIFY_PORT and PORTAL_PORT move the APIs and the portal; the workers' metrics ports follow the
APIs' (the standard ones with the standard API ports, free ones otherwise).

The production shape, ``make run DB=postgres REPLICAS=2`` (``python -m devstack.run --db
postgres --replicas 2``): every service on a PostgreSQL database of its own, on a server this
command installs (first time) and starts with its data under .run/postgres on 127.0.0.1:5433
(RX_POSTGRES_PORT), or on the server RX_POSTGRES_URL names (a role that may create databases);
and N processes of every role, each service's API processes behind a small balancer on the
service's usual port."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from rx_config.kafka_auth import SCRAM_SHA_512, KafkaAuth
from rx_contracts.topics import all_topics, provider_topic
from rx_contracts.vocabulary import ProviderType

from . import credentials
from .access import SERVICES, plan, provider_principal, secure_topics
from .broker import Broker, BrokerError, repo_root
from .postgres import PostgresError, PostgresServer
from .sasl import ADMIN, CONTROLLER, BrokerSecurity
from .stack import DEFAULT_PORTS, WEB_APPS, Stack, StackError, postgres_databases
from .topics import ensure_topics

EXAMPLE = """\
token() {{ curl -s -u "$1:$1-demo-secret" -d grant_type=client_credentials -d "audience=$2" \\
  {issuer}/oauth2/token | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'; }}
curl -s -X POST {referrals}/referrals -H "Authorization: Bearer $(token b81001 referrals)" \\
  -H 'content-type: application/json' -H "Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)" -d '{{
  "referrer": {{"organisation": "B81001", "practitioner": "G1234567"}},
  "patient": {{"nhs_number": "9434765919", "postcode": "BS5 0AA"}},
  "service_type": "urgent-community-response", "priority": "urgent"}}'
curl -s -H "Authorization: Bearer $(token ops audit)" '{audit}/audit/referrals/<id from the first call>/timeline'"""


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def local_broker(data_dir: Path, port: int, secured: bool) -> tuple[Broker, dict[str, str]]:
    """The broker ``make run`` owns, and its passwords by user (empty when not secured).

    A log dir formatted by an unsecured start has no admin user, and one cannot be added
    afterwards: refuse it with the way out rather than wait for a login that never works."""
    if not secured:
        return Broker(data_dir, port=port), {}
    path = data_dir / credentials.FILE_NAME
    if not path.exists() and (data_dir / "logs" / "meta.properties").exists():
        raise BrokerError(
            f"the Kafka data in {data_dir} was created without authentication, so it has no "
            f"admin user; remove that folder to start afresh secured, or keep it and run "
            "with RX_KAFKA_SECURITY=off"
        )
    names = [ADMIN, CONTROLLER, *(p.name for p in plan())]
    passwords = credentials.load_or_create(path, names)
    security = BrokerSecurity(passwords[ADMIN], passwords[CONTROLLER])
    return Broker(data_dir, port=port, security=security), passwords


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.run", description="Run the whole platform until Ctrl-C."
    )
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="the services' databases (default sqlite: files under .run/data)",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="processes per role (default 1)",
    )
    args = parser.parse_args(argv)
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    return args


def start_postgres(root: Path) -> tuple[PostgresServer | None, str]:
    """The PostgreSQL server ``make run`` uses: RX_POSTGRES_URL's, or one it starts (and
    later stops) under .run/postgres; returns (the server it started, a server URL)."""
    external = os.environ.get("RX_POSTGRES_URL")
    if external:
        say("using the PostgreSQL server of RX_POSTGRES_URL")
        return None, external
    port = int(os.environ.get("RX_POSTGRES_PORT") or 5433)
    server = PostgresServer(root / "postgres", port=port)
    if server.is_running():
        raise PostgresError(
            f"a PostgreSQL server is already running from {server.data_dir}; stop it with "
            f"`python -m devstack.postgres stop --data-dir {server.data_dir}`"
        )
    say(f"starting PostgreSQL on 127.0.0.1:{port} (data {server.data_dir})")
    server.start(timeout=120)
    return server, server.url("postgres")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(os.environ.get("RX_RUN_DIR") or repo_root() / ".run")
    ports = {s: int(os.environ.get(f"{s.upper()}_PORT", p)) for s, p in DEFAULT_PORTS.items()}
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    broker: Broker | None = None
    postgres: PostgresServer | None = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    stack: Stack | None = None
    service_auth: dict[str, KafkaAuth] = {}
    passwords: dict[str, str] = {}
    try:
        if not bootstrap:
            secured = os.environ.get("RX_KAFKA_SECURITY", "sasl").lower() != "off"
            port = int(os.environ.get("RX_KAFKA_PORT") or 9092)
            broker, passwords = local_broker(root / "kafka", port, secured)
            say(f"starting Kafka broker on 127.0.0.1:{port}" + (" (SASL, ACLs)" if secured else ""))
            started = time.monotonic()
            broker.start(timeout=90)
            say(f"Kafka ready in {time.monotonic() - started:.1f}s")
            bootstrap = broker.bootstrap_servers
        say(f"creating topics on {bootstrap}")
        if broker is not None and broker.security is not None:
            secure_topics(bootstrap, broker.security.admin_auth, passwords)
            service_auth = {s: KafkaAuth.sasl(s, passwords[s]) for s in SERVICES}
        else:
            ensure_topics(bootstrap, all_topics(), auth=KafkaAuth.from_env())
        databases: dict[str, str] = {}
        if args.db == "postgres":
            postgres, server_url = start_postgres(root)
            databases = postgres_databases(server_url)
            say(f"one PostgreSQL database per service: {', '.join(databases)}")
        stack = Stack(
            root / ("data" if args.db == "sqlite" else "data-postgres"),
            bootstrap,
            ports=ports,
            kafka_auth=service_auth,
            databases=databases,
            replicas=args.replicas,
        )
        count = len(stack.processes())
        say(f"starting the token issuer, {count} service processes and demo data")
        stack.start(timeout=120 * args.replicas)  # a busy machine starts thirty processes slowly
        print_summary(stack, bootstrap, root / "kafka" / credentials.FILE_NAME, passwords)
        while not stop.is_set():
            dead = stack.dead()
            if dead:
                for name in dead:
                    say(f"{name} exited; last lines of its log:\n{stack.tail(name)}")
                return 1
            stop.wait(1)
        return 0
    except (BrokerError, PostgresError, StackError, ValueError) as exc:
        say(str(exc))
        return 1
    finally:
        say("stopping")
        if stack is not None:
            stack.stop()
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.stop()
        say("stopped everything this command started")


def print_summary(
    stack: Stack, bootstrap: str, credentials_file: Path, passwords: Mapping[str, str]
) -> None:
    urls = {service: stack.url(service) for service in DEFAULT_PORTS}
    print()
    print("Referral Exchange is running. Ctrl-C stops everything.")
    print(f"  Kafka               {bootstrap}")
    for service, url in urls.items():
        if service in WEB_APPS:
            continue
        print(
            f"  {service:<10} API    {url}   docs {url}/docs   health {url}/health  ready {url}/ready"
        )
    databases = ", ".join(f"{s}: {_shown(u)}" for s, u in stack.databases.items()) or "SQLite files"
    print(f"  databases           {databases}")
    if stack.replicas > 1:
        print(
            f"  {stack.replicas} processes per role; each API port is a balancer over its API processes:"
        )
        for name, spec in stack.processes().items():
            if spec.is_api:
                print(f"    {name:<22} {stack.ops_url(name)}")
    print("  worker processes serve /metrics, /health and /ready (the APIs on their own ports):")
    for name, spec in stack.processes().items():
        if not spec.is_api:
            print(f"    {name:<22} {stack.ops_url(name)}/metrics")
    print(f"  token endpoint      {urls['issuer']}/oauth2/token   (demo clients: docs/security.md)")
    print(f"  ops console         {urls['audit']}/ops")
    print(f"  portal              {urls['portal']}   (sign in as a demo user: docs/portal.md)")
    print(f"  audit log           {urls['audit']}/audit/entries (ops only)")
    print(f"  checkpoint keys     {urls['audit']}/audit/checkpoint-keys (docs/operations.md)")
    print(f"  routing directory   {urls['routing']}/organisations")
    print(
        f"  subscriptions       {urls['notify']}/subscriptions (webhooks)   "
        f"{urls['notify']}/fhir/R4/Subscription (FHIR)   docs/subscriptions.md"
    )
    print(f"  logs                {stack.data_dir / 'logs'}")
    if passwords:
        print_provider_access(bootstrap, credentials_file)
    print()
    print("Try it:")
    print(EXAMPLE.format(**urls))
    print(flush=True)


def _shown(url: str) -> str:
    """A database URL without its password."""
    return re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", url)


def print_provider_access(bootstrap: str, credentials_file: Path) -> None:
    """How a provider system subscribes to its type's topic on the secured broker."""
    print()
    print(f"Kafka needs SASL_PLAINTEXT + {SCRAM_SHA_512}; passwords are in {credentials_file}.")
    print("A provider system logs in as its type's user, reads only that type's topic and")
    print("names its consumer groups <user> or <user>.<anything>:")
    for provider_type in ProviderType:
        user = provider_principal(provider_type)
        print(f"  {user:<26} reads {provider_topic(provider_type)}")
    print(
        "  e.g. kafka-python: KafkaConsumer('provider.acute.v1', "
        f"bootstrap_servers='{bootstrap}', group_id='provider-acute.my-system',\n"
        f"       security_protocol='SASL_PLAINTEXT', sasl_mechanism='{SCRAM_SHA_512}',\n"
        "       sasl_plain_username='provider-acute', sasl_plain_password=<from the file>)"
    )


if __name__ == "__main__":
    sys.exit(main())
