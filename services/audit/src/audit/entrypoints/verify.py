"""``python -m audit verify``: verify the chain against the checkpoints on Kafka."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from rx_messaging.database import make_engine
from tqdm import tqdm

from ..adapters.checkpoint_topic import checkpoint_reader
from ..config import get_settings
from ..domain.verification import Verification
from ..service_layer import handlers
from ..service_layer.unit_of_work import UnitOfWork, session_factory


def main(argv: list[str] | None = None) -> int:
    """Verify the chain in ``AUDIT_DATABASE_URL`` against the checkpoints on Kafka, with a
    progress bar; print the result as JSON. Exit 0 if intact, 1 if not."""
    parser = argparse.ArgumentParser(prog="python -m audit verify", description=main.__doc__)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(sys.argv[2:] if argv is None else argv)
    settings = get_settings()
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
            result = handlers.verify_chain(checkpoint_reader(settings), uow, progress=bar.update)
    finally:
        engine.dispose()
    print(json.dumps(asdict(result), indent=2))
    print(summary(result), file=sys.stderr)
    return 0 if result.ok else 1


def summary(result: Verification) -> str:
    """One line for people."""
    if result.ok:
        return (
            f"intact: {result.entries} entries, head {result.head_hash[:12]}…, "
            f"{result.checkpoints} checkpoints matched"
        )
    where = f" at entry {result.first_broken}" if result.first_broken else ""
    return f"NOT INTACT{where}: {result.problem}"
