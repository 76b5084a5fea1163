"""The audit trail: one generic mechanism for every regulated record.

Services declare who acts, when and why with `acting(...)`; a flush listener records what
changed on every model marked `Audited`: one readable action (`AuditAction`) and under it
one entry per changed field (`AuditEntry`). A flush of audited changes outside
`acting(...)` fails, so no change goes unattributed; database triggers refuse any other
write to an audited table (`audit_ddl.py`).

No global queue: a transaction writes its entries unchained, so unrelated writes never
wait for each other. The sealer (`seal`, the `core.audit-seal` job) then gives committed
entries their place in the one hash chain, in the order it finds them; an entry that
commits late is sealed in a later run, never skipped. `verify_chain` names the first broken
link, an entry left unsealed for longer than `UNSEALED_ALERT`, and any difference from the
signed checkpoints; it verifies incrementally from the newest checkpoint unless asked for
a full pass.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, event, func, insert, inspect, select, tuple_, update
from sqlalchemy.orm import Mapper, Session

from dct_platform.audit_anchor import CheckpointStore, check_against_checkpoints
from dct_platform.audit_guard import lower_flag, raise_flag, writing_audit_tables
from dct_platform.models.audit import AuditAction, AuditChainHead, AuditEntry
from dct_platform.models.mixins import Audited
from dct_platform.timeutil import utcnow

GENESIS_HASH = "0" * 64
REDACTED = "[redacted]"
_CONTEXT_KEY = "dct_audit_context"
PERSONAL_DATA_SHOWN_AS = "[personal data]"
# Execution option for the rare bulk statement on an audited table that is bookkeeping,
# not a change of regulated data (e.g. the time of a user's last sign-in).
EXEMPT = "dct_audit_exempt"


class AuditContextMissing(RuntimeError):
    """Audited records were changed without saying who changed them."""


class AuditBypassRefused(RuntimeError):
    """A bulk statement would change audited records without the flush listener."""


# Entries unsealed for longer than this raise the same alert as a broken link.
UNSEALED_ALERT = timedelta(minutes=1)
_FLAG_KEY = "dct_audit_flag"


@dataclass
class AuditContext:
    actor_id: int | None
    actor_name: str
    now: datetime
    reason: str | None = None
    what: str | None = None
    # The action row, written at the block's first audited flush.
    action_id: int | None = None


@contextmanager
def acting(
    session: Session,
    actor: Any | None,
    now: datetime,
    reason: str | None = None,
    *,
    what: str,
    system: str | None = None,
) -> Iterator[AuditContext]:
    """Attribute every audited change flushed inside the block to `actor` (or a system job).

    `what` says what was done, naming the record as its readers know it ("Transfer
    patient B1-001 to site B2"): the trail shows one line per action with it. Never
    personal data: administrators read every action.
    """
    if actor is None and not system:
        raise ValueError("an audited change needs an actor or a named system process")
    ctx = AuditContext(
        actor_id=getattr(actor, "id", None),
        actor_name=actor.username if actor is not None else f"system:{system}",
        now=now,
        reason=reason,
        what=what,
    )
    previous = session.info.get(_CONTEXT_KEY)
    session.info[_CONTEXT_KEY] = ctx
    try:
        yield ctx
        session.flush()
    finally:
        session.info[_CONTEXT_KEY] = previous


def _serialise(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# The fields each entry's hash covers. Version 1 is what entries sealed before the sealer
# existed were hashed with; they keep it, so that the chain still verifies.
_HASHED_V1 = (
    "seq",
    "prev_hash",
    "occurred_at",
    "actor_id",
    "actor_name",
    "action",
    "table_name",
    "record_id",
    "field",
    "old_value",
    "new_value",
    "reason",
)
_HASHED_V2 = ("seq", "prev_hash", "id", "action_id", "occurred_at", "recorded_at", "actor_id",
              "actor_name", "action", "table_name", "record_id", "field", "old_value",
              "new_value", "reason")  # fmt: skip


def entry_hash(entry: dict[str, Any]) -> str:
    version = entry.get("hash_version", 1)
    fields = _HASHED_V2 if version >= 2 else _HASHED_V1
    payload = [
        value.isoformat(timespec="microseconds") if isinstance(value, datetime) else value
        for value in (entry[f] for f in fields)
    ]
    if version >= 2:
        payload.insert(0, 2)
    canonical = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _record_id(obj: Any) -> str:
    mapper = inspect(obj).mapper
    return "/".join(str(v) for v in mapper.primary_key_from_instance(obj))


def _columns(obj: Audited) -> list[str]:
    cls = type(obj)
    skip = cls.__audit_exclude__
    return [a.key for a in inspect(obj).mapper.column_attrs if a.key not in skip]


def _shown(cls: type[Audited], key: str, value: Any) -> str | None:
    if value is not None and key in cls.__audit_redact__:
        return REDACTED
    return _serialise(value)


def _changes(session: Session) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(obj: Audited, action: str, key: str, old: Any, new: Any) -> None:
        rows.append(
            {
                "action": action,
                "table_name": obj.__tablename__,
                "record_id": _record_id(obj),
                "field": key,
                "old_value": _shown(type(obj), key, old),
                "new_value": _shown(type(obj), key, new),
            }
        )

    for obj in session.new:
        if isinstance(obj, Audited):
            for key in _columns(obj):
                value = getattr(obj, key)
                if value is not None:
                    add(obj, "create", key, None, value)
    for obj in session.dirty:
        if not isinstance(obj, Audited) or not session.is_modified(obj):
            continue
        state = inspect(obj)
        for key in _columns(obj):
            hist = state.attrs[key].history
            if not hist.has_changes():
                continue
            old = hist.deleted[0] if hist.deleted else None
            new = hist.added[0] if hist.added else None
            if _serialise(old) != _serialise(new):
                add(obj, "update", key, old, new)
    for obj in session.deleted:
        if isinstance(obj, Audited):
            state = inspect(obj)
            for key in _columns(obj):
                hist = state.attrs[key].history
                old = hist.deleted[0] if hist.deleted else (hist.unchanged or [None])[0]
                add(obj, "delete", key, old, None)
    return rows


def _has_audited_changes(session: Session) -> bool:
    return any(
        isinstance(obj, Audited) for group in (session.new, session.dirty, session.deleted)
        for obj in group
    )  # fmt: skip


@event.listens_for(Session, "before_flush")
def _open_the_guard(session: Session, _flush_context: Any, _instances: Any) -> None:
    # The audited-table triggers let this flush through, and only this flush: a Core or raw
    # statement on the same tables, before or after it, is refused.
    if _has_audited_changes(session):
        session.info[_FLAG_KEY] = raise_flag(session.connection()) or True


@event.listens_for(Session, "after_flush_postexec")
def _close_the_guard(session: Session, _flush_context: Any) -> None:
    if session.info.pop(_FLAG_KEY, None) is not None:
        lower_flag(session.connection())


@event.listens_for(Session, "after_soft_rollback")
def _guard_closed_by_rollback(session: Session, _previous: Any) -> None:
    # PostgreSQL forgets a transaction-local setting on rollback; SQLite's flag is ours.
    flag = session.info.pop(_FLAG_KEY, None)
    if isinstance(flag, list):
        flag[0] = False


def _summary(ctx: AuditContext, rows: list[dict[str, Any]]) -> str:
    if ctx.what:
        return ctx.what[:300]
    records = dict.fromkeys(f"{r['action']} {r['table_name']} {r['record_id']}" for r in rows)
    return "; ".join(records)[:300]


@event.listens_for(Session, "after_flush")
def _write_audit_entries(session: Session, _flush_context: Any) -> None:
    rows = _changes(session)
    if not rows:
        return
    ctx: AuditContext | None = session.info.get(_CONTEXT_KEY)
    if ctx is None:
        tables = sorted({r["table_name"] for r in rows})
        raise AuditContextMissing(f"changes to {tables} flushed outside audit.acting(...)")
    conn = session.connection()
    if ctx.action_id is None:
        inserted = conn.execute(
            insert(AuditAction).values(
                occurred_at=ctx.now,
                actor_id=ctx.actor_id,
                actor_name=ctx.actor_name,
                summary=_summary(ctx, rows),
                reason=ctx.reason,
            )
        ).inserted_primary_key
        assert inserted is not None  # a single-row INSERT always reports its key
        ctx.action_id = inserted[0]
    for row in rows:
        row.update(
            action_id=ctx.action_id,
            occurred_at=ctx.now,
            actor_id=ctx.actor_id,
            actor_name=ctx.actor_name,
            reason=ctx.reason,
        )
    # Unchained: no lock shared with any other transaction. The sealer chains them.
    conn.execute(insert(AuditEntry), rows)


def seal(session: Session, batch_size: int = 5000) -> int:
    """Chain the committed, unsealed entries (oldest first); the number sealed.

    Sealers queue on the chain head's row, so two at once seal each entry once. Commit
    after each call: the caller's transaction holds the head until then.
    """
    conn = session.connection()
    head = conn.execute(
        select(AuditChainHead.last_seq, AuditChainHead.last_hash)
        .where(AuditChainHead.id == 1)
        .with_for_update()
    ).one()
    # Read after the lock: what another sealer sealed meanwhile is not picked up again.
    rows = (
        conn.execute(
            select(*AuditEntry.__table__.columns)
            .where(AuditEntry.seq.is_(None))
            .order_by(AuditEntry.id)
            .limit(batch_size)
        )
        .mappings()
        .all()
    )
    if not rows:
        return 0
    seq, prev = head.last_seq, head.last_hash
    sealed = []
    for row in rows:
        seq += 1
        entry = {**row, "seq": seq, "prev_hash": prev}
        prev = entry_hash(entry)
        sealed.append(
            {"b_id": row["id"], "b_seq": seq, "b_prev": entry["prev_hash"], "b_hash": prev}
        )
    table = AuditEntry.__table__
    with writing_audit_tables(conn):
        conn.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.seq.is_(None))
            .values(seq=bindparam("b_seq"), prev_hash=bindparam("b_prev"),
                    entry_hash=bindparam("b_hash")),
            sealed,
        )  # fmt: skip
        conn.execute(
            update(AuditChainHead)
            .where(AuditChainHead.id == 1)
            .values(last_seq=seq, last_hash=prev)
        )
    return len(sealed)


def seal_all(session: Session) -> int:
    """Seal everything committed so far, committing after each batch."""
    total = 0
    while sealed := seal(session):
        session.commit()
        total += sealed
    session.commit()
    return total


@event.listens_for(Session, "do_orm_execute")
def _refuse_unaudited_bulk_changes(state: Any) -> None:
    bulk = state.is_insert or state.is_update or state.is_delete
    if not bulk or state.execution_options.get(EXEMPT):
        return
    mapper = state.bind_mapper
    if mapper is not None and issubclass(mapper.class_, Audited):
        verb = "INSERT" if state.is_insert else "UPDATE" if state.is_update else "DELETE"
        raise AuditBypassRefused(
            f"bulk {verb} on {mapper.class_.__name__} would escape the audit trail; "
            "change the objects through the session instead"
        )


def personal_tables() -> frozenset[str]:
    return frozenset(
        m.class_.__tablename__
        for m in AuditEntry.registry.mappers
        if issubclass(m.class_, Audited) and m.class_.__personal_data__
    )


def _personal_fields_of_records(
    session: Session, entries: list[AuditEntry]
) -> set[tuple[str, str, str]]:
    """(table, record id, field) of values that are personal data only for some records,
    such as the name and e-mail of a patient's portal account."""
    by_table: dict[str, set[str]] = {}
    for entry in entries:
        by_table.setdefault(entry.table_name, set()).add(entry.record_id)
    hidden: set[tuple[str, str, str]] = set()
    for mapper in AuditEntry.registry.mappers:
        cls = mapper.class_
        if not issubclass(cls, Audited) or cls.__tablename__ not in by_table:
            continue
        fields = cls.__personal_fields__
        if not fields:
            continue
        for record_id in cls.personal_records(session, by_table[cls.__tablename__]):
            hidden.update((cls.__tablename__, record_id, f) for f in fields)
    return hidden


def masked_for_oversight(session: Session, entries: list[AuditEntry]) -> list[dict[str, Any]]:
    """Entries as an administrator may read them: personal data values hidden.

    The stored entries (and their hashes) keep the real values; only this view hides them.
    """
    hidden = personal_tables()
    hidden_fields = _personal_fields_of_records(session, entries)
    rows = []
    for entry in entries:
        row = {c.key: getattr(entry, c.key) for c in AuditEntry.__table__.columns}
        if entry.table_name in hidden or (
            (entry.table_name, entry.record_id, entry.field) in hidden_fields
        ):
            for key in ("old_value", "new_value"):
                if row[key] is not None:
                    row[key] = PERSONAL_DATA_SHOWN_AS
        rows.append(row)
    return rows


def _want_old_values(mapper: Mapper[Any], cls: type) -> None:
    """Load a column's stored value before it is overwritten, so the trail has the old value."""
    if not issubclass(cls, Audited):
        return
    for attr in mapper.column_attrs:
        event.listen(getattr(cls, attr.key), "set", _noop_set, active_history=True)


def _noop_set(target: Any, value: Any, oldvalue: Any, initiator: Any) -> Any:
    return value


event.listen(Mapper, "mapper_configured", _want_old_values)


def history(session: Session, records: list[tuple[str, str]], limit: int = 500) -> list[AuditEntry]:
    """Entries for the given (table, record id) pairs, newest first: a record's full story.

    Callers decide access first; the trail holds old values that only the record's
    viewers may see.
    """
    if not records:
        return []
    condition = tuple_(AuditEntry.table_name, AuditEntry.record_id).in_(records)
    return list(
        session.scalars(
            select(AuditEntry).where(condition).order_by(AuditEntry.id.desc()).limit(limit)
        )
    )


@dataclass(frozen=True)
class VerificationResult:
    ok: bool
    checked: int
    broken_seq: int | None = None
    problem: str | None = None


def verify_chain(
    session: Session,
    anchor: CheckpointStore | None = None,
    *,
    full: bool = False,
    now: datetime | None = None,
    batch_size: int = 5000,
) -> VerificationResult:
    """Check the sealed chain and report the first thing that does not hold.

    First every signed checkpoint: its entry must still be there with the signed hash (a
    rewrite of the chain, even with every hash recomputed, or a removed tail fails here).
    Then the chain is recomputed link by link, from the newest checkpoint (its hash is
    trusted, being signed) or, with `full` or without checkpoints, from the first entry.
    Last, entries still unsealed `UNSEALED_ALERT` after they were recorded are reported:
    a sealer that stopped is as much a problem as a broken link.
    """
    head = session.execute(
        select(AuditChainHead).where(AuditChainHead.id == 1)
    ).scalar_one_or_none()
    if head is None:
        return VerificationResult(False, 0, None, "the chain head is missing")
    prev_hash, expected_seq = GENESIS_HASH, 1
    if anchor is not None:
        if problem := check_against_checkpoints(session, anchor, head.last_seq):
            return VerificationResult(False, 0, problem.seq, problem.problem)
        checkpoints, _ = anchor.read()
        if checkpoints and not full:
            newest = max(checkpoints, key=lambda cp: cp.seq)
            prev_hash, expected_seq = newest.entry_hash, newest.seq + 1
    checked, last_seq = 0, expected_seq - 1
    columns = [c for c in AuditEntry.__table__.columns]
    while True:
        batch = (
            session.execute(
                select(*columns)
                .where(AuditEntry.seq >= expected_seq)
                .order_by(AuditEntry.seq)
                .limit(batch_size)
            )
            .mappings()
            .all()
        )
        if not batch:
            break
        for row in batch:
            entry = dict(row)
            seq = entry["seq"]
            if seq != expected_seq:
                return VerificationResult(
                    False, checked, expected_seq, f"entry {expected_seq} is missing"
                )
            if entry["prev_hash"] != prev_hash:
                return VerificationResult(
                    False, checked, seq, f"entry {seq} does not link to entry {seq - 1}"
                )
            if entry_hash(entry) != entry["entry_hash"]:
                return VerificationResult(
                    False, checked, seq, f"entry {seq} was altered after it was written"
                )
            prev_hash, expected_seq, last_seq = entry["entry_hash"], seq + 1, seq
            checked += 1
    if head.last_seq != last_seq or head.last_hash != prev_hash:
        return VerificationResult(
            False,
            checked,
            last_seq + 1,
            f"entries after {last_seq} were removed (head says {head.last_seq})",
        )
    stale = session.execute(
        select(AuditEntry.id, AuditEntry.recorded_at)
        .where(AuditEntry.seq.is_(None))
        .order_by(AuditEntry.id)
        .limit(1)
    ).first()
    if stale is not None and stale.recorded_at < (now or utcnow()) - UNSEALED_ALERT:
        unsealed = session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.seq.is_(None))
        )
        return VerificationResult(
            False,
            checked,
            None,
            f"{unsealed} entries are not sealed into the chain; the oldest (id {stale.id}) "
            f"was recorded at {stale.recorded_at.isoformat(timespec='seconds')}: "
            "is the scheduler's core.audit-seal job running?",
        )
    return VerificationResult(True, checked)
