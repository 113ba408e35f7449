"""``python -m audit verify``: verify the chain against the signed checkpoints on Kafka."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path

from rx_messaging.database import make_engine
from tqdm import tqdm

from ..adapters.checkpoint_keys import CheckpointKeys, TrustedKey, trusted_from_jwks
from ..adapters.checkpoint_topic import checkpoint_reader
from ..config import get_settings
from ..domain.verification import Verdict, Verification
from ..service_layer import handlers
from ..service_layer.unit_of_work import UnitOfWork, session_factory

EXIT_CODES = {
    Verdict.INTACT: 0,
    Verdict.TAMPERED: 1,
    Verdict.UNVOUCHED: 1,
    Verdict.FORGED_CHECKPOINT: 3,
}
"""0 intact; 1 the chain does not verify (or could not be vouched for); 3 the chain fits the
genuine checkpoints but forged ones were published. (2 is a usage error.)"""


def main(argv: list[str] | None = None) -> int:
    """Verify the chain in ``AUDIT_DATABASE_URL`` against the checkpoints on Kafka, checking
    each one's signature, with a progress bar; print the result as JSON. Exit 0 if intact, 1
    if the chain does not verify, 3 if a checkpoint on the topic is forged."""
    parser = argparse.ArgumentParser(prog="python -m audit verify", description=main.__doc__)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--jwks",
        type=Path,
        help="trust only the keys of this JWK Set (a copy of GET /audit/checkpoint-keys kept "
        "outside the audit service), not those of AUDIT_CHECKPOINT_KEYS_FILE",
    )
    args = parser.parse_args(sys.argv[2:] if argv is None else argv)
    settings = get_settings()
    trusted: Callable[[], Mapping[str, TrustedKey]]
    if args.jwks is not None:
        pinned = trusted_from_jwks(json.loads(args.jwks.read_text()))
        trusted = lambda: pinned  # noqa: E731
    else:
        trusted = CheckpointKeys(settings.checkpoint_keys_file, settings.rx_env).trusted
    engine = make_engine(settings.database_url)  # as it is: verifying migrates nothing
    uow = UnitOfWork(session_factory(engine))
    try:
        with tqdm(
            total=handlers.count_entries(uow),
            unit=" entries",
            disable=args.quiet,
            file=sys.stderr,
            desc="verifying",
        ) as bar:
            result = handlers.verify_chain(
                checkpoint_reader(settings, trusted), uow, progress=bar.update
            )
    finally:
        engine.dispose()
    print(json.dumps({**asdict(result), "verdict": result.verdict}, indent=2, default=str))
    print(summary(result), file=sys.stderr)
    return EXIT_CODES[result.verdict]


def summary(result: Verification) -> str:
    """One line for people."""
    if result.ok:
        return (
            f"intact: {result.entries} entries, head {result.head_hash[:12]}…, "
            f"{result.checkpoints} signed checkpoints matched"
        )
    if result.verdict is Verdict.FORGED_CHECKPOINT:
        return f"FORGED CHECKPOINT: {result.problem}"
    where = f" at entry {result.first_broken}" if result.first_broken else ""
    forged = f" (and {len(result.forged)} forged checkpoint(s))" if result.forged else ""
    return f"NOT INTACT{where}: {result.problem}{forged}"
