"""``make run``: broker, topics, demo data and every service process, until Ctrl-C.

Uses the broker named by KAFKA_BOOTSTRAP_SERVERS if set, otherwise starts one on
127.0.0.1:9092 with its data under .run/kafka. Service databases live in .run/data, the
issuer's signing keys in .run/data/issuer. RX_RUN_DIR moves .run elsewhere; ISSUER_PORT,
REFERRALS_PORT, ROUTING_PORT and AUDIT_PORT move the APIs."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from rx_contracts.topics import all_topics

from .broker import Broker, BrokerError, repo_root
from .stack import DEFAULT_PORTS, PROCESSES, Stack, StackError
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


def main() -> int:
    root = Path(os.environ.get("RX_RUN_DIR") or repo_root() / ".run")
    ports = {s: int(os.environ.get(f"{s.upper()}_PORT", p)) for s, p in DEFAULT_PORTS.items()}
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    broker: Broker | None = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    stack: Stack | None = None
    try:
        if not bootstrap:
            broker = Broker(root / "kafka", port=9092)
            say("starting Kafka broker on 127.0.0.1:9092")
            started = time.monotonic()
            broker.start(timeout=90)
            say(f"Kafka ready in {time.monotonic() - started:.1f}s")
            bootstrap = broker.bootstrap_servers
        say(f"creating topics on {bootstrap}")
        ensure_topics(bootstrap, all_topics())
        stack = Stack(root / "data", bootstrap, ports=ports)
        say(f"starting the token issuer, {len(PROCESSES)} service processes and demo data")
        stack.start(timeout=60)
        print_summary(stack, bootstrap)
        while not stop.is_set():
            dead = stack.dead()
            if dead:
                for name in dead:
                    say(f"{name} exited; last lines of its log:\n{stack.tail(name)}")
                return 1
            stop.wait(1)
        return 0
    except (BrokerError, StackError) as exc:
        say(str(exc))
        return 1
    finally:
        say("stopping")
        if stack is not None:
            stack.stop()
        if broker is not None:
            broker.stop()
        say("stopped everything this command started")


def print_summary(stack: Stack, bootstrap: str) -> None:
    urls = {service: stack.url(service) for service in DEFAULT_PORTS}
    print()
    print("Referral Exchange is running. Ctrl-C stops everything.")
    print(f"  Kafka               {bootstrap}")
    for service, url in urls.items():
        print(
            f"  {service:<10} API    {url}   docs {url}/docs   health {url}/health  ready {url}/ready"
        )
    print(f"  token endpoint      {urls['issuer']}/oauth2/token   (demo clients: README, Security)")
    print(f"  audit log           {urls['audit']}/audit/entries")
    print(f"  routing directory   {urls['routing']}/organisations")
    print(f"  logs                {stack.data_dir / 'logs'}")
    print()
    print("Try it:")
    print(EXAMPLE.format(**urls))
    print(flush=True)


if __name__ == "__main__":
    sys.exit(main())
