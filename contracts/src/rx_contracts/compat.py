"""Is a new event schema compatible with the released one?

The rule (``contracts/README.md``): a subscriber built against the new schema must read every
event the released schema allowed (*backward* compatible), and a subscriber still built against
the released schema must keep getting every field it knows (no property disappears). So, from
released to new:

- allowed: new optional properties, new event types, new enum values, looser constraints
  (a longer ``maxLength``, a lower ``minimum``), a property becoming optional, a type widening
  to ``X | null``;
- breaking: a property removed, a new required property, a type changed, an enum value
  removed, a tighter or different constraint (``pattern``, ``format``, lengths, bounds),
  ``additionalProperties`` closed.

The checker works on the JSON Schema documents Pydantic generates (``$defs`` + ``$ref``,
``anyOf`` for optionals), not on the models, so it compares what was actually released.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_LOWER_BOUNDS = ("minLength", "minimum", "exclusiveMinimum", "minItems")
_UPPER_BOUNDS = ("maxLength", "maximum", "exclusiveMaximum", "maxItems")
_EXACT = ("pattern", "format", "const", "multipleOf")


def breaking_changes(released: Schema, new: Schema, where: str = "") -> list[str]:
    """Every way ``new`` breaks subscribers of ``released``; empty when compatible."""
    return _Comparison(released, new).compare(released, new, where or "$")


class _Comparison:
    def __init__(self, released_root: Schema, new_root: Schema) -> None:
        self.roots = (released_root, new_root)
        self.open: set[tuple[str, str]] = set()

    def compare(self, old: Schema, new: Schema, path: str) -> list[str]:
        key = (old.get("$ref", ""), new.get("$ref", ""))
        if key != ("", "") and key in self.open:  # a recursive definition: compared above
            return []
        self.open.add(key)
        try:
            return self._compare(self._resolve(old, 0), self._resolve(new, 1), path)
        finally:
            self.open.discard(key)

    def _compare(self, old: Schema, new: Schema, path: str) -> list[str]:
        old_alts, new_alts = _alternatives(old), _alternatives(new)
        if len(old_alts) > 1 or len(new_alts) > 1:
            return self._compare_unions(old_alts, new_alts, path)
        problems = self._compare_types(old, new, path)
        if problems:
            return problems
        problems += _compare_enum(old, new, path)
        problems += _compare_constraints(old, new, path)
        if _type_of(old) == "object" or "properties" in old:
            problems += self._compare_objects(old, new, path)
        if _type_of(old) == "array" and isinstance(old.get("items"), dict):
            problems += self.compare(old["items"], new.get("items", {}), f"{path}[]")
        return problems

    def _resolve(self, schema: Schema, side: int) -> Schema:
        while "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"cannot follow external $ref {ref!r}")
            target: Any = self.roots[side]
            for part in ref[2:].split("/"):
                target = target[part]
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **extra}
        return schema

    def _compare_unions(
        self, old_alts: list[Schema], new_alts: list[Schema], path: str
    ) -> list[str]:
        problems = []
        for alt in old_alts:
            alt = self._resolve(alt, 0)
            # Some new alternative must take everything this old one allowed.
            candidates = [
                self._resolve(n, 1)
                for n in new_alts
                if _type_of(self._resolve(n, 1)) == _type_of(alt)
            ]
            if not candidates:
                problems.append(f"{path}: no longer accepts {_type_of(alt) or 'its old type'}")
                continue
            best = min((self.compare(alt, candidate, path) for candidate in candidates), key=len)
            problems += best
        return problems

    def _compare_types(self, old: Schema, new: Schema, path: str) -> list[str]:
        old_type, new_type = _type_of(old), _type_of(new)
        if old_type == new_type or new_type is None:
            return []
        if old_type == "integer" and new_type == "number":
            return []  # widening
        return [f"{path}: type changed from {old_type} to {new_type}"]

    def _compare_objects(self, old: Schema, new: Schema, path: str) -> list[str]:
        problems = []
        old_props: dict[str, Schema] = old.get("properties", {})
        new_props: dict[str, Schema] = new.get("properties", {})
        for name, schema in old_props.items():
            if name not in new_props:
                problems.append(f"{path}.{name}: removed")
                continue
            problems += self.compare(schema, new_props[name], f"{path}.{name}")
        newly_required = set(new.get("required", [])) - set(old.get("required", []))
        for name in sorted(newly_required):
            problems.append(f"{path}.{name}: now required")
        if (
            new.get("additionalProperties") is False
            and old.get("additionalProperties") is not False
        ):
            problems.append(f"{path}: no longer allows additional properties")
        return problems


def _alternatives(schema: Schema) -> list[Schema]:
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return list(schema[key])
    return [schema]


def _type_of(schema: Schema) -> str | None:
    kind = schema.get("type")
    if kind is None and "enum" in schema:
        values = schema["enum"]
        return "string" if all(isinstance(v, str) for v in values) else None
    if kind is None and "const" in schema:
        return "string" if isinstance(schema["const"], str) else None
    return kind if isinstance(kind, str) else None


def _compare_enum(old: Schema, new: Schema, path: str) -> list[str]:
    if "enum" not in new:
        return []
    if "enum" not in old:
        return [f"{path}: now restricted to {new['enum']}"]
    removed = [v for v in old["enum"] if v not in new["enum"]]
    return [f"{path}: enum value {v!r} removed" for v in removed]


def _compare_constraints(old: Schema, new: Schema, path: str) -> list[str]:
    problems = []
    for key in _EXACT:
        if key in new and new.get(key) != old.get(key):
            problems.append(f"{path}: {key} changed from {old.get(key)!r} to {new[key]!r}")
    for key in _LOWER_BOUNDS:
        if key in new and (key not in old or new[key] > old[key]):
            problems.append(f"{path}: {key} raised from {old.get(key)!r} to {new[key]!r}")
    for key in _UPPER_BOUNDS:
        if key in new and (key not in old or new[key] < old[key]):
            problems.append(f"{path}: {key} lowered from {old.get(key)!r} to {new[key]!r}")
    return problems
