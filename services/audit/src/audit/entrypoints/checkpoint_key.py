"""``python -m audit checkpoint-key rotate|jwks``: the checkpoint signing keys.

``rotate`` makes a new signing key at the front of ``AUDIT_CHECKPOINT_KEYS_FILE`` (making the
file if there is none); the older keys stay, with their public halves only, so checkpoints
they signed still verify. The relay signs with the new key from its next checkpoint.
``jwks`` prints the public keys as a JWK Set, as ``GET /audit/checkpoint-keys`` publishes
them: a copy to keep wherever checkpoints are verified from outside."""

from __future__ import annotations

import argparse
import json
import sys

from ..adapters.checkpoint_keys import CheckpointKeys
from ..config import get_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m audit checkpoint-key")
    parser.add_argument("action", choices=("rotate", "jwks"))
    args = parser.parse_args(sys.argv[2:] if argv is None else argv)
    settings = get_settings()
    keys = CheckpointKeys(settings.checkpoint_keys_file, settings.rx_env)
    if args.action == "rotate":
        key = keys.rotate()
        print(f"new checkpoint signing key {key.kid} in {keys.path}", file=sys.stderr)
    print(json.dumps(keys.jwks(), indent=2))
