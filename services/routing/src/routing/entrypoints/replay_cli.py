"""``python -m routing replay --rules FILE --from TIME --to TIME [--json]``

Replays the referrals routing recorded in the window under the proposed rules in FILE (JSON:
``{"rule_sets": [{"locality": "east", "rules": [...]}]}``, the body of ``POST /replay``
without the window), with a progress bar, and prints assignments per organisation, unroutable
referrals and predicted acceptance breaches beside what happened. Publishes nothing. Reads
the database of ``ROUTING_DATABASE_URL``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..bootstrap import bootstrap
from ..config import get_settings
from ..domain.errors import InvalidInput
from ..service_layer import replay as replaying


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m routing replay", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("--rules", type=Path, required=True, help="JSON file of rule sets")
    parser.add_argument(
        "--from", dest="start", type=_time, required=True, help="ISO time (UTC if no offset)"
    )
    parser.add_argument("--to", dest="end", type=_time, required=True, help="ISO time")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    args = parser.parse_args(sys.argv[2:] if argv is None else argv)
    if args.end <= args.start:
        parser.error("--to must be after --from")
    try:
        document = json.loads(args.rules.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        parser.error(f"cannot read {args.rules}: {exc}")
    raw = document.get("rule_sets") if isinstance(document, dict) else document
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        parser.error(f'{args.rules}: expected {{"rule_sets": [{{"locality": …, "rules": […]}}]}}')
    container = bootstrap(get_settings())
    try:
        try:
            proposed = replaying.proposal(
                [
                    replaying.ProposedRuleSet(str(r.get("locality")), r.get("rules") or [])
                    for r in raw
                ],
                container.uow(),
            )
        except InvalidInput as exc:
            for error in exc.errors:
                print(f"{args.rules}: {error.field}: {error.message} [{error.rule}]")
            return 1
        with tqdm(unit="referral", desc="replaying", file=sys.stderr) as bar:
            report = replaying.replay(
                proposed,
                args.start,
                args.end,
                container.uow(),
                progress=bar.update,
                on_total=lambda n: setattr(bar, "total", n),
            )
    finally:
        container.engine.dispose()
    result = report.as_json()
    print(json.dumps(result, indent=2, default=str) if args.json else summary(result))
    return 0


def summary(result: dict[str, Any]) -> str:
    """The report as a few lines and a table."""
    lines = [
        f"{result['referrals']} referrals submitted from {result['window']['from']} "
        f"to {result['window']['to']}",
        "",
        f"{'organisation':<14}{'actual':>8}{'proposed':>10}{'change':>8}{'median accept':>15}",
    ]
    for org in result["organisations"]:
        minutes = org["observed_median_acceptance_minutes"]
        lines.append(
            f"{org['ods_code']:<14}{org['actual']:>8}{org['proposed']:>10}{org['change']:>+8}"
            f"{'' if minutes is None else f'{minutes:.0f} min':>15}"
        )
    unroutable, breaches = result["unroutable"], result["acceptance_breaches"]
    lines += [
        "",
        f"unroutable          actual {unroutable['actual']:>6}   proposed {unroutable['proposed']:>6}",
        f"acceptance breaches actual {breaches['actual']:>6}   predicted {breaches['predicted']:>5}",
        f"referrals that would go elsewhere: {result['changed']['count']}",
    ]
    if breaches["no_observations"]:
        lines.append(
            "no acceptance history (no prediction): " + ", ".join(breaches["no_observations"])
        )
    return "\n".join(lines)


def run() -> None:
    """Process role entry: exit with main()'s status."""
    raise SystemExit(main())
