"""The statuses every API operation answers whatever its handler does, in the document.

The handlers document their own refusals (`alt_response`: a role that may not act, a
taken number, a stale If-Match). What the platform's layers answer around every handler is
added here, once, so that no operation, core or feature, lists less than it answers:
401 and 403 from the bearer check, 404 from path ids (out of range, or outside the
caller's scope), 400, 413 and 415 for a body that is not the JSON the operation reads, 409
for a write the database refuses as conflicting, 422 for invalid input, unknown query
parameters included, and 503 while the database is unreachable. Every error status is
documented with the one error body (`ErrorSchema`), and no catch-all `default` response
hides an undocumented status.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

from apispec import APISpec, BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin

from dct_platform.errors import ErrorSchema

OPERATION_METHODS = ("get", "put", "post", "patch", "delete", "head", "options")
WRITE_METHODS = ("put", "post", "patch", "delete")

DOC_400 = (
    'The body is not valid JSON (`bad_request`, message "The request body is not valid '
    'JSON"), is nested too deep or holds an over-long number'
)
DOC_413 = "The body is larger than the server accepts (`payload_too_large`)"
DOC_415 = (
    "The body was not sent as JSON (`unsupported_media_type`): use Content-Type: application/json"
)
DOC_401 = "No valid bearer token was sent: missing, invalid, expired or revoked (`unauthorized`)"
DOC_403 = (
    "The account's password is temporary (`password_change_required`): change it with "
    "POST /api/v1/auth/password first"
)
DOC_404 = (
    "No such record for the caller (`not_found`): a record outside the caller's scope "
    "answers the same"
)
DOC_409 = (
    "The change conflicts with stored data or with a concurrent change of the same record "
    "(`conflict`, `stale_record`)"
)
DOC_503 = "The database is unreachable; try again shortly (`service_unavailable`)"
DOC_422 = (
    "Invalid input (`validation_error`): per-field messages in `details.fields`, where "
    'an unknown query parameter is named with ["Unknown parameter."]'
)


def _merge(description: str | None, addition: str) -> str:
    if not description or description == addition:
        return addition
    if addition in description:
        return description
    lines = description.split("\n") if description.startswith("- ") else [f"- {description}"]
    return "\n".join([*lines, f"- {addition}"])


class PlatformResponses(BasePlugin):
    """apispec plugin adding the platform's statuses to every operation (see the module).

    `public_endpoints` is the live set of endpoints that need no bearer token: a public
    handler documents its own 401, if any, and never meets the temporary-password check."""

    def __init__(self, public_endpoints: Collection[str]) -> None:
        self.public_endpoints = public_endpoints
        self.spec: APISpec | None = None

    def init_spec(self, spec: APISpec) -> None:
        super().init_spec(spec)
        self.spec = spec

    def _error_schema_ref(self) -> dict[str, Any]:
        assert self.spec is not None
        plugin = next(p for p in self.spec.plugins if isinstance(p, MarshmallowPlugin))
        assert plugin.converter is not None
        # Unannotated in apispec: for a Schema class it returns the {"$ref": ...} object.
        return cast(dict[str, Any], plugin.converter.resolve_nested_schema(ErrorSchema))

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        rule = kwargs.get("rule")
        public = rule is not None and rule.endpoint in self.public_endpoints
        has_path_ids = bool(rule.arguments) if rule is not None else "{" in (path or "")
        error = {"application/json": {"schema": self._error_schema_ref()}}
        for method, operation in (operations or {}).items():
            if method not in OPERATION_METHODS:
                continue
            added: list[tuple[int, str]] = [(422, DOC_422), (503, DOC_503)]
            if not public:
                added += [(401, DOC_401), (403, DOC_403)]
                if method in WRITE_METHODS:
                    added.append((409, DOC_409))
            if has_path_ids:
                added.append((404, DOC_404))
            if "requestBody" in operation:
                added += [(400, DOC_400), (413, DOC_413), (415, DOC_415)]
            responses = operation.setdefault("responses", {})
            for status, description in added:
                _document(responses, status, description)
            for status in list(responses):
                response = responses[status]
                if _is_error(status) and isinstance(response, dict):
                    response.setdefault("content", error)
            # The same status as int (from decorators) and str (added here) would be two
            # keys of one JSON object; sorted for a stable, readable document.
            operation["responses"] = {
                str(k): responses[k] for k in sorted(responses, key=lambda k: str(k).zfill(3))
            }


def _is_error(status: Any) -> bool:
    return str(status).isdigit() and int(status) >= 400


def _document(responses: dict[Any, Any], status: int, description: str) -> None:
    key = next((k for k in responses if str(k) == str(status)), None)
    current = responses.pop(key, None) if key is not None else None
    if isinstance(current, dict):
        current["description"] = _merge(current.get("description"), description)
        responses[str(status)] = current
    else:
        # Nothing yet, or a reference to flask-smorest's generic response (e.g.
        # UNPROCESSABLE_ENTITY, "Unprocessable Entity"): replaced by what the platform does.
        responses[str(status)] = {"description": description}
