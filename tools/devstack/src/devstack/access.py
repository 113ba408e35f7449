"""Who may do what on the platform's Kafka: the principal/ACL plan, in one place.

One principal per service and one per provider type, each allowed exactly what its code does
and nothing else (the broker denies whatever no ACL allows). The plan is derived from
``rx_contracts.topics``, so a new provider type or topic is covered without editing it.

- A service reads the topics it consumes, writes the topics it publishes and the dead-letter
  topics of what it consumes (poison records go to ``<topic>.dlq``). Idempotent producers need
  nothing beyond WRITE.
- A provider type's principal (``provider-<type>``) reads ``provider.<type>.v1`` only.
- Consumer groups: a principal may use the group named like itself or any group starting
  with its name and a dot (``provider-acute.RXA01``), so no principal can join, reset or
  disturb another's groups, even one whose name it is a prefix of.

CLI (the docker-compose ``kafka-access`` job; ``make run`` calls ``apply_plan`` itself)::

    python -m devstack.access apply   # users and ACLs from KAFKA_<USER>_PASSWORD variables
    python -m devstack.access show    # the plan as a Markdown table (docs/kafka-access.md)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import kafka.errors as kafka_errors
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from rx_config.kafka_auth import KafkaAuth
from rx_contracts.channels import channels
from rx_contracts.topics import all_topics, dead_letter_topic, provider_topic
from rx_contracts.vocabulary import ProviderType
from rx_web.settings import Environment

from .topics import TopicError, admin_client, ensure_topics


@dataclass(frozen=True)
class Principal:
    """A Kafka user and the topics it may read (consume) and write (produce to)."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    who: str

    @property
    def user(self) -> str:
        return f"User:{self.name}"

    @property
    def group_prefix(self) -> str:
        """Groups it may use: ``name`` itself and any name starting with this."""
        return f"{self.name}."

    def acls(self) -> set[ACL]:
        """The ALLOW rules that give this principal its rights, and no others."""
        rules = [(ResourceType.TOPIC, topic, _LITERAL, ACLOperation.READ) for topic in self.reads]
        rules += [(ResourceType.TOPIC, t, _LITERAL, ACLOperation.WRITE) for t in self.writes]
        if self.reads:  # only consumers need a group
            rules += [
                (ResourceType.GROUP, self.name, _LITERAL, ACLOperation.READ),
                (ResourceType.GROUP, self.group_prefix, _PREFIXED, ACLOperation.READ),
            ]
        return {
            ACL(
                principal=self.user,
                host="*",
                operation=operation,
                permission_type=ACLPermissionType.ALLOW,
                resource_pattern=ResourcePattern(kind, name, pattern),
            )
            for kind, name, pattern, operation in rules
        }


_LITERAL = ACLResourcePatternType.LITERAL
_PREFIXED = ACLResourcePatternType.PREFIXED


def provider_principal(provider_type: ProviderType | str) -> str:
    """The Kafka user a provider system of ``provider_type`` connects as."""
    return f"provider-{ProviderType(provider_type).value}"


SERVICES: dict[str, str] = {
    "referrals": "referrals relay and consumer",
    "routing": "routing relay and consumer",
    "audit": "audit API, relay and consumer",
    "notify": "notify worker (ingestion, delivery) and relay",
}
"""The services with a Kafka principal each, and which of their processes use it."""


def plan() -> tuple[Principal, ...]:
    """Every principal of the platform with its rights (services first, then provider types).

    Derived from the channel catalogue (``rx_contracts.channels``): a service writes the topics
    it publishes and the dead-letter topics of what it reads, and reads the topics that list
    it as a consumer. A new topic or consumer is covered by describing it there once."""
    catalogue = channels()
    services = tuple(
        Principal(
            name,
            reads=(reads := tuple(c.topic for c in catalogue if name in c.consumers)),
            writes=(
                *(c.topic for c in catalogue if c.producer == name),
                *(dead_letter_topic(topic) for topic in reads),
            ),
            who=who,
        )
        for name, who in SERVICES.items()
    )
    return (
        *services,
        *(
            Principal(
                provider_principal(t),
                reads=(provider_topic(t),),
                writes=(),
                who=f"{t.value} provider systems",
            )
            for t in ProviderType
        ),
    )


def principal(name: str) -> Principal:
    """The planned principal called ``name``; ``KeyError`` if there is none."""
    for candidate in plan():
        if candidate.name == name:
            return candidate
    raise KeyError(f"no Kafka principal {name!r} in the plan")


def password_variable(name: str) -> str:
    """Where deployments pass a principal's password: ``KAFKA_<NAME>_PASSWORD``."""
    return f"KAFKA_{name.upper().replace('-', '_')}_PASSWORD"


class AccessError(TopicError):
    """Users or ACLs could not be set up; the message says which and why."""


def apply_plan(
    admin: KafkaAdminClient,
    passwords: Mapping[str, str],
    principals: Iterable[Principal] | None = None,
    timeout: float = 30,
) -> None:
    """Create or update each principal's SCRAM user and make its ACLs exactly the plan's:
    missing ACLs are created, ACLs of these principals that the plan no longer has are
    deleted. Returns once the broker enforces them, so clients may connect right after."""
    chosen = list(plan() if principals is None else principals)
    missing = [p.name for p in chosen if not passwords.get(p.name)]
    if missing:
        raise AccessError(f"no Kafka password for {', '.join(missing)}")
    upserts = [
        UserScramCredentialUpsertion(p.name, ScramMechanism.SCRAM_SHA_512, passwords[p.name])
        for p in chosen
    ]
    failed = {u: e for u, e in admin.alter_user_scram_credentials(upserts).items() if e}
    if failed:
        raise AccessError(f"creating Kafka users failed: {failed}")
    wanted = set().union(*(p.acls() for p in chosen))
    users = {p.user for p in chosen}
    existing = {acl for acl in _all_acls(admin) if acl.principal in users}
    stale = existing - wanted
    if stale:
        for acl, _matched, error in admin.delete_acls(list(stale)):
            if error is not kafka_errors.NoError:
                raise AccessError(f"deleting the stale ACL {acl} failed: {error.__name__}")
    new = sorted(wanted - existing, key=repr)
    if new:
        result = admin.create_acls(new)
        if result["failed"]:
            raise AccessError(f"creating ACLs failed: {result['failed']}")
    _wait_until_enforced(admin, users, wanted, timeout)


def secure_topics(
    bootstrap_servers: str, admin: KafkaAuth, passwords: Mapping[str, str], timeout: float = 30
) -> None:
    """Create the platform's topics, its users and their ACLs on a secured broker."""
    ensure_topics(bootstrap_servers, all_topics(), timeout, auth=admin)
    with admin_client(bootstrap_servers, timeout, admin) as client:
        apply_plan(client, passwords, timeout=timeout)


def _all_acls(admin: KafkaAdminClient) -> list[ACL]:
    everything = ACLFilter(
        principal=None,
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    acls, _error = admin.describe_acls(everything)  # raises on error
    return list(acls)


def _wait_until_enforced(
    admin: KafkaAdminClient, users: set[str], wanted: set[ACL], timeout: float
) -> None:
    """The controller commits users and ACLs; the broker applies them a moment later. Poll the
    broker (bounded) until it reports both, so the first client does not race it."""
    names = sorted(user.removeprefix("User:") for user in users)
    deadline = time.monotonic() + timeout
    while True:
        described = admin.describe_user_scram_credentials(names)
        users_ready = all(not described.get(n, {"error": "absent"})["error"] for n in names)
        acls = {acl for acl in _all_acls(admin) if acl.principal in users}
        if users_ready and acls == wanted:
            return
        if time.monotonic() > deadline:
            raise AccessError(
                f"the broker did not apply the Kafka users and ACLs within {timeout:g}s"
            )
        time.sleep(0.1)


def markdown_table() -> str:
    """The plan as docs/kafka-access.md shows it."""
    rows = [
        "| principal | used by | reads (consumes) | writes (produces) | consumer groups |",
        "|---|---|---|---|---|",
    ]
    for p in plan():
        reads = ", ".join(f"`{t}`" for t in p.reads) or "—"
        writes = ", ".join(f"`{t}`" for t in p.writes) or "—"
        groups = f"`{p.name}`, `{p.group_prefix}*`" if p.reads else "—"
        rows.append(f"| `{p.name}` | {p.who} | {reads} | {writes} | {groups} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- CLI


def passwords_from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Each planned principal's password from ``KAFKA_<NAME>_PASSWORD``; refuses missing ones
    and, unless ``RX_ENV`` is development, well-known defaults."""
    passwords: dict[str, str] = {}
    problems = []
    stage = environ.get("RX_ENV") or Environment.DEVELOPMENT.value
    for p in plan():
        variable = password_variable(p.name)
        password = environ.get(variable, "")
        if not password:
            problems.append(f"{variable} is not set")
        elif (
            stage != Environment.DEVELOPMENT.value
            and KafkaAuth.sasl(p.name, password).has_default_password()
        ):
            problems.append(f"{variable} is a well-known default (RX_ENV={stage})")
        passwords[p.name] = password
    if problems:
        raise AccessError("; ".join(problems))
    return passwords


def main(argv: Sequence[str] | None = None) -> int:
    """``apply``: create the users and ACLs of the plan (as the admin user in ``KAFKA_SASL_*``);
    ``show``: print the plan."""
    parser = argparse.ArgumentParser(prog="python -m devstack.access", description=main.__doc__)
    parser.add_argument("command", choices=["apply", "show"])
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for Kafka")
    args = parser.parse_args(argv)
    if args.command == "show":
        print(markdown_table())
        return 0
    environ = os.environ
    bootstrap = environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    try:
        passwords = passwords_from_environment(environ)
        admin_auth = KafkaAuth.from_env(environ)
        if (
            environ.get("RX_ENV") or Environment.DEVELOPMENT.value
        ) != Environment.DEVELOPMENT.value and (admin_auth.has_default_password()):
            raise AccessError("the admin's KAFKA_SASL_PASSWORD is a well-known default")
        with admin_client(bootstrap, args.timeout, admin_auth) as admin:
            apply_plan(admin, passwords, timeout=args.timeout)
    except (TopicError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for p in plan():
        print(f"{p.name}: reads {', '.join(p.reads) or '-'}; writes {', '.join(p.writes) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
