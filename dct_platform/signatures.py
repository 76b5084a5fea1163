"""Electronic signatures (21 CFR Part 11 style), once, for every record that needs one.

A signature is the signer's re-entered password, their printed name, the time and the
meaning of the signing (approval, review, ...), linked to the exact content of the record
signed: a SHA-256 `fingerprint` of its canonical column values. A later change to the
record leaves the stored signature as it is but makes it stop matching, so that it reads
as invalidated wherever it is shown, and `require` refuses it.

Wrong passwords count in the sign-in throttle (`services.accounts`): guessing a password
at the signing prompt is guessing it at the sign-in page. So a caller commits even when
`sign` raises Unauthorized (`db_session.keep_despite_error`), and therefore calls `sign`
before changing anything else in that transaction.

Packages declare their own meanings with `declare_meaning` from their `init_app`, as they
declare roles and actions.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect, select
from sqlalchemy.orm import Mapper, Session

from dct_platform import audit
from dct_platform.errors import Conflict, PasswordChangeRequired, ValidationFailed
from dct_platform.localtime import LocalTime, ZoneLike, utc_to_local
from dct_platform.models import ElectronicSignature, User
from dct_platform.roles import MAX_NAME_LENGTH
from dct_platform.services import accounts
from dct_platform.services.accounts import AccountDisabled, ThrottlePolicy

# --- meanings ---------------------------------------------------------------------------

_CODE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$")


class Meaning(enum.StrEnum):
    """The core's meanings, as constants; stored as their plain codes."""

    APPROVAL = "approval"
    REVIEW = "review"
    RESPONSIBILITY = "responsibility"
    AUTHORSHIP = "authorship"


@dataclass(frozen=True)
class MeaningSpec:
    code: str
    label: str


_meanings: dict[str, MeaningSpec] = {}


def declare_meaning(code: str, label: str) -> str:
    """Declare what a signature can mean; a package prefixes its own ("logistics.release").

    `label` is what the signer and every reader see next to the printed name.
    """
    code = str(code)
    if not _CODE.match(code) or len(code) > MAX_NAME_LENGTH:
        raise ValueError(
            f"meaning {code!r}: lower-case words joined by '_', with at most one "
            f"'package.' prefix, up to {MAX_NAME_LENGTH} characters"
        )
    known = _meanings.get(code)
    if known is not None and str(known.label) != str(label):
        raise ValueError(f"meaning {code!r} is already declared with another label")
    _meanings[code] = MeaningSpec(code, label)
    return code


def is_meaning(code: object) -> bool:
    return isinstance(code, str) and code in _meanings


def meanings() -> list[MeaningSpec]:
    return list(_meanings.values())


def meaning_label(code: str) -> str:
    # A signature outlives the package that declared its meaning: it keeps its code.
    spec = _meanings.get(str(code))
    return str(spec.label) if spec else str(code)


for _meaning, _label in (
    (Meaning.APPROVAL, _l("Approval")),
    (Meaning.REVIEW, _l("Review")),
    (Meaning.RESPONSIBILITY, _l("Responsibility")),
    (Meaning.AUTHORSHIP, _l("Authorship")),
):
    declare_meaning(_meaning.value, _label)


# --- the signed content -------------------------------------------------------------------

FINGERPRINT_VERSION = 1
# Columns that change without the record's content changing (optimistic-lock counters,
# timestamps of the last save): a signature must survive them.
BOOKKEEPING = frozenset({"created_at", "updated_at", "version"})


def _mapper_of(record: object) -> Mapper[Any]:
    state = inspect(record, raiseerr=False)
    if state is None or not hasattr(state, "mapper"):
        raise TypeError(f"{record!r} is not a stored record and cannot be signed")
    mapper: Mapper[Any] = state.mapper
    return mapper


def record_ref(record: object) -> tuple[str, str]:
    """(table name, primary key) of `record`, as the audit trail names records."""
    mapper = _mapper_of(record)
    key = mapper.primary_key_from_instance(record)
    if any(part is None for part in key):
        raise ValueError(f"{record!r} has no primary key yet: flush it before signing")
    return mapper.local_table.name, "/".join(str(part) for part in key)  # type: ignore[attr-defined]


def signed_fields(record: object) -> list[str]:
    """The columns a signature on `record` covers: the model's `__signed_fields__` if it
    declares them, else every column but bookkeeping and what the trail leaves out."""
    cls = type(record)
    declared = getattr(cls, "__signed_fields__", None)
    columns = [a.key for a in _mapper_of(record).column_attrs]
    if declared is not None:
        unknown = set(declared) - set(columns)
        if unknown:
            raise TypeError(f"{cls.__name__}.__signed_fields__ names no columns {sorted(unknown)}")
        return sorted(declared)
    skip = BOOKKEEPING | getattr(cls, "__audit_exclude__", frozenset())
    return sorted(c for c in columns if c not in skip)


def _canonical(value: Any) -> Any:
    """A JSON value that is the same however the database handed the value back: what was
    set in Python and what is read back after a commit fingerprint alike."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return _canonical(value.value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    # Refused rather than str()-ed: a text form that may differ between reads would
    # invalidate signatures at random.
    raise TypeError(f"cannot fingerprint a value of type {type(value).__name__}")


def fingerprint(record: object) -> str:
    """SHA-256 (hex) of the record's signed content: its table, key and `signed_fields`."""
    table, record_id = record_ref(record)
    content = {
        "record": [table, record_id],
        "fields": {key: _canonical(getattr(record, key)) for key in signed_fields(record)},
    }
    canonical = json.dumps(
        [FINGERPRINT_VERSION, content], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- signing ------------------------------------------------------------------------------

NOT_SIGNED = "The password is not correct; the record is not signed."
MAX_REASON_LENGTH = 500


def _policy(policy: ThrottlePolicy | None) -> ThrottlePolicy:
    # The sign-in limits the app is configured with (LOGIN_*), so that the signing prompt
    # gives no more guesses than the sign-in page does.
    if policy is not None:
        return policy
    if has_app_context():
        return ThrottlePolicy.from_config(current_app.config)
    return ThrottlePolicy()


def _check_request(meaning: str, reason: str | None) -> str | None:
    if not is_meaning(meaning):
        known = ", ".join(sorted(_meanings))
        raise ValidationFailed.on_field(
            "meaning", f"Unknown signature meaning {meaning!r}; use one of: {known}."
        )
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        raise ValidationFailed.on_field(
            "reason", f"Give a reason of at most {MAX_REASON_LENGTH} characters."
        )
    return reason


def _check_signer(signer: User) -> None:
    # Before the password is checked, so that a disabled account spends no attempt on the
    # throttle; `accounts.check_password` checks it again after the password because a
    # sign-in must not tell a disabled account from a wrong password, and a signature
    # would (the signer is already known here, through their session).
    if not signer.is_enabled:
        raise AccountDisabled()
    if signer.must_change_password:
        # Someone else chose a temporary password and may know it: it cannot stand for
        # the signer's own act.
        raise PasswordChangeRequired()


def sign(
    session: Session,
    signer: User,
    password: str,
    meaning: str,
    record: object,
    now: datetime,
    *,
    remote_addr: str,
    reason: str | None = None,
    policy: ThrottlePolicy | None = None,
) -> ElectronicSignature:
    """Sign `record` as `signer`, who re-enters their password, with `meaning`.

    Raises ValidationFailed (422) for an unknown meaning, AccountDisabled (403) for a
    disabled account, PasswordChangeRequired (403) while the password is a temporary one,
    TooManyAttempts (429) when sign-in is throttled for the signer, and Unauthorized (401)
    for a wrong password. Commit after Unauthorized too, so that the attempt counts;
    `policy` defaults to the app's sign-in limits.
    """
    reason = _check_request(meaning, reason)
    _mapper_of(record)  # a mistake in the caller, found before the password is spent
    _check_signer(signer)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now {now!r} has no offset; its instant is unknown")
    accounts.check_password(
        session, signer.username, password, remote_addr=remote_addr, now=now,
        policy=_policy(policy), refusal=NOT_SIGNED,
    )  # fmt: skip
    session.flush()  # a record added in this transaction gets its key, and its defaults
    table, record_id = record_ref(record)
    what = f"Sign {table} {record_id} ({meaning})"
    with audit.acting(session, signer, now, reason, what=what):
        signature = ElectronicSignature(
            signer_id=signer.id,
            printed_name=signer.display_name,
            meaning=meaning,
            signed_at=now.astimezone(UTC),
            record_table=table,
            record_id=record_id,
            fingerprint=fingerprint(record),
            fingerprint_version=FINGERPRINT_VERSION,
            reason=reason,
        )
        session.add(signature)
    return signature


# --- reading and requiring ----------------------------------------------------------------


def _model_of(table: str) -> type[Any] | None:
    for mapper in ElectronicSignature.registry.mappers:
        if mapper.local_table.name == table:  # type: ignore[attr-defined]
            return mapper.class_
    return None


def _load(session: Session, table: str, record_id: str) -> object | None:
    model = _model_of(table)
    if model is None:  # the package that owned the table is no longer loaded
        return None
    columns = inspect(model).primary_key
    parts = record_id.split("/")
    if len(parts) != len(columns):
        return None
    try:
        key = tuple(c.type.python_type(p) for c, p in zip(columns, parts, strict=True))
    except (TypeError, ValueError, NotImplementedError):
        return None
    return session.get(model, key if len(key) > 1 else key[0])


def _matches(signature: ElectronicSignature, current: str | None) -> bool:
    return (
        current is not None
        and signature.fingerprint_version == FINGERPRINT_VERSION
        and signature.fingerprint == current
    )


def is_valid(session: Session, signature: ElectronicSignature) -> bool:
    """Whether the signed record still exists with exactly the content that was signed.

    A record changed in this session but not yet committed counts as changed: the change
    is about to be stored.
    """
    record = _load(session, signature.record_table, signature.record_id)
    return _matches(signature, fingerprint(record) if record is not None else None)


@dataclass(frozen=True)
class SignatureView:
    """A signature as it is shown with its record: who, when, what it means, and whether
    the record is still as signed."""

    id: int
    signer_id: int
    printed_name: str
    meaning: str
    meaning_label: str
    signed_at: datetime
    reason: str | None
    valid: bool

    def signed_at_local(self, zone: ZoneLike) -> LocalTime:
        """The signing time on the clock of whoever reads it (their zone)."""
        return utc_to_local(self.signed_at, zone)

    def describe(self, zone: ZoneLike) -> str:
        """The signature's manifestation, e.g. `Signed by Anna Weber, 2026-03-10 10:30 CET:
        Approval`, marked when the record has changed since."""
        text = f"Signed by {self.printed_name}, {self.signed_at_local(zone)}: {self.meaning_label}"
        return text if self.valid else f"{text} (invalidated: the record changed after signing)"


def _view(signature: ElectronicSignature, valid: bool) -> SignatureView:
    return SignatureView(
        id=signature.id,
        signer_id=signature.signer_id,
        printed_name=signature.printed_name,
        meaning=signature.meaning,
        meaning_label=meaning_label(signature.meaning),
        signed_at=signature.signed_at,
        reason=signature.reason,
        valid=valid,
    )


def _stored(session: Session, record: object) -> list[ElectronicSignature]:
    table, record_id = record_ref(record)
    return list(
        session.scalars(
            select(ElectronicSignature)
            .where(
                ElectronicSignature.record_table == table,
                ElectronicSignature.record_id == record_id,
            )
            .order_by(ElectronicSignature.signed_at, ElectronicSignature.id)
        )
    )


def signatures_of(session: Session, record: object) -> list[SignatureView]:
    """Every signature on `record`, oldest first, each valid or invalidated; one query.

    Callers decide first whether the reader may see the record.
    """
    current = fingerprint(record)
    return [_view(s, _matches(s, current)) for s in _stored(session, record)]


class SignatureRequired(Conflict):
    """The record needs a valid signature of some meaning, and has none."""

    code = "signature_required"


def require(session: Session, record: object, meaning: str) -> ElectronicSignature:
    """The newest valid signature of `meaning` on `record`, or SignatureRequired.

    A conflict (409), not a refusal (403): the caller may well be allowed to act; it is
    the record's state (unsigned, or changed since it was signed) that stands in the way,
    and signing it, not other rights, resolves it.
    """
    if not is_meaning(meaning):
        raise ValueError(f"undeclared signature meaning {meaning!r}")
    current = fingerprint(record)
    found = [s for s in _stored(session, record) if s.meaning == meaning]
    for signature in reversed(found):
        if _matches(signature, current):
            return signature
    table, record_id = record_ref(record)
    label = meaning_label(meaning)
    details = {"meaning": meaning, "record": f"{table}/{record_id}"}
    if found:
        raise SignatureRequired(
            f"The record was changed after its signature ({label}); it must be signed again.",
            {**details, "invalidated": len(found)},
        )
    raise SignatureRequired(
        f"The record has no {label} signature; it must be signed first.", details
    )
