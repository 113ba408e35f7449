"""``python -m audit verify``: a progress bar, the result as JSON, exit 0 only when intact, 1
for a tampered chain, 3 for a forged checkpoint; a pinned copy of the published keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit.adapters.checkpoint_keys import CheckpointKeys
from audit.adapters.tables import ENTRY
from audit.config import Settings
from audit.service_layer.handlers import stage_checkpoint
from devstack.topics import ensure_topics
from rx_contracts import ChainCheckpointed, encode, wrap
from rx_messaging.kafka import KafkaPublisher
from rx_messaging.relay import OutboxRelay
from rx_web.settings import Environment
from sqlalchemy import update
from sqlalchemy.engine import Engine

from .conftest import record_all, submitted, unit_of_work

pytestmark = pytest.mark.kafka


def run_verify(
    settings: Settings, kafka: str, topic: str, *options: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AUDIT_DATABASE_URL": settings.database_url,
        "AUDIT_CHECKPOINT_TOPIC": topic,
        "AUDIT_CHECKPOINT_KEYS_FILE": str(settings.checkpoint_keys_file),
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
    }
    return subprocess.run(
        [sys.executable, "-m", "audit", "verify", *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_verify_reports_an_intact_chain_then_the_first_broken_entry(
    settings: Settings, engine: Engine, kafka_bootstrap: str
) -> None:
    record_all(engine, [submitted(n) for n in range(1, 5)])
    topic = f"audit-cli-{uuid.uuid4().hex[:12]}.checkpoints.v1"
    ensure_topics(kafka_bootstrap, {topic: 1})

    intact = run_verify(settings, kafka_bootstrap, topic)
    assert intact.returncode == 0, intact.stderr
    assert json.loads(intact.stdout)["entries"] == 4
    assert "verifying" in intact.stderr and "4/4" in intact.stderr, "a progress bar"
    assert "intact: 4 entries" in intact.stderr

    with engine.begin() as conn:
        conn.execute(update(ENTRY).where(ENTRY.c.sequence == 2).values(type="rx.forged.v1"))
    broken = run_verify(settings, kafka_bootstrap, topic)

    assert broken.returncode == 1
    assert json.loads(broken.stdout)["first_broken"] == 2
    assert "NOT INTACT at entry 2" in broken.stderr


def test_verify_tells_a_forged_checkpoint_from_a_tampered_chain_and_trusts_a_pinned_jwks(
    settings: Settings,
    engine: Engine,
    kafka_bootstrap: str,
    checkpoint_keys: CheckpointKeys,
    tmp_path: Path,
) -> None:
    record_all(engine, [submitted(n) for n in range(1, 4)])
    topic = f"audit-cli-{uuid.uuid4().hex[:12]}.checkpoints.v1"
    ensure_topics(kafka_bootstrap, {topic: 1})
    publisher = KafkaPublisher(kafka_bootstrap, client_id="audit-cli-test")
    try:
        assert stage_checkpoint(topic, unit_of_work(engine), checkpoint_keys.sign)
        assert OutboxRelay(engine, publisher).relay_once() == 1
        pinned = tmp_path / "pinned-jwks.json"  # a copy of GET /audit/checkpoint-keys
        pinned.write_text(json.dumps(checkpoint_keys.jwks()))
        stranger = tmp_path / "other-jwks.json"
        other = CheckpointKeys(tmp_path / "other.json", Environment.DEVELOPMENT)
        other.signer()
        stranger.write_text(json.dumps(other.jwks()))

        intact = run_verify(settings, kafka_bootstrap, topic, "--quiet", "--jwks", str(pinned))
        assert intact.returncode == 0, intact.stderr
        assert "intact: 3 entries" in intact.stderr and "1 signed checkpoints" in intact.stderr

        # Someone with the Kafka credentials, but not the key, publishes a head.
        forged = ChainCheckpointed(
            chain_id=json.loads(intact.stdout)["chain_id"],
            sequence=3,
            hash="f" * 64,
            checkpointed_at=datetime.now(UTC),
        )
        publisher.publish(topic, [encode(wrap(forged, source="/services/audit"))])
    finally:
        publisher.close()

    forgery = run_verify(settings, kafka_bootstrap, topic, "--quiet")
    assert forgery.returncode == 3, forgery.stderr
    answer = json.loads(forgery.stdout)
    assert (answer["verdict"], answer["first_broken"]) == ("forged-checkpoint", None)
    assert [f["problem"] for f in answer["forged"]] == ["it has no signature"]
    assert "FORGED CHECKPOINT" in forgery.stderr

    # Trusting another key set, the service's own checkpoint is no better than the forgery.
    strange = run_verify(settings, kafka_bootstrap, topic, "--quiet", "--jwks", str(stranger))
    assert strange.returncode == 3
    assert len(json.loads(strange.stdout)["forged"]) == 2

    with engine.begin() as conn:
        conn.execute(update(ENTRY).where(ENTRY.c.sequence == 2).values(actor_org="EDIT1"))
    tampered = run_verify(settings, kafka_bootstrap, topic, "--quiet")
    assert tampered.returncode == 1
    assert json.loads(tampered.stdout)["verdict"] == "tampered"
    assert "NOT INTACT at entry 2" in tampered.stderr
    assert "(and 1 forged checkpoint(s))" in tampered.stderr
