"""An operation takes what its document says, and nothing else.

Read from each blueprint's own documentation (flask-smorest's `_docs`, the same
declarations the OpenAPI document is generated from), so that the two never disagree:
- a query parameter the operation does not declare is refused (422) instead of being
  silently ignored, so that a misspelt filter (`?siteid=3`) never returns every row;
- a body the operation reads as JSON must be sent as JSON (415): a form-encoded body would
  otherwise read as an empty object and be answered with misleading "required" messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import request
from flask_smorest import Blueprint
from marshmallow import Schema

from dct_platform.errors import INVALID_FIELDS, UnsupportedMediaType, ValidationFailed

UNKNOWN_PARAMETER = "Unknown parameter."
NOT_JSON = "The request body must be JSON, sent with Content-Type: application/json."


@dataclass(frozen=True)
class OperationInput:
    query: frozenset[str]
    json_body: bool


Operations = dict[tuple[str, str], OperationInput]


def _loaded_names(schema: type[Schema] | Schema) -> set[str]:
    instance = schema() if isinstance(schema, type) else schema
    return {field.data_key or name for name, field in instance.load_fields.items()}


def operation_inputs(blp: Blueprint) -> Operations:
    """What each operation of `blp` reads, by (endpoint, METHOD)."""
    found: Operations = {}
    for endpoint, methods in blp._docs.items():
        for method, doc in methods.items():
            if not isinstance(doc, dict):  # the endpoint's own "parameters" entry
                continue
            query: set[str] = set()
            json_body = False
            for parameter in doc.get("arguments", {}).get("parameters", []):
                if parameter["in"] == "query":
                    query |= _loaded_names(parameter["schema"])
                elif parameter["in"] == "json":
                    json_body = True
            if pagination := doc.get("pagination"):
                query |= _loaded_names(pagination["parameters"]["schema"])
            key = (f"{blp.name}.{endpoint}", method.upper())
            found[key] = OperationInput(frozenset(query), json_body)
    return found


def check_input(operations: Operations) -> None:
    """Before an API handler runs (after the bearer check): refuse undeclared query
    parameters and non-JSON bodies."""
    method = "GET" if request.method == "HEAD" else request.method
    expected = operations.get((request.endpoint or "", method))
    if expected is None:  # not an API operation, or a method it lacks (405 follows)
        return
    if unknown := [name for name in request.args if name not in expected.query]:
        details: dict[str, Any] = {"fields": {name: [UNKNOWN_PARAMETER] for name in unknown}}
        raise ValidationFailed(INVALID_FIELDS, details)
    if expected.json_body and not request.is_json and (request.mimetype or request.content_length):
        raise UnsupportedMediaType(
            NOT_JSON, {"expected": "application/json", "received": request.mimetype or None}
        )
