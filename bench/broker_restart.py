"""How long the development broker takes to come back after a crash, per broker setting: a
fresh broker with the platform's topics is SIGKILLed (as the fault tests do), then started
again on the same data; timed from the start until it serves metadata, and until a record
produced with acks=all is acknowledged (every partition has its leader back). Variants as in
bench/broker_idle.py, alternating per round (issue 21).

    .venv/bin/python bench/broker_restart.py [--rounds 3] [--only "heartbeat 1 s"]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from broker_idle import NOW, VARIANTS
from devstack.broker import Broker, ensure_jars, free_ports
from devstack.topics import ensure_topics
from rx_contracts.topics import REFERRAL_EVENTS, all_topics
from rx_messaging.kafka import KafkaPublisher


def measure(name: str) -> dict[str, Any]:
    flags, config = VARIANTS[name]
    with tempfile.TemporaryDirectory(prefix="rx-broker-restart-") as tmp:
        port, controller = free_ports(2)
        broker = Broker(
            Path(tmp), port=port, controller_port=controller, extra_config=config, jvm_flags=flags
        )
        broker.start(timeout=240)
        try:
            ensure_topics(broker.bootstrap_servers, all_topics())
            broker.kill()
            started = time.monotonic()
            broker.start(timeout=240)
            ready = time.monotonic() - started
            publisher = KafkaPublisher(broker.bootstrap_servers, "bench-restart")
            publisher.publish(REFERRAL_EVENTS, [(b"k", b"v", [])], timeout=60)
            produced = time.monotonic() - started
            publisher.close()
        finally:
            broker.stop()
    return {"variant": name, "ready_s": ready, "first_record_s": produced}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", action="append", help="variant names (now is added)")
    args = parser.parse_args()
    ensure_jars(progress=print)
    names = [NOW, *[n for n in args.only or [] if n != NOW]]
    runs = []
    for n in range(args.rounds):
        for name in names if n % 2 == 0 else reversed(names):
            runs.append(measure(name))
            print(json.dumps(runs[-1]), flush=True)
    print(f"\n{'variant':<28} {'ready s (median)':>17} {'first record s (median)':>24}")
    for name in names:
        mine = [r for r in runs if r["variant"] == name]
        ready = statistics.median(r["ready_s"] for r in mine)
        first = statistics.median(r["first_record_s"] for r in mine)
        print(f"{name:<28} {ready:>17.2f} {first:>24.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
