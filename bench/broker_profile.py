"""The development broker's profile alone, without the stack: a broker started by devstack
(its settings as now, or a variant of bench/broker_idle.py), consumer groups long-polling and
a producer sending one record per request as in broker_idle.py, and Flight Recorder's samples
plus CPU per thread pool over --seconds, drawn as a flame graph (issue 21).

    .venv/bin/python bench/broker_profile.py [--seconds 20] [--rate 60] [--variant now] \
        [--out bench/results/broker-profile]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from broker_idle import VARIANTS, consume
from devstack.broker import Broker, ensure_jars, free_ports
from devstack.topics import ensure_topics
from load_cpu import BROKER, Profiler
from rx_contracts.topics import REFERRAL_EVENTS, all_topics
from rx_messaging.kafka import KafkaPublisher


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="recorded")
    parser.add_argument("--settle", type=float, default=20, help="traffic before recording")
    parser.add_argument("--rate", type=float, default=60, help="records/s, one per request")
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--variant", default="now", choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("bench/results/broker-profile"))
    parser.add_argument("--keep-recording", action="store_true", help="keep kafka-broker.jfr")
    args = parser.parse_args()
    ensure_jars(progress=print)
    flags, config = VARIANTS[args.variant]
    with tempfile.TemporaryDirectory(prefix="rx-broker-profile-") as tmp:
        port, controller = free_ports(2)
        broker = Broker(
            Path(tmp), port=port, controller_port=controller, extra_config=config, jvm_flags=flags
        )
        broker.start(timeout=240)
        stop = threading.Event()
        readers: list[threading.Thread] = []
        try:
            ensure_topics(broker.bootstrap_servers, all_topics())
            readers = [
                threading.Thread(
                    target=consume, args=(broker.bootstrap_servers, f"g{i}", stop, i == 0)
                )
                for i in range(args.groups)
            ]
            for reader in readers:
                reader.start()
            publisher = KafkaPublisher(broker.bootstrap_servers, "bench-relay")
            profiler = Profiler({BROKER: broker.pid or 0}, args.out, 1, args.seconds)
            profiler.keep_recording = args.keep_recording
            sent, start = 0, time.monotonic()
            while time.monotonic() - start < args.settle + args.seconds:
                if sent == int(args.settle * args.rate):
                    profiler.start([BROKER])
                publisher.publish(REFERRAL_EVENTS, [(str(sent).encode(), b"x" * 600, [])])
                sent += 1
                time.sleep(max(0.0, start + sent / args.rate - time.monotonic()))
            profiler.join()
            publisher.close()
            print(f"\n{sent} records sent; written: {', '.join(map(str, profiler.written))}")
        finally:
            stop.set()
            for reader in readers:
                reader.join()
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
