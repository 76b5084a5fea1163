"""The audit trail without a global queue: unchained writes, one sealer, no way around it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from dct_platform import audit
from dct_platform.audit import seal, seal_all, verify_chain
from dct_platform.audit_ddl import guarded_tables
from dct_platform.extensions import db
from dct_platform.models import AuditAction, AuditEntry, Patient, Site, User
from dct_platform.models.mixins import Audited
from dct_platform.services import patients as patient_service
from tests.support.database import is_postgres
from tests.support.world import World

postgres_only = pytest.mark.skipif(
    not is_postgres(), reason="SQLite has one writer at a time: its writers always queue"
)


def test_every_audited_table_is_guarded(app: Flask, world: World) -> None:
    audited = {
        m.class_.__tablename__ for m in db.Model.registry.mappers if issubclass(m.class_, Audited)
    }
    with app.app_context(), db.engine.connect() as conn:
        assert audited <= guarded_tables(conn)


@pytest.mark.parametrize(
    "statement",
    [
        lambda pid: (
            update(Patient.__table__)
            .where(Patient.__table__.c.id == pid)
            .values(status="withdrawn")
        ),
        lambda pid: delete(Patient.__table__).where(Patient.__table__.c.id == pid),
        lambda pid: text(f"UPDATE patients SET timezone = 'UTC' WHERE id = {int(pid)}"),
        lambda pid: text(
            "INSERT INTO sponsors (name, created_at, updated_at) "
            "VALUES ('Shadow', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ),
    ],
    ids=["core update", "core delete", "raw update", "raw insert"],
)
def test_changes_that_bypass_the_trail_are_refused(
    app: Flask, world: World, statement: object
) -> None:
    pid = world.patients["anna"].id
    with app.app_context():
        s = db.session
        before = s.scalar(select(func.count()).select_from(AuditEntry))
        with pytest.raises(DBAPIError, match="refused"):
            s.execute(statement(pid))  # type: ignore[operator]
        s.rollback()
        patient = s.get(Patient, pid)
        assert patient.status.value == "enrolled" and patient.timezone == "Europe/Berlin"
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == before


def test_the_recorded_time_comes_from_the_database_clock(app: Flask, world: World) -> None:
    backdated = datetime(2020, 1, 1, tzinfo=UTC)
    with app.app_context():
        s = db.session
        coord = s.get(User, world.users["coord_berlin"].id)
        anna = s.get(Patient, world.patients["anna"].id)
        patient_service.update_patient(
            s, coord, backdated, anna, {"status": "withdrawn"}, reason="Consent withdrawn"
        )
        s.commit()
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.field == "status").order_by(AuditEntry.id.desc())
        ).first()
        assert entry.occurred_at == backdated
        assert abs(entry.recorded_at - datetime.now(UTC)) < timedelta(minutes=5)
        action = s.get(AuditAction, entry.action_id)
        assert action.occurred_at == backdated and action.recorded_at > backdated


def test_one_readable_action_per_user_action(app: Flask, world: World) -> None:
    with app.app_context():
        s = db.session
        coord = s.get(User, world.users["coord_berlin"].id)
        anna = s.get(Patient, world.patients["anna"].id)
        patient_service.transfer_patient(
            s, coord, datetime.now(UTC), anna, s.get(Site, world.tokyo.id), "Moved to Tokyo"
        )
        s.commit()
        action = s.scalars(select(AuditAction).order_by(AuditAction.id.desc())).first()
        assert action.actor_name == "coord_berlin" and action.reason == "Moved to Tokyo"
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action_id == action.id)).all()
        # The patient's site, the closed period and the new one: all under the one action.
        assert {e.table_name for e in entries} == {"patients", "patient_site_assignments"}
        assert any(e.field == "site_id" and e.new_value == str(world.tokyo.id) for e in entries)


def test_entries_are_sealed_into_one_chain(app: Flask, world: World) -> None:
    with app.app_context():
        s = db.session
        coord = s.get(User, world.users["coord_berlin"].id)
        anna = s.get(Patient, world.patients["anna"].id)
        patient_service.update_patient(s, coord, datetime.now(UTC), anna, {"timezone": "UTC"})
        s.commit()
        unsealed = s.scalar(select(func.count()).where(AuditEntry.seq.is_(None)))
        assert unsealed > 0
        assert verify_chain(s).ok  # freshly written, not yet overdue
        assert seal_all(s) == unsealed
        assert s.scalar(select(func.count()).where(AuditEntry.seq.is_(None))) == 0
        assert verify_chain(s, full=True).ok


def test_entries_left_unsealed_raise_the_alert(app: Flask, world: World) -> None:
    with app.app_context():
        s = db.session
        coord = s.get(User, world.users["coord_berlin"].id)
        anna = s.get(Patient, world.patients["anna"].id)
        patient_service.update_patient(s, coord, datetime.now(UTC), anna, {"timezone": "UTC"})
        s.commit()
        later = datetime.now(UTC) + audit.UNSEALED_ALERT + timedelta(seconds=5)
        result = verify_chain(s, now=later)
        assert not result.ok and "not sealed" in (result.problem or "")
        seal_all(s)
        assert verify_chain(s, now=later).ok


def _change_in_thread(
    app: Flask, patient_id: int, actor_id: int, hold: threading.Event | None, done: list[str]
) -> threading.Thread:
    def run() -> None:
        with app.app_context():
            s = db.session
            patient = s.get(Patient, patient_id)
            patient_service.update_patient(
                s, s.get(User, actor_id), datetime.now(UTC), patient, {"preferred_language": "de"}
            )
            if hold is not None:
                hold.wait(30)  # the transaction stays open, its audited change flushed
            s.commit()
            done.append(patient.subject_number)
            db.session.remove()

    return threading.Thread(target=run)


@postgres_only
def test_unrelated_audited_transactions_do_not_wait_for_each_other(
    app: Flask, world: World
) -> None:
    done: list[str] = []
    hold = threading.Event()
    slow = _change_in_thread(
        app, world.patients["anna"].id, world.users["coord_berlin"].id, hold, done
    )
    fast = _change_in_thread(
        app, world.patients["kenji"].id, world.users["coord_tokyo"].id, None, done
    )
    slow.start()
    fast.start()
    fast.join(20)
    finished_while_held = list(done)
    hold.set()
    slow.join(20)
    assert finished_while_held == ["T1-kenji"]
    assert done == ["T1-kenji", "B1-anna"]


@postgres_only
def test_a_late_commit_is_sealed_too(app: Flask, world: World) -> None:
    done: list[str] = []
    hold = threading.Event()
    late = _change_in_thread(
        app, world.patients["anna"].id, world.users["coord_berlin"].id, hold, done
    )
    late.start()
    early = _change_in_thread(
        app, world.patients["kenji"].id, world.users["coord_tokyo"].id, None, done
    )
    early.start()
    early.join(20)
    with app.app_context():
        assert seal_all(db.session) > 0  # seals the early one; the late one is not committed
    hold.set()
    late.join(20)
    with app.app_context():
        s = db.session
        assert s.scalar(select(func.count()).where(AuditEntry.seq.is_(None))) > 0
        seal_all(s)
        assert s.scalar(select(func.count()).where(AuditEntry.seq.is_(None))) == 0
        assert verify_chain(s, full=True).ok


def test_two_sealers_at_once_seal_each_entry_once(app: Flask, world: World) -> None:
    with app.app_context():
        s = db.session
        coord = s.get(User, world.users["coord_berlin"].id)
        anna = s.get(Patient, world.patients["anna"].id)
        for language in ("de", "fr", "ja", "en"):
            patient_service.update_patient(
                s, coord, datetime.now(UTC), anna, {"preferred_language": language}
            )
            s.commit()
        waiting = s.scalar(select(func.count()).where(AuditEntry.seq.is_(None)))
        db.session.remove()
    sealed: list[int] = []
    barrier = threading.Barrier(2)

    def sealer() -> None:
        with app.app_context():
            barrier.wait(10)
            sealed.append(seal(db.session))
            db.session.commit()
            db.session.remove()

    threads = [threading.Thread(target=sealer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(sealed) == [0, waiting]
    with app.app_context():
        seqs = db.session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)).all()
        assert seqs == list(range(1, len(seqs) + 1))
        assert verify_chain(db.session, full=True).ok
