"""Schemathesis against the app's own OpenAPI document, run through its engine (what its CLI
runs): see tests/security/test_api_fuzz.py for what it checks and why this way."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import schemathesis
from flask import Flask
from schemathesis.engine import events, from_schema

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
    "response_headers_conformance",
]
SEED = 20260310
EXAMPLES_PER_OPERATION = 10


def fuzz_schema(app: Flask, headers: dict[str, str], skipped: list[tuple[str, str]]) -> Any:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema.config.update(headers=headers, workers=1)
    schema.config.seed = SEED
    # Its cache would replay observations of earlier runs (and write .schemathesis/).
    schema.config.cache.enabled = False
    schema.config.generation.update(
        max_examples=EXAMPLES_PER_OPERATION,
        deterministic=True,  # the same requests on every run and every machine
        database="none",  # and none replayed from an earlier run's example database
    )
    checks = os.environ.get("DCT_FUZZ_CHECKS", ",".join(CHECKS))
    schema.config.checks.update(included_check_names=checks.split(","))
    for method, path in skipped:
        schema = schema.exclude(method=method, path=path)
    return schema


def fuzz_run(schema: Any) -> tuple[list[str], Counter[str]]:
    """Run every phase; return each failure with a request that reproduces it, and how
    many responses of each status the run saw."""
    failures: list[str] = []
    statuses: Counter[str] = Counter()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None:
                    statuses[str(interaction.response.status_code)] += 1
            for checks in event.recorder.checks.values():
                failures.extend(
                    f"{info.failure.operation or event.label}: {info.failure.title}\n"
                    f"{info.code_sample}"
                    for info in (check.failure_info for check in checks)
                    if info is not None
                )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"schemathesis error: {event}")
    return sorted(set(failures)), statuses
