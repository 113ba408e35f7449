"""What the audit benchmarks share: a realistic event mix, medians, and the chart."""

from __future__ import annotations

import json
import statistics
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rx_contracts import (
    Actor,
    Envelope,
    ProviderType,
    ReferralAccepted,
    ReferralStatus,
    examples,
    wrap,
)

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def journey(n: int) -> list[tuple[str, Envelope]]:
    """One referral's first three events (submitted, routed, accepted) with their topics: the
    shapes and sizes the audit log mostly holds (about 450-650 bytes of JSON each)."""
    rid = str(uuid.UUID(int=n))
    at = T0 + timedelta(seconds=n)
    accepted = ReferralAccepted(
        referral_id=rid,
        sequence=3,
        version=3,
        actor=Actor(organisation="RXA01", practitioner="P1234567"),
        status=ReferralStatus.ACCEPTED,
        referrer_org="B81001",
        assigned_org="RXA01",
        provider_type=ProviderType.RAPID_RESPONSE,
        service_type="urgent-community-response",
        priority="urgent",
        occurred_at=at + timedelta(minutes=20),
    )
    return [
        (
            "referrals",
            wrap(
                examples.referral_submitted(rid, submitted_at=at),
                source="/services/referrals",
                time=at,
            ),
        ),
        (
            "routing",
            wrap(
                examples.referral_routed(rid, routed_at=at + timedelta(seconds=1)),
                source="/services/routing",
                time=at + timedelta(seconds=1),
            ),
        ),
        (
            "referrals",
            wrap(accepted, source="/services/referrals", time=at + timedelta(minutes=20)),
        ),
    ]


def events(count: int) -> list[tuple[str, Envelope]]:
    """``count`` events: whole journeys, one referral after another."""
    out: list[tuple[str, Envelope]] = []
    n = 0
    while len(out) < count:
        out.extend(journey(n))
        n += 1
    return out[:count]


def summarise(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        name: {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}
        for name, v in samples.items()
    }


def chart(
    path: Path,
    samples: dict[str, list[float]],
    target: float,
    title: str,
    unit: str,
) -> None:
    """Median bars per variant, every round as a dot, the target as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(samples)
    medians = [statistics.median(samples[n]) for n in names]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bars = ax.bar(names, medians, color=["#9aa5b1"] + ["#005eb8"] * (len(names) - 1))
    for i, name in enumerate(names):
        ax.scatter([i] * len(samples[name]), samples[name], color="black", s=12, zorder=3)
    for bar, value in zip(bars, medians, strict=True):
        ax.annotate(
            f"{value:,.0f}",
            (bar.get_x() + bar.get_width() / 2, value),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.axhline(target, color="#c4262e", linestyle="--", label=f"target {target:,.0f} {unit}")
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
