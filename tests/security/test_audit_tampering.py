"""The audit trail resists forgery: only the trail writes its table, and signed checkpoints
outside the database expose a rewrite by whoever controls the database itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from dct_platform import jobs
from dct_platform.audit import GENESIS_HASH, entry_hash, verify_chain
from dct_platform.audit_anchor import CheckpointStore
from dct_platform.extensions import db
from dct_platform.models import AuditChainHead, AuditEntry, MailOutbox
from tests.support.database import as_database_owner
from tests.support.world import World


def _store(app: Flask) -> CheckpointStore:
    return CheckpointStore.from_config(app.config)


def _last(session: Session) -> dict[str, object]:
    row = session.execute(select(AuditEntry.__table__).order_by(AuditEntry.seq.desc()).limit(1))
    return dict(row.mappings().one())


def _forged_next_entry(session: Session) -> dict[str, object]:
    last = _last(session)
    forged = {
        **last,
        "seq": last["seq"] + 1,
        "prev_hash": last["entry_hash"],
        "occurred_at": datetime.now(UTC),
        "field": "status",
        "old_value": "enrolled",
        "new_value": "withdrawn",
        "reason": "forged",
    }
    forged["entry_hash"] = entry_hash(forged)
    return forged


def test_only_the_trail_writes_its_tables(app: Flask, world: World) -> None:
    with app.app_context():
        s = db.session
        forged = _forged_next_entry(s)
        with pytest.raises(DBAPIError, match="refused"):
            s.execute(AuditEntry.__table__.insert().values(**forged))
        s.rollback()
        with pytest.raises(DBAPIError, match="refused"):
            s.execute(text("UPDATE audit_chain_head SET last_seq = last_seq + 1"))
        s.rollback()
        with pytest.raises(DBAPIError, match="refused"):
            s.execute(text("DELETE FROM audit_chain_head"))
        s.rollback()
        assert verify_chain(s, _store(app)).ok


def test_a_removed_tail_is_named_once_checkpointed(app: Flask, world: World) -> None:
    with app.app_context():
        s = db.session
        checkpoint = _store(app).append(s, datetime.now(UTC))
        assert checkpoint is not None
        last = _last(s)
        assert checkpoint.seq == last["seq"]
        before_last = s.execute(
            select(AuditEntry.entry_hash).where(AuditEntry.seq == last["seq"] - 1)
        ).scalar_one()
        with as_database_owner(s) as conn:
            conn.execute(text("DELETE FROM audit_entries WHERE seq = :s"), {"s": last["seq"]})
            conn.execute(
                text("UPDATE audit_chain_head SET last_seq = :s, last_hash = :h"),
                {"s": last["seq"] - 1, "h": before_last},
            )
        # The chain alone cannot tell: it ends cleanly one entry earlier.
        assert verify_chain(s).ok
        result = verify_chain(s, _store(app))
        assert not result.ok and result.broken_seq == last["seq"]
        assert "removed" in (result.problem or "")


def test_a_rewritten_and_rehashed_trail_is_named(app: Flask, world: World) -> None:
    with app.app_context():
        s = db.session
        _store(app).append(s, datetime.now(UTC))
        entries = [
            dict(r)
            for r in s.execute(select(AuditEntry.__table__).order_by(AuditEntry.seq)).mappings()
        ]
        target = next(e for e in entries if e["field"] == "family_name")
        with as_database_owner(s) as conn:
            prev = GENESIS_HASH
            for entry in entries:
                if entry["seq"] == target["seq"]:
                    entry["new_value"] = "Rewritten"
                entry["prev_hash"] = prev
                entry["entry_hash"] = prev = entry_hash(entry)
                conn.execute(
                    text(
                        "UPDATE audit_entries SET new_value = :v, prev_hash = :p, "
                        "entry_hash = :h WHERE seq = :s"
                    ),
                    {
                        "v": entry["new_value"],
                        "p": entry["prev_hash"],
                        "h": entry["entry_hash"],
                        "s": entry["seq"],
                    },
                )
            conn.execute(text("UPDATE audit_chain_head SET last_hash = :h"), {"h": prev})
        assert verify_chain(s).ok  # every hash recomputed: the chain itself holds
        result = verify_chain(s, _store(app))
        assert not result.ok and "rewritten" in (result.problem or "")
        cli = app.test_cli_runner().invoke(args=["dct", "audit", "verify"])
        assert cli.exit_code == 1 and "rewritten" in cli.output


def test_a_tampered_checkpoint_is_named(app: Flask, world: World) -> None:
    with app.app_context():
        s = db.session
        store = _store(app)
        store.append(s, datetime.now(UTC))
        line = json.loads(store.path.read_text())
        line["seq"] -= 1
        store.path.write_text(json.dumps(line) + "\n")
        result = verify_chain(s, store)
        assert not result.ok and "invalid signature" in (result.problem or "")


def test_checkpoints_are_signed_with_a_key_outside_the_database(
    app: Flask, world: World, tmp_path: Path
) -> None:
    with app.app_context():
        s = db.session
        store = _store(app)
        store.append(s, datetime.now(UTC))
        elsewhere = CheckpointStore(store.path, "another key")
        _, problems = elsewhere.read()
        assert problems and "invalid signature" in problems[0].problem
        key = Path(app.config["AUDIT_SIGNING_KEY_FILE"]).read_text()
        stored = " ".join(str(v) for row in s.execute(select(AuditEntry.__table__)) for v in row)
        assert key not in stored


def test_the_checkpoint_job_appends_and_mails_the_administrators(app: Flask, world: World) -> None:
    with app.app_context():
        s = db.session
        now = datetime.now(UTC)
        outcome = jobs.checkpoint_audit_trail(s, now)
        s.commit()
        head = s.get(AuditChainHead, 1)
        assert outcome == f"checkpoint at entry {head.last_seq}"
        lines = _store(app).path.read_text().splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["seq"] == head.last_seq
        mail = s.scalars(select(MailOutbox)).one()
        assert json.loads(mail.recipients) == ["admin@example.org"]
        assert lines[0] in mail.text_body
        assert jobs.checkpoint_audit_trail(s, now) == "no new entries"
        assert len(_store(app).path.read_text().splitlines()) == 1
