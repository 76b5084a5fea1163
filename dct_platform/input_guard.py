"""Input the application can never store or compute with is refused before any view runs.

Fuzzing found that some input turned into a 500 deep inside the stack instead of a 4xx:
integers past 32 bits reaching the database, NUL characters (PostgreSQL text cannot hold
them), lone UTF-16 surrogates (not encodable as UTF-8), and JSON nested so deep that the
parser's recursion overflows. Schemas bound every integer they read (`schemas.Id`); this
module covers what no schema sees first: path integers, and the text and nesting of every
query string, form and JSON body, for the API and the pages alike.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask, request
from werkzeug.routing import IntegerConverter, Map

from dct_platform.errors import INVALID_FIELDS, DomainError, ValidationFailed

__all__ = ["MAX_DEPTH", "MAX_ID", "BoundedIntegerConverter", "check_request", "init_app"]

# Ids are PostgreSQL `integer` columns; anything larger cannot name a row and, bound as a
# parameter cast to integer, makes the database raise instead of finding nothing.
MAX_ID = 2**31 - 1

# Deeper than any document the API defines, far below the interpreter's recursion limit.
MAX_DEPTH = 32

# Python refuses to turn more than 4300 digits into an int (a ValueError that webargs does
# not expect); no number a client has reason to send comes anywhere near this.
MAX_NUMBER_DIGITS = 400

BAD_TEXT_MESSAGE = "Text may not contain NUL characters or unpaired UTF-16 surrogates."

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_BAD_IN_DUMP = re.compile(r"[\ud800-\udfff]|\\u0000")  # json.dumps escapes NUL even so

# The only ways a JSON body can carry NUL or a surrogate: the \u0000 and \uD800-\uDFFF
# escapes (raw control characters and encoded surrogates are invalid JSON or UTF-8).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|d[89a-f][0-9a-f]{2})", re.IGNORECASE)
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * MAX_NUMBER_DIGITS
# The body's skeleton: quotes and brackets only, both kinds of bracket written as [ ].
_UNIFY_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'[]{}"')))
_BRACKETED_STRING = re.compile(rb'"[^"]*"?')
_TOO_MANY_OPEN = b"[" * (MAX_DEPTH + 1)

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class BoundedIntegerConverter(IntegerConverter):
    """Flask's `int` converter, bounded to what an id column holds: a larger path value
    matches no route (404) instead of reaching the database."""

    regex = r"[0-9]+"  # `\d` would also accept digits of other scripts

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = MAX_ID,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


class JsonRefused(DomainError):
    status = 400
    code = "bad_request"


def _bad_text(value: str) -> bool:
    return _BAD_TEXT.search(value) is not None


def _printable(key: str) -> str:
    # The field name is echoed back; it must itself be text the response can carry.
    return _BAD_TEXT.sub("\ufffd", key)


def _nested(path: list[str | int], message: str) -> dict[str | int, Any] | list[str]:
    """marshmallow's shape for a field error: {"a": {0: {"b": [message]}}}; a bare
    [message] when the body itself is the bad string (an empty path)."""
    tree: dict[str | int, Any] | list[str] = [message]
    for part in reversed(path):
        tree = {part: tree}
    return tree


def _refuse(path: list[str | int]) -> None:
    raise ValidationFailed(INVALID_FIELDS, {"fields": _nested(path, BAD_TEXT_MESSAGE)})


def _find_bad_text(value: Any, path: list[str | int]) -> list[str | int] | None:
    """The path of the first string (key or value) holding NUL or a lone surrogate."""
    if isinstance(value, str):
        return path if _bad_text(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _bad_text(key):
                return [*path, _printable(key)]
            if (found := _find_bad_text(item, [*path, key])) is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _find_bad_text(item, [*path, index])) is not None:
                return found
    return None


class _NumberTooLong(ValueError):
    pass


def _bounded_int(digits: str) -> int:
    if len(digits) >= MAX_NUMBER_DIGITS:
        raise _NumberTooLong
    return int(digits)


def _brackets_outside_strings(body: bytes) -> bytes:
    """The body's brackets that are JSON structure, not text, all written as [ and ]."""
    # Escaped backslashes, then escaped quotes, go first: what is left of each string is
    # its two quotes and any brackets it holds.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = unescaped.translate(_UNIFY_BRACKETS, _NOT_STRUCTURE)
    # Removing two adjacent quotes removes an empty string, or joins two strings with no
    # structure between them: either way no bracket changes sides. Few strings remain.
    return _BRACKETED_STRING.sub(b"", skeleton.replace(b'""', b""))


def _nesting_within_limit(brackets: bytes) -> bool:
    """True when the brackets close within MAX_DEPTH levels. Each pass removes the
    innermost pairs, one level; brackets that do not pair up never empty, and that is a
    refusal too (such a body is not JSON)."""
    for _ in range(MAX_DEPTH):
        if not brackets:
            return True
        if _TOO_MANY_OPEN in brackets:  # the usual attack, refused without more passes
            return False
        inner_removed = brackets.replace(b"[]", b"")
        if len(inner_removed) == len(brackets):
            return False
        brackets = inner_removed
    return not brackets


def check_json_body(body: bytes) -> None:
    """Refuse a JSON body nested past MAX_DEPTH, with an over-long integer, or carrying NUL
    or a lone surrogate in any key or value. A clean body costs a few C-speed scans of its
    bytes; it is parsed here only when one of them finds something suspicious."""
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and not _nesting_within_limit(
        _brackets_outside_strings(body)
    ):
        raise JsonRefused(
            f"The JSON body is malformed or nested more than {MAX_DEPTH} levels deep.",
            {"max_depth": MAX_DEPTH},
        )
    suspect_text = _SUSPECT_ESCAPE.search(body) is not None
    if not suspect_text and _LONG_DIGITS not in body.translate(_DIGITS_AS_ZERO):
        return
    try:
        document = json.loads(body.decode("utf-8"), parse_int=_bounded_int)
    except _NumberTooLong:
        raise JsonRefused(
            f"The JSON body has an integer of {MAX_NUMBER_DIGITS} digits or more.",
            {"max_number_digits": MAX_NUMBER_DIGITS - 1},
        ) from None
    except ValueError:
        return  # not JSON: the parser that reads the body answers 400 for it
    if not suspect_text:
        return
    # Paired surrogates (an emoji from an ASCII-only encoder) also match the escape
    # pattern: one C-speed look at the decoded text settles most bodies without a walk.
    if _BAD_IN_DUMP.search(json.dumps(document, ensure_ascii=False)) is None:
        return
    if (path := _find_bad_text(document, [])) is not None:
        _refuse(path)


def _check_pairs(pairs: Any) -> None:
    for key, value in pairs:
        if _bad_text(key) or (isinstance(value, str) and _bad_text(value)):
            _refuse([_printable(key)])


def check_request() -> None:
    """Run before every request, API and pages: the views, schemas and forms behind it may
    then assume their text is storable and their JSON shallow."""
    _check_pairs(request.args.items(multi=True))
    _check_pairs((request.view_args or {}).items())
    if request.mimetype in _FORM_TYPES:
        _check_pairs(request.form.items(multi=True))
    elif request.is_json:
        check_json_body(request.get_data(cache=True))


def init_app(app: Flask) -> None:
    # Must precede every route: a rule binds its converter class when it is added.
    app.url_map.converters["int"] = BoundedIntegerConverter
    app.before_request(check_request)
