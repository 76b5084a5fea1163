"""Optimistic concurrency on the API: the record's version as its ETag, If-Match to write.

A client that read version 3 sends `If-Match: "3"` with its change; if someone changed the
record in between, the change is refused with 412 instead of overwriting theirs. Without
If-Match the write still cannot be lost silently: two writers racing from the same version
get 409 for the second (the version check in the UPDATE itself).
"""

from __future__ import annotations

import re
from typing import Any

from flask import request

from dct_platform.errors import PreconditionFailed, expect_version

ETAG_HEADER = {
    "ETag": {
        "description": "The record's version; send it back in If-Match to change the record",
        "schema": {"type": "string"},
    }
}
_TAG = re.compile(r'\s*(?:W/)?"(\d{1,9})"\s*')


def etag(record: Any) -> dict[str, str]:
    return {"ETag": f'"{record.version}"'}


def check_if_match(record: Any) -> None:
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return
    match = _TAG.fullmatch(header)
    if match is None:
        raise PreconditionFailed(
            'If-Match must be the ETag of the record as you read it, e.g. "3".',
            {"current_version": record.version},
        )
    expect_version(record, int(match.group(1)), precondition=True)
