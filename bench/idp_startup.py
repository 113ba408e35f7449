"""Start-up cost of the two identity providers the portal could use: the project's issuer
(OpenID Connect on Authlib) and Keycloak's server distribution, on this machine.

For each start: wall time until the discovery document answers, the CPU seconds the process
tree used until then (less sensitive than wall time to other load on a shared machine), and
its resident memory a few seconds after. The load average is printed with each figure.

    .venv/bin/python bench/idp_startup.py --rounds 3
    .venv/bin/python bench/idp_startup.py --keycloak /path/to/keycloak-26.4.7 --rounds 2

Keycloak is not fetched here: unpack ``org.keycloak:keycloak-quarkus-dist:<v>:tar.gz`` (e.g.
``mvn dependency:copy -Dartifact=org.keycloak:keycloak-quarkus-dist:26.4.7:tar.gz``) and pass
its folder; it runs ``kc.sh start-dev`` (H2 database, first start builds the server)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _tree(pid: int) -> list[int]:
    """``pid`` and every descendant (kc.sh starts java as a child)."""
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == parent:
                    found.append(int(entry.name))
                    frontier.append(int(entry.name))
    return found


def _cpu_and_rss(pid: int) -> tuple[float, float]:
    cpu, rss_kb = 0.0, 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
        rss_kb += int(fields[21]) * PAGE_KB
    return cpu, rss_kb / 1024


def measure(name: str, argv: list[str], env: dict[str, str], url: str, timeout: float) -> None:
    started = time.monotonic()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            ready = None
            cpu = 0.0
            while time.monotonic() - started < timeout:
                try:
                    if httpx.get(url, timeout=1).status_code == 200:
                        ready = time.monotonic() - started
                        cpu, _ = _cpu_and_rss(process.pid)
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            time.sleep(5)
            _, rss = _cpu_and_rss(process.pid)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
    load = os.getloadavg()[0]
    shown = f"{ready:6.1f} s" if ready is not None else "  (not ready)"
    print(
        f"{name:<9} ready {shown}  cpu {cpu:6.1f} s  rss {rss:6.0f} MB  (load {load:.1f})",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keycloak", type=Path, help="an unpacked keycloak-quarkus-dist folder")
    parser.add_argument("--port", type=int, default=18190)
    args = parser.parse_args()
    base = dict(os.environ, RX_ENV="development")
    with tempfile.TemporaryDirectory() as scratch:
        issuer_env = {
            **base,
            "ISSUER_PORT": str(args.port),
            "ISSUER_URL": f"http://127.0.0.1:{args.port}",
            "ISSUER_KEYS_FILE": f"{scratch}/keys.json",
        }
        for _ in range(args.rounds):
            measure(
                "issuer",
                [sys.executable, "-m", "issuer", "api"],
                issuer_env,
                f"http://127.0.0.1:{args.port}/.well-known/openid-configuration",
                120,
            )
    if args.keycloak:
        kc_env = {
            **base,
            "KC_BOOTSTRAP_ADMIN_USERNAME": "admin",
            "KC_BOOTSTRAP_ADMIN_PASSWORD": "admin",
        }
        for _ in range(args.rounds):
            measure(
                "keycloak",
                [str(args.keycloak / "bin" / "kc.sh"), "start-dev", f"--http-port={args.port}"],
                kc_env,
                f"http://127.0.0.1:{args.port}/realms/master/.well-known/openid-configuration",
                900,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
