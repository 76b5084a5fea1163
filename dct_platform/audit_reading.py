"""The audit trail as investigators and inspectors read it.

One line per action (who did what, when, why), and under it the changed fields of each
record it touched: field labels instead of column names, subject and site numbers instead
of ids, times in the reader's zone to the minute, bookkeeping columns left out. The
stored per-field entries stay the evidence; this only reads them. Callers decide what the
reader may see first (`audit.masked_for_oversight` for administrators).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import false, or_, select, tuple_
from sqlalchemy.orm import Mapper, Session

from dct_platform.audit import PERSONAL_DATA_SHOWN_AS, REDACTED
from dct_platform.extensions import Base
from dct_platform.models import AuditAction, AuditEntry, Patient
from dct_platform.models.mixins import Audited
from dct_platform.services.patients import patient_record_keys
from dct_platform.timeutil import UTCDateTime, format_local

VERB = {"create": "added", "update": "changed", "delete": "removed"}


@dataclass(frozen=True)
class FieldChange:
    label: str
    old: str
    new: str


@dataclass
class RecordChange:
    description: str  # "Patient B1-001"
    change: str  # added / changed / removed
    fields: list[FieldChange] = field(default_factory=list)


@dataclass
class ReadableAction:
    action_id: int | None
    occurred_at: datetime
    recorded_at: datetime | None
    actor: str
    summary: str
    reason: str | None
    sealed: bool
    records: list[RecordChange] = field(default_factory=list)
    # The action's first entry: orders actions recorded in the same instant.
    first_entry_id: int = 0

    def when(self, tz_name: str) -> str:
        return format_local(self.occurred_at, tz_name)


def _audited_models() -> dict[str, type[Any]]:
    return {
        m.class_.__tablename__: m.class_
        for m in AuditEntry.registry.mappers
        if issubclass(m.class_, Audited)
    }


def _humanise(name: str) -> str:
    name = name.removesuffix("_id").replace("_", " ").strip()
    return name[:1].upper() + name[1:]


def _mapper(model: type[Base]) -> Mapper[Any]:
    return model.__mapper__


def field_label(model: type[Base] | None, key: str) -> str:
    if model is not None and key in _mapper(model).columns:
        label = _mapper(model).columns[key].info.get("label")
        if label:
            return str(label)
    return _humanise(key)


def record_type_label(table: str) -> str:
    """What a filter calls the records of a table ("Patient", "Site assignment")."""
    noun = _noun(_audited_models().get(table), table)
    return noun.removesuffix(":").removesuffix(" of").removesuffix(" of site").strip()


def _noun(model: type | None, table: str) -> str:
    noun = getattr(model, "__audit_noun__", "") if model else ""
    return noun or _humanise(table)


class _Names:
    """Looks up, once per page, what people call the records an action touched or named."""

    def __init__(self, session: Session, models: Mapping[str, type[Any]]) -> None:
        self.session = session
        self.models = models
        self.wanted: dict[str, set[int]] = defaultdict(set)
        self.found: dict[str, dict[int, str]] = {}

    def want(self, table: str, record_id: str | None) -> None:
        if record_id is not None and record_id.isdigit() and table in self.models:
            self.wanted[table].add(int(record_id))

    def resolve(self) -> None:
        for table, ids in self.wanted.items():
            self.found[table] = self.models[table].audit_names(self.session, sorted(ids))

    def name(self, table: str, record_id: str | None) -> str | None:
        if record_id is None or not record_id.isdigit():
            return None
        return self.found.get(table, {}).get(int(record_id))


def _target_table(model: type[Base] | None, key: str) -> str | None:
    if model is None or key not in _mapper(model).columns:
        return None
    keys = list(_mapper(model).columns[key].foreign_keys)
    return keys[0].column.table.name if len(keys) == 1 else None


def _value(
    model: type[Base] | None, key: str, value: str | None, names: _Names, tz_name: str
) -> str:
    if value is None:
        return ""
    if value in (PERSONAL_DATA_SHOWN_AS, REDACTED):
        return value
    column = _mapper(model).columns[key] if model and key in _mapper(model).columns else None
    if column is not None:
        if show := column.info.get("show"):
            return str(show(value))
        if isinstance(column.type, UTCDateTime):
            try:
                return format_local(datetime.fromisoformat(value), tz_name)
            except ValueError:
                return value
    if target := _target_table(model, key):
        return names.name(target, value) or f"#{value}"
    if value in ("{}", "[]"):
        return ""
    if value in ("true", "false"):
        return "yes" if value == "true" else "no"
    if column is not None and hasattr(column.type, "enums"):
        return _humanise(value)
    return value


def entry_row(entry: AuditEntry) -> dict[str, Any]:
    return {c.key: getattr(entry, c.key) for c in AuditEntry.__table__.columns}


def read_actions(
    session: Session, entries: Iterable[Mapping[str, Any] | AuditEntry], tz_name: str
) -> list[ReadableAction]:
    """Group entries (stored entries, or their rows as dicts) into actions, newest first."""
    rows: list[Mapping[str, Any]] = [e if isinstance(e, Mapping) else entry_row(e) for e in entries]
    models = _audited_models()
    names = _Names(session, models)
    for e in rows:
        model = models.get(e["table_name"])
        names.want(e["table_name"], e["record_id"])
        if target := _target_table(model, e["field"] or ""):
            names.want(target, e["old_value"])
            names.want(target, e["new_value"])
    names.resolve()
    action_ids = {e["action_id"] for e in rows if e["action_id"] is not None}
    stored = {
        a.id: a
        for a in (
            session.scalars(select(AuditAction).where(AuditAction.id.in_(action_ids)))
            if action_ids
            else []
        )
    }

    actions: dict[object, ReadableAction] = {}
    records: dict[tuple[object, str, str], RecordChange] = {}
    for e in sorted(rows, key=lambda row: row["id"]):
        # Entries written before actions existed are grouped by who, when and why.
        key = e["action_id"] or ("entry", e["occurred_at"], e["actor_name"], e["reason"])
        action = actions.get(key)
        if action is None:
            row = stored.get(e["action_id"])
            action = actions[key] = ReadableAction(
                action_id=e["action_id"],
                occurred_at=e["occurred_at"],
                recorded_at=row.recorded_at if row else e.get("recorded_at"),
                actor=e["actor_name"],
                summary=row.summary if row else f"{VERB[e['action']].capitalize()} records",
                reason=e["reason"],
                sealed=True,
                first_entry_id=e["id"],
            )
        action.sealed = action.sealed and e["seq"] is not None
        model = models.get(e["table_name"])
        record_key = (key, e["table_name"], e["record_id"])
        record = records.get(record_key)
        if record is None:
            named = names.name(e["table_name"], e["record_id"]) or f"#{e['record_id']}"
            record = records[record_key] = RecordChange(
                f"{_noun(model, e['table_name'])} {named}", VERB[e["action"]]
            )
            action.records.append(record)
        hidden: frozenset[str] = getattr(model, "__audit_hidden__", frozenset())
        if e["field"] and e["field"] not in hidden:
            change = FieldChange(
                field_label(model, e["field"]),
                _value(model, e["field"], e["old_value"], names, tz_name),
                _value(model, e["field"], e["new_value"], names, tz_name),
            )
            # A new record's empty fields say nothing.
            if change.old or change.new or record.change == VERB["update"]:
                record.fields.append(change)
    return sorted(actions.values(), key=lambda a: (a.occurred_at, a.first_entry_id), reverse=True)


CSV_COLUMNS = (
    "action_id", "occurred_at_utc", "occurred_at_local", "recorded_at_utc", "who", "action",
    "reason", "record", "change", "field", "old_value", "new_value", "sealed",
)  # fmt: skip


def _iso(value: datetime | date | None) -> str:
    return value.isoformat() if value else ""


def actions_csv(actions: list[ReadableAction], tz_name: str) -> str:
    """One row per changed field, each carrying its action, for an inspector's spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for a in actions:
        common = [
            a.action_id or "",
            _iso(a.occurred_at),
            a.when(tz_name),
            _iso(a.recorded_at),
            a.actor,
            a.summary,
            a.reason or "",
        ]
        for r in a.records:
            for f in r.fields or [FieldChange("", "", "")]:
                row = [*common, r.description, r.change, f.label, f.old, f.new]
                writer.writerow([_safe_cell(str(v)) for v in row] + ["yes" if a.sealed else "no"])
    return out.getvalue()


def _safe_cell(value: str) -> str:
    # A cell starting with = + - @ is run as a formula by spreadsheet programs (CSV
    # injection): a reason typed as "=HYPERLINK(...)" must stay text.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def safe_cell(value: str) -> str:
    """`value` as a CSV cell that spreadsheet programs show as text and never run as a
    formula; for every CSV export, so that they all neutralise the same characters."""
    return _safe_cell(value)


@dataclass(frozen=True)
class TrailQuery:
    """Which entries a reader asks for; the admin page and the API ask the same way."""

    table: str = ""
    record: str = ""
    who: str = ""
    subject: str = ""
    since: datetime | None = None
    until: datetime | None = None


def trail_conditions(session: Session, query: TrailQuery) -> list[Any]:
    found: list[Any] = []
    if query.table:
        found.append(AuditEntry.table_name == query.table)
    if query.record:
        found.append(AuditEntry.record_id == query.record)
    if query.who:
        found.append(AuditEntry.actor_name == query.who)
    if query.subject:
        # A subject number is unique within a trial, not across trials: all of them.
        ids = list(
            session.scalars(select(Patient.id).where(Patient.subject_number == query.subject))
        )
        keys = patient_record_keys(session, ids) if ids else []
        found.append(
            tuple_(AuditEntry.table_name, AuditEntry.record_id).in_(keys) if keys else false()
        )
    if query.since is not None:
        found.append(AuditEntry.occurred_at >= query.since)
    if query.until is not None:
        found.append(AuditEntry.occurred_at < query.until)
    return found


@dataclass(frozen=True)
class TrailPage:
    entries: list[AuditEntry]
    # Where the next (older) page starts, when there is one.
    older: int | None


def trail_page(session: Session, conditions: list[Any], before: int | None, size: int) -> TrailPage:
    """The newest `size` entries matching `conditions` below entry id `before`, completed
    with every other entry of the actions they belong to, so that no action is cut in
    two. An action already shown on a newer page (it has a matching entry at or above
    `before`) is not repeated; a page never comes back empty while older actions exist."""
    while True:
        below = [*conditions, AuditEntry.id < before] if before else list(conditions)
        top = list(
            session.execute(
                select(AuditEntry.id, AuditEntry.action_id)
                .where(*below)
                .order_by(AuditEntry.id.desc())
                .limit(size)
            )
        )
        older = top[-1][0] if len(top) == size else None
        action_ids = {a for _, a in top if a is not None}
        if before and action_ids:
            shown = session.scalars(
                select(AuditEntry.action_id)
                .where(*conditions, AuditEntry.action_id.in_(action_ids), AuditEntry.id >= before)
                .distinct()
            )
            action_ids -= set(shown)
        loose = [i for i, a in top if a is None]
        if action_ids or loose or older is None:
            break
        before = older  # everything here belongs to actions already shown: look further
    wanted = []
    if action_ids:
        wanted.append(AuditEntry.action_id.in_(action_ids))
    if loose:
        wanted.append(AuditEntry.id.in_(loose))
    entries = (
        list(session.scalars(select(AuditEntry).where(or_(*wanted)).order_by(AuditEntry.id)))
        if wanted
        else []
    )
    return TrailPage(entries, older)
