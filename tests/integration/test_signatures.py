"""Electronic signatures: re-entered password, printed name, time and meaning shown with the
record, invalidated by a later change, throttled like sign-in, on the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from dct_platform import audit, signatures
from dct_platform.audit_guard import writing_audit_tables
from dct_platform.errors import (
    PasswordChangeRequired,
    TooManyAttempts,
    Unauthorized,
    ValidationFailed,
)
from dct_platform.models import AuditAction, AuditEntry, ElectronicSignature, Patient, Site, User
from dct_platform.models.signatures import SignatureImmutable
from dct_platform.services import accounts
from dct_platform.services import patients as patient_service
from dct_platform.signatures import SignatureRequired
from tests.support.clients import login
from tests.support.world import World

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)  # 10:30 CET in Berlin, 18:30 JST in Tokyo
# The address of Flask's test client, so that the sign-in page shares the counters.
ADDRESS = "127.0.0.1"


def _user(session: Session, world: World, name: str) -> User:
    user = session.get(User, world.users[name].id)
    assert user is not None
    return user


def _patient(session: Session, world: World, key: str = "anna") -> Patient:
    patient = session.get(Patient, world.patients[key].id)
    assert patient is not None
    return patient


def _sign(
    session: Session,
    signer: User,
    record: object,
    password: str,
    meaning: str = "approval",
    *,
    now: datetime = NOW,
    reason: str | None = None,
) -> ElectronicSignature:
    return signatures.sign(
        session, signer, password, meaning, record, now, remote_addr=ADDRESS, reason=reason
    )


def _stored_signatures(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ElectronicSignature)) or 0


def test_the_right_password_signs_with_printed_name_time_and_meaning(
    session: Session, world: World
) -> None:
    pi = _user(session, world, "pi_berlin")
    anna = _patient(session, world)
    signature = _sign(session, pi, anna, world.password, reason="Eligibility confirmed")
    session.commit()
    session.expire_all()  # read back as stored, as a later request would

    (shown,) = signatures.signatures_of(session, _patient(session, world))
    assert (shown.printed_name, shown.meaning, shown.meaning_label) == (
        "Pi_Berlin",
        "approval",
        "Approval",
    )
    assert shown.signed_at == NOW and shown.valid and shown.reason == "Eligibility confirmed"
    assert str(shown.signed_at_local("Europe/Berlin")) == "2026-03-10 10:30 CET"
    assert shown.describe("Asia/Tokyo") == "Signed by Pi_Berlin, 2026-03-10 18:30 JST: Approval"
    stored = session.get(ElectronicSignature, signature.id)
    assert stored is not None and signatures.is_valid(session, stored)
    assert (stored.signer_id, stored.record_table, stored.record_id) == (
        pi.id,
        "patients",
        str(anna.id),
    )
    assert len(stored.fingerprint) == 64
    assert signatures.require(session, anna, "approval").id == signature.id


def test_the_printed_name_is_the_one_at_the_time_of_signing(session: Session, world: World) -> None:
    pi = _user(session, world, "pi_berlin")
    _sign(session, pi, _patient(session, world), world.password)
    with audit.acting(session, pi, NOW, what="Rename account pi_berlin"):
        pi.display_name = "Dr. Petra Ingrid Berlin"
    session.commit()
    (shown,) = signatures.signatures_of(session, _patient(session, world))
    assert shown.printed_name == "Pi_Berlin" and shown.valid


def test_a_wrong_password_signs_nothing_and_counts_toward_the_sign_in_throttle(
    app: Flask, client: FlaskClient, session: Session, world: World
) -> None:
    limit = app.config["LOGIN_MAX_FAILURES"]
    for attempt in range(limit):
        pi = _user(session, world, "pi_berlin")
        with pytest.raises(Unauthorized) as refused:
            _sign(session, pi, _patient(session, world), "not my password", now=NOW)
        assert refused.value.message == "The password is not correct; the record is not signed."
        assert refused.value.status == 401
        session.commit()  # as the request does (keep_despite_error): the attempt counts
        assert _stored_signatures(session) == 0, attempt
    assert not session.scalar(select(AuditAction).where(AuditAction.summary.like("Sign %")))

    # The signer's own password is now held back, at the signing prompt and at sign-in.
    pi = _user(session, world, "pi_berlin")
    with pytest.raises(TooManyAttempts):
        _sign(session, pi, _patient(session, world), world.password, now=NOW + timedelta(seconds=1))
    session.commit()
    with pytest.raises(TooManyAttempts):
        accounts.authenticate(
            session,
            "pi_berlin",
            world.password,
            remote_addr=ADDRESS,
            now=NOW + timedelta(seconds=2),
            policy=accounts.ThrottlePolicy.from_config(app.config),
        )
    session.rollback()
    assert _stored_signatures(session) == 0
    # The administrator sees the lockout, and the sign-in page refuses the right password.
    locked = accounts.lockouts(
        session, [pi], NOW + timedelta(seconds=3), accounts.ThrottlePolicy.from_config(app.config)
    )
    assert locked[pi.id].blocked_addresses == 1
    session.rollback()


def test_wrong_signing_passwords_throttle_the_sign_in_page(
    app: Flask, client: FlaskClient, session: Session, world: World
) -> None:
    # The page uses the real clock: sign at the real time so that the window is the same.
    now = datetime.now(UTC)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        with pytest.raises(Unauthorized):
            _sign(
                session,
                _user(session, world, "pi_berlin"),
                _patient(session, world),
                "guess",
                now=now,
            )
        session.commit()
    assert login(client, "pi_berlin", world.password).status_code == 429
    assert login(client, "coord_berlin", world.password).status_code == 302


def test_the_right_password_clears_the_count_of_earlier_slips(
    app: Flask, session: Session, world: World
) -> None:
    for _ in range(app.config["LOGIN_MAX_FAILURES"] - 1):
        with pytest.raises(Unauthorized):
            _sign(session, _user(session, world, "pi_berlin"), _patient(session, world), "typo")
        session.commit()
    _sign(session, _user(session, world, "pi_berlin"), _patient(session, world), world.password)
    session.commit()
    with pytest.raises(Unauthorized):
        _sign(session, _user(session, world, "pi_berlin"), _patient(session, world), "typo")
    session.commit()
    # Not throttled: one slip after a correct signature is one failure, not the limit.
    _sign(session, _user(session, world, "pi_berlin"), _patient(session, world), world.password)
    session.commit()
    assert _stored_signatures(session) == 2


def test_a_disabled_account_cannot_sign(session: Session, world: World) -> None:
    admin = _user(session, world, "admin")
    pi = _user(session, world, "pi_berlin")
    accounts.set_enabled(session, admin, NOW, pi, False, "Left the site")
    session.commit()
    with pytest.raises(accounts.AccountDisabled) as refused:
        _sign(session, pi, _patient(session, world), world.password)
    assert refused.value.status == 403
    session.rollback()
    assert _stored_signatures(session) == 0


def test_a_temporary_password_cannot_sign(session: Session, world: World) -> None:
    # The administrator who reset it knows it: it cannot stand for the owner's own act.
    admin = _user(session, world, "admin")
    pi = _user(session, world, "pi_berlin")
    temporary = accounts.reset_password(session, admin, NOW, pi, "Forgotten")
    session.commit()
    with pytest.raises(PasswordChangeRequired):
        _sign(session, pi, _patient(session, world), temporary)
    session.rollback()
    assert _stored_signatures(session) == 0


def test_a_later_change_to_the_record_invalidates_the_signature(
    session: Session, world: World
) -> None:
    pi = _user(session, world, "pi_berlin")
    signature = _sign(session, pi, _patient(session, world), world.password)
    session.commit()
    coordinator = _user(session, world, "coord_berlin")
    patient_service.update_patient(
        session, coordinator, NOW, _patient(session, world), {"arm": "B"}, reason="Randomised"
    )
    session.commit()

    (shown,) = signatures.signatures_of(session, _patient(session, world))
    assert not shown.valid
    assert shown.describe("Europe/Berlin").endswith(
        "(invalidated: the record changed after signing)"
    )
    assert not signatures.is_valid(session, signature)
    with pytest.raises(SignatureRequired) as refused:
        signatures.require(session, _patient(session, world), "approval")
    assert refused.value.status == 409 and refused.value.code == "signature_required"
    assert "changed after its signature" in refused.value.message
    # Signing again signs the record as it is now; the old signature stays, invalidated.
    _sign(session, pi, _patient(session, world), world.password, now=NOW + timedelta(hours=1))
    session.commit()
    assert [s.valid for s in signatures.signatures_of(session, _patient(session, world))] == [
        False,
        True,
    ]


def test_bookkeeping_does_not_invalidate_a_signature(session: Session, world: World) -> None:
    pi = _user(session, world, "pi_berlin")
    _sign(session, pi, _patient(session, world), world.password)
    session.commit()
    anna = _patient(session, world)
    before = anna.version
    with audit.acting(session, pi, NOW, what="Touch patient"):
        anna.updated_at = NOW + timedelta(minutes=5)
    session.commit()
    assert _patient(session, world).version == before + 1
    assert signatures.require(session, _patient(session, world), "approval")


def test_a_model_can_choose_the_fields_it_signs(
    monkeypatch: pytest.MonkeyPatch, session: Session, world: World
) -> None:
    monkeypatch.setattr(Site, "__signed_fields__", ("site_number", "name"), raising=False)
    admin = _user(session, world, "admin")
    pi = _user(session, world, "pi_berlin")
    berlin = session.get(Site, world.berlin.id)
    assert berlin is not None
    _sign(session, pi, berlin, world.password, "responsibility")
    with audit.acting(session, admin, NOW, what="Change phone of site B1"):
        berlin.phone = "+49 30 7654 321"
    session.commit()
    assert signatures.require(session, berlin, "responsibility")
    with audit.acting(session, admin, NOW, what="Rename site B1"):
        berlin.name = "Berlin Mitte"
    session.commit()
    with pytest.raises(SignatureRequired):
        signatures.require(session, berlin, "responsibility")


def test_require_refuses_a_record_without_a_signature_of_that_meaning(
    session: Session, world: World
) -> None:
    berlin = session.get(Site, world.berlin.id)
    assert berlin is not None
    with pytest.raises(SignatureRequired) as refused:
        signatures.require(session, berlin, "approval")
    assert refused.value.message == "The record has no Approval signature; it must be signed first."
    assert refused.value.details == {"meaning": "approval", "record": f"sites/{berlin.id}"}

    _sign(session, _user(session, world, "pi_berlin"), berlin, world.password, "review")
    session.commit()
    with pytest.raises(SignatureRequired):
        signatures.require(session, berlin, "approval")
    assert signatures.require(session, berlin, "review").meaning == "review"


def test_signing_is_on_the_audit_trail(session: Session, world: World) -> None:
    pi = _user(session, world, "pi_berlin")
    anna = _patient(session, world)
    signature = _sign(session, pi, anna, world.password, reason="Reviewed with the patient")
    session.commit()
    action = session.scalar(
        select(AuditAction).where(AuditAction.summary == f"Sign patients {anna.id} (approval)")
    )
    assert action is not None
    assert (action.actor_id, action.actor_name, action.occurred_at, action.reason) == (
        pi.id,
        "pi_berlin",
        NOW,
        "Reviewed with the patient",
    )
    entries = {
        e.field: e.new_value
        for e in session.scalars(
            select(AuditEntry).where(
                AuditEntry.table_name == "electronic_signatures",
                AuditEntry.record_id == str(signature.id),
            )
        )
    }
    assert entries["meaning"] == "approval" and entries["printed_name"] == "Pi_Berlin"
    assert entries["fingerprint"] == signature.fingerprint
    assert entries["record_id"] == str(anna.id)


def test_signatures_cannot_be_changed_or_removed(session: Session, world: World) -> None:
    pi = _user(session, world, "pi_berlin")
    signature = _sign(session, pi, _patient(session, world), world.password)
    session.commit()

    with (
        pytest.raises(SignatureImmutable),
        audit.acting(session, pi, NOW, what="Try to move a signature"),
    ):
        signature.signed_at = NOW - timedelta(days=1)
    session.rollback()
    with (
        pytest.raises(SignatureImmutable),
        audit.acting(session, pi, NOW, what="Try to remove a signature"),
    ):
        session.delete(signature)
    session.rollback()
    # Below the ORM too, even with the audit writer's own flag raised.
    for statement in (
        "UPDATE electronic_signatures SET meaning = 'review'",
        "DELETE FROM electronic_signatures",
    ):
        # In a savepoint, so that the flag is lowered in a transaction that still works.
        with (
            writing_audit_tables(session.connection()),
            pytest.raises(DBAPIError, match="append-only"),
            session.begin_nested(),
        ):
            session.connection().execute(text(statement))
        session.rollback()
        with pytest.raises(DBAPIError, match="refused"):
            session.connection().execute(text(statement))
        session.rollback()
    assert session.scalar(select(ElectronicSignature.meaning)) == "approval"


def test_an_unknown_meaning_is_refused_with_a_clear_message(session: Session, world: World) -> None:
    with pytest.raises(ValidationFailed) as refused:
        _sign(
            session,
            _user(session, world, "pi_berlin"),
            _patient(session, world),
            world.password,
            "aproval",
        )
    assert refused.value.message.startswith("Unknown signature meaning 'aproval'; use one of:")
    assert "approval" in refused.value.message and "review" in refused.value.message
    assert refused.value.details["fields"]["meaning"] == [refused.value.message]
    session.rollback()
    assert _stored_signatures(session) == 0


def test_a_package_declares_its_own_meaning(session: Session, world: World) -> None:
    release = signatures.declare_meaning("example.release", "Release for shipment")
    signature = _sign(
        session,
        _user(session, world, "pi_berlin"),
        _patient(session, world),
        world.password,
        release,
    )
    session.commit()
    (shown,) = signatures.signatures_of(session, _patient(session, world))
    assert (shown.meaning, shown.meaning_label) == ("example.release", "Release for shipment")
    assert signatures.require(session, _patient(session, world), release).id == signature.id
    with pytest.raises(ValueError, match="another label"):
        signatures.declare_meaning("example.release", "Something else")
    with pytest.raises(ValueError, match="lower-case"):
        signatures.declare_meaning("Release!", "Release")
