"""docker-compose.yml agrees with the platform's own definitions: the processes and setup steps
of ``devstack.stack``, the settings each service reads, the topics of ``rx_contracts`` and the
databases made by ``infra/postgres/init-databases.sh``; and the Dockerfile can run them.

Plain unit tests: the files are parsed, not run, so they need no Docker engine. Each check is
something a user of ``docker compose up`` would otherwise find out the hard way.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from devstack.access import password_variable, passwords_from_environment, plan
from devstack.stack import (
    DEFAULT_PORTS,
    ISSUER,
    PROCESSES,
    SETUP_STEPS,
    WEB_APPS,
    ProcessSpec,
    issuer_environment,
    portal_environment,
    service_environment,
)
from rx_config.kafka_auth import KafkaAuth
from rx_contracts.topics import all_topics
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
INIT_SCRIPT = ROOT / "infra" / "postgres" / "init-databases.sh"
LB_CONFIG = ROOT / "infra" / "lb" / "nginx.conf"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

INFRASTRUCTURE = ("kafka", "kafka-topics", "kafka-access", "postgres", "prometheus", "lb")
SPECS = (*SETUP_STEPS, *PROCESSES)
"""The services' processes and steps; the issuer (no database, no Kafka) has tests of its own."""
ALL_SPECS = (ISSUER, *SPECS)
SERVICES = sorted({spec.service for spec in SPECS})
APIS = [spec for spec in PROCESSES if spec.is_api]
WORKERS = [spec for spec in PROCESSES if not spec.is_api]

HEALTHY = "service_healthy"
COMPLETED = "service_completed_successfully"


def _ids(spec: ProcessSpec) -> str:
    return spec.name


# ---- reading the compose file the way compose does ------------------------------------------

_VARIABLE = re.compile(r"\$\$|\$\{(?P<braced>[^}]*)\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value: Any) -> str:
    """``value`` as compose passes it when no variable is set: defaults used, ``$$`` → ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        expression = match.group("braced") or ""
        if "?" in expression:
            return ""  # ${VAR:?error}: compose would refuse to start; treat as unset
        for separator in (":-", "-"):
            if separator in expression:
                return expression.split(separator, 1)[1]
        return ""  # unset, no default: compose substitutes an empty string

    return _VARIABLE.sub(replace, str(value))


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment in either compose syntax (mapping or ``KEY=VALUE`` list)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(key): interpolate("" if value is None else value) for key, value in raw.items()}


def dependencies(service: Mapping[str, Any]) -> dict[str, str]:
    """``depends_on`` as name → condition (the short list syntax means service_started)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {
        name: (options or {}).get("condition", "service_started") for name, options in raw.items()
    }


def healthcheck_argv(service: Mapping[str, Any]) -> list[str]:
    """The healthcheck command as argv; empty if there is none or it is disabled."""
    check = service.get("healthcheck") or {}
    test = check.get("test")
    if check.get("disable") or not test or test == ["NONE"]:
        return []
    if isinstance(test, str):
        return shlex.split(interpolate(test))
    kind, *rest = [interpolate(part) for part in test]
    if kind == "CMD-SHELL":
        return shlex.split(" ".join(rest))
    return rest


def container_ports(service: Mapping[str, Any]) -> set[int]:
    """Container ports a service publishes, from short (``[IP:]HOST:CONTAINER``) or long syntax."""
    ports = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(interpolate(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(compose, dict) and isinstance(compose.get("services"), dict), (
        f"{COMPOSE_FILE.name} has no 'services' mapping"
    )
    return compose["services"]


def service_of(services: Mapping[str, Any], name: str) -> dict[str, Any]:
    assert name in services, f"{COMPOSE_FILE.name} has no service {name!r}"
    return services[name]


def expected_environment(spec: ProcessSpec) -> dict[str, str]:
    """What devstack gives the service locally; compose must set the same keys."""
    env = service_environment(
        spec.service,
        data_dir=Path("/data"),
        bootstrap_servers="kafka:9092",
        port=DEFAULT_PORTS[spec.service],
    )
    if spec.service == "portal":
        env |= portal_environment(urls={s: "http://x" for s in DEFAULT_PORTS})
    return env


def init_script_databases() -> dict[str, str]:
    """Database → owner role, from the CREATE DATABASE statements of the init script."""
    text = INIT_SCRIPT.read_text()
    found = re.findall(
        r'CREATE\s+DATABASE\s+"?(\w+)"?(?:\s+WITH)?\s+OWNER\s*=?\s*"?(\w+)"?', text, re.I
    )
    return dict(found)


# ---- the set of services --------------------------------------------------------------------


def test_every_compose_service_is_infrastructure_or_a_known_process(services):
    known = {*INFRASTRUCTURE, *(spec.name for spec in ALL_SPECS)}
    unknown = sorted(set(services) - known)
    assert not unknown, (
        f"compose services {unknown} are neither infrastructure {list(INFRASTRUCTURE)} nor a "
        "process/setup step of devstack.stack, so nothing here checks them: add them to "
        "PROCESSES/SETUP_STEPS or to INFRASTRUCTURE in this test"
    )


@pytest.mark.parametrize("spec", ALL_SPECS, ids=_ids)
def test_process_runs_its_command(services, spec):
    service = service_of(services, spec.name)
    expected = ["python", "-m", spec.service, spec.role]
    assert service.get("command") == expected, (
        f"{spec.name}: command is {service.get('command')!r}, expected {expected!r} "
        "(the image has no CMD, so the command picks the process)"
    )


def test_app_processes_use_the_image_built_from_this_repo(services):
    built = {
        service.get("image")
        for service in services.values()
        if isinstance(service.get("build"), dict | str)
    }
    for spec in ALL_SPECS:
        service = service_of(services, spec.name)
        build = service.get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        if context is not None:
            assert (ROOT / context).resolve() == ROOT, (
                f"{spec.name}: builds from {context!r}, expected the repo root (the Dockerfile "
                "copies the whole uv workspace)"
            )
        else:
            assert service.get("image") in built, (
                f"{spec.name}: image {service.get('image')!r} is neither built here nor built "
                "by another service, so compose would try to pull it from a registry"
            )


# ---- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_process_gets_every_setting_its_service_reads(services, spec):
    env = environment(service_of(services, spec.name))
    prefix = spec.service.upper()
    missing = sorted(set(expected_environment(spec)) - set(env))
    assert not missing, (
        f"{spec.name}: environment lacks {missing}; without them the service falls back to its "
        "local defaults (SQLite file, 127.0.0.1 Kafka)"
    )
    port = str(DEFAULT_PORTS[spec.service])
    assert env[f"{prefix}_PORT"] == port, (
        f"{spec.name}: {prefix}_PORT is {env[f'{prefix}_PORT']!r}, expected DEFAULT_PORTS "
        f"value {port!r}"
    )
    assert env[f"{prefix}_HOST"] == "0.0.0.0", (
        f"{spec.name}: {prefix}_HOST is {env[f'{prefix}_HOST']!r}; inside a container it must be "
        "0.0.0.0 or the published port and the healthcheck cannot reach it"
    )
    if spec.service in WEB_APPS:
        return  # no Kafka, no workers
    assert env[f"{prefix}_CONSUMER_GROUP"] == spec.service, (
        f"{spec.name}: {prefix}_CONSUMER_GROUP is {env[f'{prefix}_CONSUMER_GROUP']!r}, expected "
        f"{spec.service!r} (every process of a service must share its consumer group)"
    )
    assert env[f"{prefix}_HEARTBEAT_DIR"].startswith("/"), (
        f"{spec.name}: {prefix}_HEARTBEAT_DIR {env[f'{prefix}_HEARTBEAT_DIR']!r} should be an "
        "absolute path the non-root user can write (e.g. /tmp/heartbeats)"
    )
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", (
        f"{spec.name}: KAFKA_BOOTSTRAP_SERVERS is {env['KAFKA_BOOTSTRAP_SERVERS']!r}, expected "
        "the kafka service's internal listener 'kafka:9092'"
    )


def test_issuer_is_configured_published_and_healthchecked(services):
    issuer = service_of(services, ISSUER.name)
    env = environment(issuer)
    missing = sorted(set(issuer_environment(data_dir=Path("/data"), port=8000)) - set(env))
    assert not missing, f"{ISSUER.name}: environment lacks {missing}"
    assert env["ISSUER_HOST"] == "0.0.0.0", f"{ISSUER.name}: ISSUER_HOST must be 0.0.0.0"
    port = DEFAULT_PORTS["issuer"]
    assert env["ISSUER_PORT"] == str(port) and port in container_ports(issuer), (
        f"{ISSUER.name}: should listen on and publish {port}"
    )
    assert re.search(rf":{port}/(ready|health)\b", " ".join(healthcheck_argv(issuer))), (
        f"{ISSUER.name}: healthcheck does not request /ready or /health on port {port}"
    )
    keys = env["ISSUER_KEYS_FILE"]
    mounts = [interpolate(v).split(":") for v in issuer.get("volumes") or [] if isinstance(v, str)]
    assert any(len(m) > 1 and keys.startswith(m[1].rstrip("/") + "/") for m in mounts), (
        f"{ISSUER.name}: ISSUER_KEYS_FILE {keys} is not on a volume; a restart would make new "
        "keys and every token issued before it would be refused"
    )


def test_the_portal_signs_people_in_at_the_issuer_and_calls_the_api(services):
    env = environment(service_of(services, "portal-api"))
    issuer = environment(service_of(services, ISSUER.name))
    assert env["PORTAL_ISSUER_INTERNAL_URL"] == issuer["ISSUER_URL"], (
        "portal-api: PORTAL_ISSUER_INTERNAL_URL must be the issuer the tokens name"
    )
    assert env["PORTAL_ISSUER_URL"] == issuer["ISSUER_PUBLIC_URL"], (
        "portal-api: browsers must be sent to the issuer's published address"
    )
    published = DEFAULT_PORTS["issuer"]
    assert issuer["ISSUER_PUBLIC_URL"].endswith(f":{published}"), issuer["ISSUER_PUBLIC_URL"]
    assert env["PORTAL_URL"].endswith(f":{DEFAULT_PORTS['portal']}")
    assert env["PORTAL_REFERRALS_URL"] == f"http://lb:{DEFAULT_PORTS['referrals']}", (
        "portal-api: calls the referrals API through the load balancer, like everyone"
    )
    assert env["RX_ENV"] == issuer["RX_ENV"]
    assert dependencies(service_of(services, "portal-api")) == {
        "postgres": HEALTHY,
        ISSUER.name: HEALTHY,
        "referrals-api": HEALTHY,
        "lb": HEALTHY,
    }
    assert env["PORTAL_SESSION_SECRET"], (
        "portal-api: its replicas need one session secret, or each refuses the others' cookies"
    )


@pytest.mark.parametrize("spec", [s for s in PROCESSES if s.service not in WEB_APPS], ids=_ids)
def test_process_trusts_the_issuer_compose_runs(services, spec):
    env = environment(service_of(services, spec.name))
    issuer_url = environment(service_of(services, ISSUER.name))["ISSUER_URL"]
    assert env.get("RX_TOKEN_ISSUER") == issuer_url, (
        f"{spec.name}: RX_TOKEN_ISSUER is {env.get('RX_TOKEN_ISSUER')!r}, but the issuer signs "
        f"tokens as {issuer_url!r}; every token would be refused"
    )
    assert issuer_url.startswith(f"http://{ISSUER.name}:"), (
        f"the issuer's ISSUER_URL {issuer_url!r} is not reachable from the other containers"
    )
    assert env.get("RX_ENV") == environment(service_of(services, ISSUER.name)).get("RX_ENV")
    if spec.is_api:
        assert dependencies(service_of(services, spec.name)).get(ISSUER.name) == HEALTHY, (
            f"{spec.name}: should wait for {ISSUER.name} to be healthy (it fetches its keys)"
        )


def test_each_service_has_a_database_of_its_own(services):
    databases = init_script_databases()
    postgres_env = environment(service_of(services, "postgres"))
    used: dict[str, str] = {}
    for service in SERVICES:
        variable = f"{service.upper()}_DATABASE_URL"
        urls = {
            environment(service_of(services, spec.name)).get(variable)
            for spec in SPECS
            if spec.service == service
        }
        assert len(urls) == 1, (
            f"{service}: its processes disagree on {variable}: {sorted(map(str, urls))}"
        )
        url = make_url(urls.pop())
        assert url.drivername.startswith("postgresql"), (
            f"{service}: {variable} uses {url.drivername!r}, expected PostgreSQL "
            "(postgresql+psycopg://)"
        )
        assert (url.host, url.port or 5432) == ("postgres", 5432), (
            f"{service}: {variable} points at {url.host}:{url.port}, expected the postgres "
            "service at postgres:5432"
        )
        assert url.database in databases, (
            f"{service}: {variable} names database {url.database!r}, but {INIT_SCRIPT.name} "
            f"creates only {sorted(databases)}"
        )
        assert url.database not in used, (
            f"{service} and {used.get(url.database)} share database {url.database!r}; each "
            "service must own its own"
        )
        used[url.database] = service
        assert url.username == databases[url.database], (
            f"{service}: {variable} logs in as {url.username!r}, but database {url.database!r} "
            f"is owned by {databases[url.database]!r}"
        )
        password_variable = f"{service.upper()}_DB_PASSWORD"
        assert postgres_env.get(password_variable) == url.password, (
            f"{service}: the password in {variable} ({url.password!r}) differs from the "
            f"{password_variable} postgres creates the role with "
            f"({postgres_env.get(password_variable)!r}); logins would fail"
        )


def test_init_script_creates_one_role_per_database_and_is_mounted(services):
    assert INIT_SCRIPT.is_file(), f"{INIT_SCRIPT} is missing"
    databases = init_script_databases()
    assert len(databases) >= len(SERVICES), (
        f"{INIT_SCRIPT.name} creates databases {sorted(databases)}; expected one per service "
        f"{SERVICES}"
    )
    owners = list(databases.values())
    assert len(set(owners)) == len(owners), (
        f"{INIT_SCRIPT.name}: one role owns several databases {databases}; each service's role "
        "should own only its own"
    )
    roles = set(re.findall(r'CREATE\s+(?:ROLE|USER)\s+"?(\w+)"?', INIT_SCRIPT.read_text(), re.I))
    assert set(owners) <= roles, (
        f"{INIT_SCRIPT.name}: owners {sorted(set(owners) - roles)} are never created (CREATE ROLE)"
    )
    mounts = [
        interpolate(v).split(":")
        for v in service_of(services, "postgres").get("volumes") or []
        if isinstance(v, str)
    ]
    assert any(
        len(m) > 1
        and m[0].endswith("infra/postgres/init-databases.sh")
        and m[1].startswith("/docker-entrypoint-initdb.d/")
        for m in mounts
    ), f"postgres: {INIT_SCRIPT.name} is not mounted into /docker-entrypoint-initdb.d/"


# ---- health and start order ------------------------------------------------------------------


def lb_routes() -> dict[int, str]:
    """Port the load balancer listens on -> the ``host:port`` its upstream resolves."""
    text = LB_CONFIG.read_text()
    upstreams = dict(
        re.findall(r"upstream\s+([\w-]+)\s*\{[^}]*?server\s+([\w.-]+:\d+)\s+resolve", text)
    )
    servers = re.findall(
        r"listen\s+(\d+);\s*location\s*/\s*\{\s*proxy_pass\s+http://([\w-]+);", text
    )
    return {int(port): upstreams[name] for port, name in servers if name in upstreams}


@pytest.mark.parametrize("spec", APIS, ids=_ids)
def test_api_sits_behind_the_load_balancer_on_its_port_and_has_a_healthcheck(services, spec):
    service = service_of(services, spec.name)
    port = DEFAULT_PORTS[spec.service]
    assert not container_ports(service), (
        f"{spec.name}: publishes {service.get('ports')}; its replicas would fight over the host "
        "port: the load balancer publishes it"
    )
    assert port in container_ports(service_of(services, "lb")), f"lb: does not publish {port}"
    assert lb_routes().get(port) == f"{spec.name}:{port}", (
        f"{LB_CONFIG.name}: port {port} is not routed to {spec.name}:{port} ({lb_routes()})"
    )
    command = " ".join(healthcheck_argv(service))
    assert command, f"{spec.name}: has no healthcheck"
    assert re.search(rf":{port}/(ready|health)\b", command), (
        f"{spec.name}: healthcheck {command!r} does not request /ready or /health on port {port}"
    )
    assert not re.search(r"\b(curl|wget)\b", command), (
        f"{spec.name}: healthcheck uses curl/wget, which python:3.11-slim does not have"
    )


@pytest.mark.parametrize("spec", PROCESSES, ids=_ids)
def test_every_api_and_worker_runs_several_replicas(services, spec):
    replicas = (service_of(services, spec.name).get("deploy") or {}).get("replicas", 1)
    assert int(replicas) >= 2, f"{spec.name}: deploy.replicas is {replicas}, not several"


RATE_LIMITED = [p for p in PROCESSES if p.is_api and p.service != "portal"]
"""The APIs with per-client rate limits (the portal's callers are people behind the issuer)."""


@pytest.mark.parametrize("spec", RATE_LIMITED, ids=_ids)
def test_each_api_replica_allows_its_share_of_the_rate_limit(services, spec):
    service = service_of(services, spec.name)
    replicas = int((service.get("deploy") or {}).get("replicas", 1))
    shares = int((service.get("environment") or {}).get("RX_RATE_LIMIT_PROCESSES", 1))
    assert shares == replicas, (
        f"{spec.name}: {replicas} replicas each allowing 1/{shares} of the rate limit: a client "
        f"would get {replicas / shares:g} times the limit"
    )


def test_the_issuer_and_setup_steps_run_once(services):
    for spec in (ISSUER, *SETUP_STEPS):
        replicas = (service_of(services, spec.name).get("deploy") or {}).get("replicas", 1)
        assert int(replicas) == 1, f"{spec.name}: one signing key file / one-off step"


def test_the_load_balancer_config_is_mounted_and_it_has_a_healthcheck(services):
    lb = service_of(services, "lb")
    mounts = [interpolate(v).split(":") for v in lb.get("volumes") or [] if isinstance(v, str)]
    assert ["./infra/lb/nginx.conf", "/etc/nginx/nginx.conf", "ro"] in mounts
    command = " ".join(healthcheck_argv(lb))
    assert re.search(r"127\.0\.0\.1:(\d+)/healthz", command), command
    port = re.search(r"127\.0\.0\.1:(\d+)/healthz", command)
    assert port is not None and f"listen {port.group(1)}" in LB_CONFIG.read_text()
    assert sorted(lb_routes()) == sorted(DEFAULT_PORTS[s.service] for s in APIS), (
        "every API port, and only those, goes through the load balancer"
    )


def test_replicated_notify_workers_do_not_share_a_lease_name(services):
    for name in ("notify-worker", "notify-relay"):
        assert "NOTIFY_WORKER_NAME" not in environment(service_of(services, name)), (
            f"{name}: a fixed NOTIFY_WORKER_NAME makes its replicas take each other's leases"
        )


@pytest.mark.parametrize("spec", WORKERS, ids=_ids)
def test_worker_healthcheck_watches_its_heartbeat_file(services, spec):
    service = service_of(services, spec.name)
    argv = healthcheck_argv(service)
    assert "rx_messaging.healthcheck" in argv, (
        f"{spec.name}: healthcheck {argv!r} does not run 'python -m rx_messaging.healthcheck'"
    )
    # rx_messaging.runner names the file <service>-<role>.alive inside <SERVICE>_HEARTBEAT_DIR.
    heartbeat_dir = environment(service).get(f"{spec.service.upper()}_HEARTBEAT_DIR", "")
    expected = f"{heartbeat_dir.rstrip('/')}/{spec.name}.alive"
    arguments = argv[argv.index("rx_messaging.healthcheck") + 1 :]
    assert arguments and arguments[0] == expected, (
        f"{spec.name}: healthcheck watches {arguments[:1]}, but the worker writes {expected!r}; "
        "it would never become healthy"
    )


@pytest.mark.parametrize("spec", [s for s in PROCESSES if s.service not in WEB_APPS], ids=_ids)
def test_process_starts_after_kafka_topics_and_postgres(services, spec):
    service = service_of(services, spec.name)
    depends = dependencies(service)
    wanted = {
        "kafka": HEALTHY,
        "kafka-topics": COMPLETED,
        "kafka-access": COMPLETED,
        "postgres": HEALTHY,
    }
    wanted |= {step.name: COMPLETED for step in SETUP_STEPS if step.service == spec.service}
    wrong = [
        f"{name} ({depends.get(name) or 'missing'}, expected {condition})"
        for name, condition in wanted.items()
        if depends.get(name) != condition
    ]
    assert not wrong, f"{spec.name}: depends_on is wrong for {', '.join(wrong)}"
    assert service.get("restart") in ("unless-stopped", "always"), (
        f"{spec.name}: restart is {service.get('restart')!r}; a long-running process that dies "
        "would stay down (use unless-stopped)"
    )


@pytest.mark.parametrize("spec", SETUP_STEPS, ids=_ids)
def test_setup_step_runs_once_after_postgres(services, spec):
    service = service_of(services, spec.name)
    assert dependencies(service).get("postgres") == HEALTHY, (
        f"{spec.name}: should depend on postgres with condition {HEALTHY}"
    )
    assert str(service.get("restart", "no")) in ("no", "on-failure"), (
        f"{spec.name}: restart is {service.get('restart')!r}; a one-off step that is restarted "
        "after finishing never counts as completed for the processes waiting on it"
    )


@pytest.mark.parametrize("name", ["kafka", "postgres"])
def test_infrastructure_waited_on_has_a_healthcheck(services, name):
    assert healthcheck_argv(service_of(services, name)), (
        f"{name}: has no healthcheck, so depends_on condition {HEALTHY} can never be met"
    )


# ---- Kafka -----------------------------------------------------------------------------------


def _listeners(value: str) -> dict[str, str]:
    """``NAME://host:port,...`` → {NAME: host:port}."""
    return dict(item.strip().split("://", 1) for item in value.split(",") if item.strip())


def test_kafka_is_configured_as_a_single_node(services):
    env = environment(service_of(services, "kafka"))
    required = [
        "CLUSTER_ID",
        "KAFKA_NODE_ID",
        "KAFKA_PROCESS_ROLES",
        "KAFKA_LISTENERS",
        "KAFKA_ADVERTISED_LISTENERS",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
        "KAFKA_CONTROLLER_LISTENER_NAMES",
        "KAFKA_INTER_BROKER_LISTENER_NAME",
        "KAFKA_LOG_DIRS",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE",
    ]
    missing = [key for key in required if key not in env]
    assert not missing, f"kafka: environment lacks {missing} (image defaults cannot be relied on)"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false", (
        "kafka: KAFKA_AUTO_CREATE_TOPICS_ENABLE must be 'false' so a misspelt topic fails "
        "instead of being created empty"
    )
    not_one = {
        key: value
        for key, value in env.items()
        if key.endswith(("_REPLICATION_FACTOR", "_MIN_ISR")) and value != "1"
    }
    assert not not_one, (
        f"kafka: a single broker needs replication factors and min ISR of 1: {not_one}"
    )
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, (
        f"kafka: KAFKA_PROCESS_ROLES is {env['KAFKA_PROCESS_ROLES']!r}, expected broker,controller"
    )


def test_kafka_listeners_are_consistent_and_reachable_by_the_services(services):
    env = environment(service_of(services, "kafka"))
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(
        item.split(":", 1) for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    unmapped = sorted(set(listeners) - set(protocols))
    assert not unmapped, f"kafka: listeners {unmapped} have no entry in the security protocol map"
    assert set(advertised) <= set(listeners), (
        f"kafka: advertised listeners {sorted(set(advertised) - set(listeners))} are not listeners"
    )
    assert controller in listeners and controller not in advertised, (
        f"kafka: controller listener {controller!r} must be a listener and not advertised"
    )
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised, (
        f"kafka: inter-broker listener {env['KAFKA_INTER_BROKER_LISTENER_NAME']!r} is not "
        "advertised"
    )
    for spec in SPECS:
        address = environment(service_of(services, spec.name)).get("KAFKA_BOOTSTRAP_SERVERS")
        if address is not None:
            assert address in advertised.values(), (
                f"{spec.name}: KAFKA_BOOTSTRAP_SERVERS {address!r} is not one of kafka's "
                f"advertised addresses {sorted(advertised.values())}"
            )


def test_topics_job_creates_every_topic_with_its_partitions(services):
    job = service_of(services, "kafka-topics")
    assert dependencies(job).get("kafka") == HEALTHY, (
        f"kafka-topics: should depend on kafka being {HEALTHY}"
    )
    assert str(job.get("restart", "no")) in ("no", "on-failure"), (
        f"kafka-topics: restart is {job.get('restart')!r}; the processes wait for it to complete"
    )
    # The job loops over TOPICS ("name:partitions" words) with kafka-topics.sh --create.
    raw_command = job.get("command")
    raw = " ".join(raw_command) if isinstance(raw_command, list) else str(raw_command or "")
    assert "$" not in raw.replace("$$", ""), (
        "kafka-topics: the command has a single '$', which compose substitutes from the host "
        "environment before the shell sees it; write '$$' for shell variables"
    )
    script = interpolate(raw)
    for needed in ("kafka-topics.sh", "--create", "--if-not-exists", "--partitions", "$TOPICS"):
        assert needed in script, f"kafka-topics: command does not use {needed!r}: {script!r}"
    declared: dict[str, int] = {}
    for word in environment(job).get("TOPICS", "").split():
        name, _, partitions = word.partition(":")
        assert partitions.isdigit(), f"kafka-topics: TOPICS entry {word!r} is not name:partitions"
        declared[name] = int(partitions)
    expected = all_topics()
    missing = sorted(set(expected) - set(declared))
    extra = sorted(set(declared) - set(expected))
    wrong = {
        name: f"{declared[name]} partitions (expected {count})"
        for name, count in expected.items()
        if name in declared and declared[name] != count
    }
    problems = [
        *(f"does not create {name} (in all_topics())" for name in missing),
        *(f"{name} has {partitions}" for name, partitions in wrong.items()),
        *(f"creates {name}, which all_topics() does not know (renamed?)" for name in extra),
    ]
    assert not problems, "kafka-topics: " + "; ".join(problems)


# ---- Kafka authentication and ACLs -------------------------------------------------------------


def _script(service: Mapping[str, Any]) -> str:
    """A service's command as the shell sees it (``$$`` → ``$``, defaults substituted)."""
    raw = service.get("command")
    return interpolate(" ".join(raw) if isinstance(raw, list) else str(raw or ""))


def _jaas_password(jaas: str, user: str) -> str | None:
    match = re.search(rf'username="{user}"\s+password="([^"]*)"', jaas)
    return match.group(1) if match else None


def _access_job_passwords(services: Mapping[str, Any]) -> dict[str, str]:
    env = environment(service_of(services, "kafka-access"))
    return {p.name: env.get(password_variable(p.name), "") for p in plan()}


def test_kafka_authenticates_every_listener_and_denies_what_no_acl_allows(services):
    env = environment(service_of(services, "kafka"))
    protocols = dict(
        item.split(":", 1) for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    unauthenticated = sorted(name for name, protocol in protocols.items() if "SASL" not in protocol)
    assert not unauthenticated, f"kafka: listeners {unauthenticated} accept anonymous clients"
    assert env.get("KAFKA_AUTHORIZER_CLASS_NAME", "").endswith(".StandardAuthorizer")
    assert env.get("KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND") == "false", (
        "kafka: without allow.everyone.if.no.acl.found=false a topic with no ACLs is open to all"
    )
    assert set(env.get("KAFKA_SUPER_USERS", "").split(";")) == {"User:admin", "User:controller"}
    # Each client listener offers SCRAM, so needs a JAAS entry; the controller one PLAIN.
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    for name in protocols:
        mechanism = "PLAIN" if name == controller else "SCRAM___SHA___512"
        assert f"KAFKA_LISTENER_NAME_{name}_{mechanism}_SASL_JAAS_CONFIG" in env, (
            f"kafka: listener {name} has no {mechanism.replace('___', '-')} JAAS config"
        )
    assert env.get("KAFKA_SASL_MECHANISM_CONTROLLER_PROTOCOL") == "PLAIN"


def test_kafka_creates_its_admin_with_the_password_everything_else_logs_in_with(services):
    kafka = service_of(services, "kafka")
    env = environment(kafka)
    admin_password = env["ADMIN_PASSWORD"]
    inter_broker = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    jaas = env[f"KAFKA_LISTENER_NAME_{inter_broker}_SCRAM___SHA___512_SASL_JAAS_CONFIG"]
    assert _jaas_password(jaas, "admin") == admin_password, (
        "kafka: the inter-broker login and the admin user created at format time differ"
    )
    script = _script(kafka)
    assert '--add-scram "SCRAM-SHA-512=[name=admin,password=$ADMIN_PASSWORD]"' in script
    assert "exec /opt/kafka/bin/kafka-server-start.sh" in script
    assert "KafkaDockerWrapper" in script and "/etc/kafka/docker/configure" in script
    controller_jaas = env["KAFKA_LISTENER_NAME_CONTROLLER_PLAIN_SASL_JAAS_CONFIG"]
    password = _jaas_password(controller_jaas, "controller")
    assert password and f'user_controller="{password}"' in controller_jaas, (
        "kafka: the broker's controller login does not match the controller's only user"
    )
    # The healthcheck and kafka-topics log in as admin with the properties file they write.
    for name in ("kafka", "kafka-topics"):
        client = environment(service_of(services, name))["ADMIN_CLIENT_PROPERTIES"]
        assert _jaas_password(client, "admin") == admin_password, name
    assert "--command-config /opt/kafka/config/admin.properties" in " ".join(
        healthcheck_argv(kafka)
    )
    assert "/opt/kafka/config/admin.properties" in script
    topics_script = _script(service_of(services, "kafka-topics"))
    assert topics_script.count("--command-config /tmp/admin.properties") == 2


def test_access_job_creates_every_planned_user_and_its_acls_as_admin(services):
    job = service_of(services, "kafka-access")
    env = environment(job)
    assert job.get("command") == ["python", "-m", "devstack.access", "apply"]
    assert dependencies(job).get("kafka") == HEALTHY
    assert str(job.get("restart", "no")) in ("no", "on-failure")
    assert job.get("image") == service_of(services, PROCESSES[0].name).get("image")
    admin = KafkaAuth.from_env(env)
    assert (admin.username, admin.password) == (
        "admin",
        environment(service_of(services, "kafka"))["ADMIN_PASSWORD"],
    )
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    passwords = passwords_from_environment(env)  # every principal of the plan has one
    assert set(passwords) == {p.name for p in plan()}


@pytest.mark.parametrize("spec", PROCESSES, ids=_ids)
def test_workers_log_in_as_their_service_and_apis_hold_no_kafka_secret(services, spec):
    env = environment(service_of(services, spec.name))
    auth = KafkaAuth.from_env(env)
    if not spec.uses_kafka:
        assert "KAFKA_SASL_PASSWORD" not in env, f"{spec.name}: does not talk to Kafka"
        return
    assert auth.uses_sasl and auth.username == spec.service, (
        f"{spec.name}: logs in to Kafka as {auth.username!r}, expected its service's user"
    )
    assert auth.password == _access_job_passwords(services)[spec.service], (
        f"{spec.name}: its KAFKA_SASL_PASSWORD differs from the one kafka-access creates"
    )


def test_every_default_kafka_password_is_refused_outside_development(services):
    defaults = {
        **_access_job_passwords(services),
        "admin": environment(service_of(services, "kafka"))["ADMIN_PASSWORD"],
    }
    guessable = {
        user: password
        for user, password in defaults.items()
        if not KafkaAuth.sasl(user, password).has_default_password()
    }
    assert not guessable, (
        f"these compose defaults would be accepted with RX_ENV=production: {guessable}"
    )


# ---- the image --------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    lines = [
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def dockerignore_patterns() -> set[str]:
    """.dockerignore entries without comments, as bare paths (``/.venv/`` → ``.venv``)."""
    if not DOCKERIGNORE.is_file():
        return set()
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return {
        line.removeprefix("**/").strip("/") for line in lines if line and not line.startswith("#")
    }


def test_image_installs_the_locked_workspace_for_the_non_root_user():
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    instructions = dockerfile_instructions()
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    assert any("uv sync" in run and "--locked" in run for run in runs), (
        "Dockerfile: no 'uv sync --locked' step, so the image is not built from uv.lock"
    )
    assert any("uv sync" in run and "--all-packages" in run for run in runs), (
        "Dockerfile: 'uv sync' lacks --all-packages, so the services' packages are not installed"
    )
    ignored = dockerignore_patterns()
    copies = [args.split() for keyword, args in instructions if keyword == "COPY"]
    copies_lock = any(
        any(source in ("uv.lock", ".", "./") for source in args[:-1] if not source.startswith("--"))
        for args in copies
    )
    assert copies_lock and "uv.lock" not in ignored, (
        "Dockerfile: uv.lock is not copied into the image (or .dockerignore drops it), so "
        "'uv sync --locked' cannot work"
    )
    assert ".venv" in ignored, (
        ".dockerignore: does not exclude .venv; the host's environment would be copied into the "
        "image and shadow the one uv builds"
    )
    # A different uv than scripts/bootstrap may judge the same uv.lock differently.
    bootstrap_uv = re.search(
        r"^UV_VERSION=(\S+)", (ROOT / "scripts" / "bootstrap").read_text(), re.M
    )
    image_uv = re.search(r"\bUV_VERSION=(\S+)", DOCKERFILE.read_text())
    assert bootstrap_uv and image_uv and image_uv.group(1) == bootstrap_uv.group(1), (
        f"Dockerfile: uv {image_uv and image_uv.group(1)} differs from scripts/bootstrap's "
        f"{bootstrap_uv and bootstrap_uv.group(1)}"
    )
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), (
        f"Dockerfile: the processes run as root (USER: {users[-1] if users else 'unset'})"
    )
    # Compose runs plain `python -m ...`, so the synced environment must come first on PATH.
    env: dict[str, str] = {}
    workdir = "/"
    for keyword, args in instructions:
        if keyword == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(args) if "=" in word)
        elif keyword == "WORKDIR":
            workdir = args
    venv = env.get("UV_PROJECT_ENVIRONMENT", f"{workdir.rstrip('/')}/.venv")
    assert env.get("PATH", "").startswith(f"{venv}/bin"), (
        f"Dockerfile: PATH ({env.get('PATH')!r}) does not start with {venv}/bin, so "
        "'python -m <service>' would not find the installed services"
    )
