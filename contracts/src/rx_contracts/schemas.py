"""Generate the committed JSON Schemas from the payload models.

``python -m rx_contracts.schemas write`` rewrites ``contracts/schemas``;
``python -m rx_contracts.schemas check`` exits 1 if any committed file is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .envelope import Envelope, schema_urn
from .events import EVENT_TYPES

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def render() -> dict[str, str]:
    """File name → JSON text for every schema the contracts define."""
    files: dict[str, str] = {}
    for event_type, model in EVENT_TYPES.items():
        schema = model.model_json_schema(mode="serialization")
        schema = {"$id": schema_urn(event_type), **schema}
        files[f"{event_type}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    envelope = {"$id": schema_urn("envelope"), **Envelope.model_json_schema()}
    files["envelope.json"] = json.dumps(envelope, indent=2, sort_keys=True) + "\n"
    return files


def stale(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that are missing, different or no longer generated."""
    wanted = render()
    problems = [
        name
        for name, text in wanted.items()
        if not (directory / name).exists() or (directory / name).read_text() != text
    ]
    problems += [p.name for p in directory.glob("*.json") if p.name not in wanted]
    return sorted(problems)


def write(directory: Path = SCHEMA_DIR) -> None:
    """Rewrite every schema file and remove ones no longer generated."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = render()
    for old in directory.glob("*.json"):
        if old.name not in wanted:
            old.unlink()
    for name, text in wanted.items():
        (directory / name).write_text(text)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args == ["write"]:
        write()
        print(f"wrote {len(render())} schemas to {SCHEMA_DIR}")
        return 0
    if args == ["check"]:
        problems = stale()
        if problems:
            print("stale schemas (run `make schemas`): " + ", ".join(problems))
            return 1
        print("schemas are current")
        return 0
    print("usage: python -m rx_contracts.schemas write|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
