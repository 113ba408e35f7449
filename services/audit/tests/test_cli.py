"""``python -m audit verify``: a progress bar, the result as JSON, exit 0 only when intact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from audit.adapters.tables import ENTRY
from audit.config import Settings
from devstack.topics import ensure_topics
from sqlalchemy import update
from sqlalchemy.engine import Engine

from .conftest import record_all, submitted

pytestmark = pytest.mark.kafka


def run_verify(settings: Settings, kafka: str, topic: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AUDIT_DATABASE_URL": settings.database_url,
        "AUDIT_CHECKPOINT_TOPIC": topic,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
    }
    return subprocess.run(
        [sys.executable, "-m", "audit", "verify"],
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
