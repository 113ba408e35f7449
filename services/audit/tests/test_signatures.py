"""Signed checkpoints: what the relay signs verifies with the published keys, anything else on
the topic is a forgery, told apart from a tampered chain; keys rotate without old checkpoints
failing, and outside development there is no default key."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from audit.adapters.checkpoint_keys import (
    CheckpointKeyError,
    CheckpointKeys,
    check,
    trusted_from_jwks,
)
from audit.adapters.tables import ENTRY
from audit.bootstrap import Container, bootstrap
from audit.config import Settings
from audit.domain.verification import (
    ENTRY_FIELDS,
    Checkpoint,
    ForgedCheckpoint,
    Verdict,
    verify_entries,
)
from audit.entrypoints.api.app import create_app
from audit.service_layer.handlers import stage_checkpoint
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from rx_contracts import ChainCheckpointed, wrap
from rx_web.settings import DefaultSecretError, Environment
from sqlalchemy import update
from sqlalchemy.engine import Engine

from .conftest import OPS, record_all, submitted, unit_of_work
from .test_chain import as_tuple, linked

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def checkpoint(sequence: int = 4, hash_: str = "a" * 64, **changes: Any) -> ChainCheckpointed:
    fields = {"chain_id": "c-1", "sequence": sequence, "hash": hash_, "checkpointed_at": AT}
    return ChainCheckpointed(**(fields | changes))


def signed(keys: CheckpointKeys, cp: ChainCheckpointed) -> ChainCheckpointed:
    return cp.model_copy(update={"signature": keys.sign(cp)})


def dev_keys(path: Path) -> CheckpointKeys:
    keys = CheckpointKeys(path, Environment.DEVELOPMENT)
    keys.signer()
    return keys


# ---- a signature is checked against the published keys ----------------------------------------


def test_what_the_service_signs_verifies_and_every_forgery_is_named(tmp_path: Path) -> None:
    ours = dev_keys(tmp_path / "ours.json")
    theirs = dev_keys(tmp_path / "theirs.json")  # a key someone with Kafka access made
    trusted = ours.trusted()
    genuine = signed(ours, checkpoint())
    [kid] = trusted

    assert check(genuine, trusted) == (None, kid)
    assert check(checkpoint(), trusted) == ("it has no signature", None)
    assert check(signed(theirs, checkpoint()), trusted)[0] == (
        f"it is signed with a key that is not published (kid {next(iter(theirs.trusted()))!r})"
    )
    # A genuine signature moved onto another head: it vouches for the old one only.
    moved = checkpoint(hash_="b" * 64, signature=genuine.signature)
    assert check(moved, trusted) == ("the signature is over another checkpoint (hash differ)", kid)
    later = checkpoint(sequence=9, checkpointed_at=AT.replace(hour=10), signature=genuine.signature)
    assert "sequence, checkpointed_at differ" in (check(later, trusted)[0] or "")
    # The same header and payload with another signature.
    header, payload, _ = (genuine.signature or "").split(".")
    other = (signed(theirs, checkpoint()).signature or "").split(".")[2]
    bent = checkpoint(signature=f"{header}.{payload}.{other}")
    assert check(bent, trusted) == ("its signature does not verify with the published key", kid)
    assert check(checkpoint(signature="a.b.c"), trusted) == ("its signature is not a JWS", None)


def test_the_signature_is_a_standard_jws_any_library_can_check_with_the_jwks(
    tmp_path: Path,
) -> None:
    keys = dev_keys(tmp_path / "keys.json")
    genuine = signed(keys, checkpoint())
    [jwk] = keys.jwks()["keys"]

    # What an outside verifier does with the published JWKS and a checkpoint off the topic.
    key = jwt.PyJWK(jwk)
    statement = jwt.PyJWS().decode(genuine.signature or "", key, algorithms=[jwk["alg"]])

    assert jwt.get_unverified_header(genuine.signature or "")["kid"] == jwk["kid"]
    assert json.loads(statement) == {
        "chain_id": "c-1",
        "sequence": 4,
        "hash": "a" * 64,
        "checkpointed_at": "2026-12-01T09:30:00Z",
    }
    # The statement repeats the event's own data as it travels, field for field.
    data = wrap(genuine, source="/services/audit").data
    assert json.loads(statement) == {k: data[k] for k in json.loads(statement)}
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert "d" not in jwk, "no private part is published"
    assert trusted_from_jwks(keys.jwks()).keys() == keys.trusted().keys()


# ---- rotation -----------------------------------------------------------------------------------


def test_after_a_rotation_the_new_key_signs_and_the_old_signatures_still_verify(
    tmp_path: Path,
) -> None:
    keys = dev_keys(tmp_path / "keys.json")
    before = signed(keys, checkpoint(sequence=1))
    [old_kid] = keys.trusted()

    new = keys.rotate()
    after = signed(keys, checkpoint(sequence=2))

    assert [jwk["kid"] for jwk in keys.jwks()["keys"]] == [new.kid, old_kid]
    assert check(before, keys.trusted()) == (None, old_kid)
    assert check(after, keys.trusted()) == (None, new.kid)
    entries = json.loads((tmp_path / "keys.json").read_text())["keys"]
    assert ["private_pem" in e for e in entries] == [True, False], "old keys verify only"
    assert stat.S_IMODE(os.stat(tmp_path / "keys.json").st_mode) == 0o600


def test_a_running_process_signs_with_a_key_rotated_by_another(tmp_path: Path) -> None:
    relay = dev_keys(tmp_path / "keys.json")
    sign = relay.signer()
    first = jwt.get_unverified_header(sign(checkpoint()))["kid"]

    rotated = CheckpointKeys(tmp_path / "keys.json", Environment.DEVELOPMENT).rotate()

    assert first != rotated.kid
    assert jwt.get_unverified_header(sign(checkpoint()))["kid"] == rotated.kid


def test_an_es256_key_signs_and_is_published_too(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps(
            {"keys": [{"kid": "hsm-1", "alg": "ES256", "created_at": "", "private_pem": pem}]}
        )
    )
    keys = CheckpointKeys(path, Environment.PRODUCTION)

    genuine = signed(keys, checkpoint())

    assert jwt.get_unverified_header(genuine.signature or "")["alg"] == "ES256"
    assert check(genuine, trusted_from_jwks(keys.jwks())) == (None, "hsm-1")


# ---- no default key outside development ----------------------------------------------------------


def test_outside_development_there_is_no_default_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    production = CheckpointKeys(path, Environment.PRODUCTION)
    with pytest.raises(CheckpointKeyError, match="no checkpoint signing key"):
        production.signer()
    assert not path.exists(), "nothing is made outside development"
    assert production.jwks() == {"keys": []}

    dev_keys(path)  # a development stack made one; then the same file is used in production
    with pytest.raises(DefaultSecretError, match="refuses the development checkpoint keys"):
        CheckpointKeys(path, Environment.PRODUCTION).load()

    made = CheckpointKeys(path, Environment.PRODUCTION).rotate()  # the operator's own key
    assert [k.kid for k in CheckpointKeys(path, Environment.PRODUCTION).load()] == [made.kid]


def test_the_published_jwks_serves_as_the_key_file_of_a_process_that_only_verifies(
    tmp_path: Path,
) -> None:
    keys = dev_keys(tmp_path / "keys.json")
    keys.rotate()
    genuine = signed(keys, checkpoint())
    published = tmp_path / "jwks.json"
    published.write_text(json.dumps(keys.jwks()))

    verifier = CheckpointKeys(published, Environment.DEVELOPMENT)

    assert verifier.jwks() == keys.jwks()
    assert check(genuine, verifier.trusted())[0] is None
    with pytest.raises(CheckpointKeyError, match="no private half"):
        verifier.signer()


def test_the_relay_does_not_start_without_a_key_outside_development(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "RX_ENV": "production",
        "AUDIT_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "AUDIT_CHECKPOINT_KEYS_FILE": str(tmp_path / "missing.json"),
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "AUDIT_HEARTBEAT_DIR": str(tmp_path / "heartbeats"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "audit", "relay"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "no checkpoint signing key" in done.stderr


# ---- verification tells a forgery from tampering ------------------------------------------------


def forged(sequence: int, hash_: str, offset: int = 9) -> ForgedCheckpoint:
    return ForgedCheckpoint(sequence, hash_, AT, offset, None, "it has no signature")


def test_a_forged_checkpoint_over_an_intact_chain_is_a_forgery_not_tampering() -> None:
    head, entries = linked(4)
    rows = [as_tuple(e) for e in entries]
    genuine = [Checkpoint(2, entries[1].hash, AT, 3)]
    # Claims two more entries than there are, and another head at 4: it vouches for nothing.
    fakes = [forged(6, "f" * 64, offset=11), forged(4, "e" * 64, offset=10)]

    result = verify_entries([rows], head.chain_id, (4, head.hash), genuine, forged=fakes)

    assert (result.ok, result.verdict, result.first_broken) == (
        False,
        Verdict.FORGED_CHECKPOINT,
        None,
    )
    assert (result.entries, result.checkpoints, len(result.forged)) == (4, 1, 2)
    assert "2 forged checkpoint(s)" in (result.problem or "")
    assert "offset 10, claims entry 4: it has no signature" in (result.problem or "")


def test_a_tampered_chain_stays_tampered_whatever_forgeries_come_with_it() -> None:
    head, entries = linked(4)
    rows = [list(as_tuple(e)) for e in entries]
    rows[2][ENTRY_FIELDS.index("payload")] = "{}"

    result = verify_entries([rows], head.chain_id, (4, head.hash), forged=[forged(4, "e" * 64)])

    assert (result.verdict, result.first_broken, len(result.forged)) == (Verdict.TAMPERED, 3, 1)
    assert "payload does not match its digest" in (result.problem or "")


# ---- the API: the keys, published; verification, with its verdict --------------------------------


@pytest.fixture
def container(settings: Settings, checkpoint_keys: CheckpointKeys) -> Iterator[Container]:
    built = bootstrap(settings)
    yield built
    built.engine.dispose()


def test_the_keys_are_published_without_identity(
    container: Container, checkpoint_keys: CheckpointKeys
) -> None:
    with TestClient(create_app(container.settings, container)) as client:
        response = client.get("/audit/checkpoint-keys")
        documented = client.get("/openapi.json").json()["paths"]

    assert response.status_code == 200
    assert response.json() == checkpoint_keys.jwks()
    assert "/audit/checkpoint-keys" in documented


def test_the_api_reports_a_forged_checkpoint_apart_from_a_tampered_chain(
    container: Container, checkpoint_keys: CheckpointKeys
) -> None:
    engine: Engine = container.engine
    record_all(engine, [submitted(n) for n in range(1, 4)])
    staged = stage_checkpoint("t", unit_of_work(engine), checkpoint_keys.sign)
    assert staged is not None
    on_topic: list[Any] = [Checkpoint(staged.sequence, staged.hash, staged.checkpointed_at, 0)]
    container.checkpoints = lambda _chain_id: on_topic

    with TestClient(create_app(container.settings, container)) as client:
        intact = client.get("/audit/verify", headers=OPS).json()
        on_topic.append(forged(3, "e" * 64, offset=1))
        forgery = client.get("/audit/verify", headers=OPS).json()
        with engine.begin() as conn:
            conn.execute(update(ENTRY).where(ENTRY.c.sequence == 2).values(actor_org="EDIT1"))
        tampered = client.get("/audit/verify", headers=OPS).json()

    assert (intact["ok"], intact["verdict"], intact["forged"]) == (True, "intact", [])
    assert (forgery["ok"], forgery["verdict"], forgery["first_broken"]) == (
        False,
        "forged-checkpoint",
        None,
    )
    assert forgery["forged"] == [
        {
            "sequence": 3,
            "hash": "e" * 64,
            "checkpointed_at": "2026-12-01T09:30:00Z",
            "offset": 1,
            "kid": None,
            "problem": "it has no signature",
        }
    ]
    assert (tampered["verdict"], tampered["first_broken"], len(tampered["forged"])) == (
        "tampered",
        2,
        1,
    )


def chain_table() -> Any:
    from audit.adapters.tables import ENTRY

    return ENTRY


def run_checkpoint_key(keys_file: Path, action: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUDIT_CHECKPOINT_KEYS_FILE": str(keys_file), "RX_ENV": "production"}
    return subprocess.run(
        [sys.executable, "-m", "audit", "checkpoint-key", action],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def test_the_checkpoint_key_command_makes_rotates_and_publishes_the_keys(tmp_path: Path) -> None:
    keys_file = tmp_path / "secrets" / "checkpoint-keys.json"
    first = json.loads(run_checkpoint_key(keys_file, "rotate").stdout)
    [made] = first["keys"]
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert "d" not in made, "the JWKS printed carries the public half only"
    production = CheckpointKeys(keys_file, Environment.PRODUCTION)
    signed_first = signed(production, checkpoint())  # a production relay can sign with it

    second = json.loads(run_checkpoint_key(keys_file, "rotate").stdout)
    assert [jwk["kid"] for jwk in second["keys"]][1:] == [made["kid"]], "newest first"
    assert json.loads(run_checkpoint_key(keys_file, "jwks").stdout) == second
    stored = json.loads(keys_file.read_text())["keys"]
    assert ["private_pem" in entry for entry in stored] == [True, False]
    trusted = trusted_from_jwks(second)
    assert check(signed_first, trusted) == (None, made["kid"]), "old signatures still verify"
    assert check(signed(production, checkpoint()), trusted)[1] == second["keys"][0]["kid"]
