"""The project's JSON Schemas as validators, shared by the schema and property tests."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from referencing import Registry, Resource

SCHEMAS = Path(__file__).parents[1] / "streams" / "schemas"
# every schema under its $id, so tick-batch's "$ref": "tick.schema.json" resolves offline
REGISTRY: Registry = Registry().with_resources(
    (r.id() or "", r)
    for r in (
        Resource.from_contents(json.loads(p.read_text()))
        for p in sorted(SCHEMAS.glob("*.schema.json"))
    )
)


def schema_validator(name: str) -> jsonschema.Draft202012Validator:
    """A checked validator of ``streams/schemas/<name>.schema.json``."""
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=REGISTRY)
