"""A patient's device readings read back out: as JSON, as CSV and as a FHIR R4 Bundle, for
whoever may see the patient, each reading with the site responsible at its time, inputs
refused with a message rather than a 500, CSV cells a spreadsheet never runs."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from flask import Flask
from flask.testing import FlaskClient
from openapi_schema_validator import OAS30Validator, validate
from sqlalchemy import event

from dct_platform.errors import ValidationFailed
from dct_platform.extensions import db
from dct_platform.models import Patient, Site, User
from dct_platform.services import patients as patient_service
from devices import exports, registry
from devices.models import DeviceKind
from tests.support.clients import token_for
from tests.support.clock import TestClock
from tests.support.queries import statements_of
from tests.support.world import World

INGEST = "/api/v1/devices/readings"
HOSTILE_ID = '=HYPERLINK("http://evil.example","click")'


@dataclass(frozen=True)
class Sent:
    """Anna's wristband and what it sent, relative to the frozen `now`."""

    patient_id: int
    now: datetime
    token: str

    def at(self, days_ago: float) -> datetime:
        return self.now - timedelta(days=days_ago)

    def send(self, client: FlaskClient, readings: list[dict[str, object]]) -> dict[str, Any]:
        answer = client.post(
            INGEST, headers={"Authorization": f"Bearer {self.token}"}, json={"readings": readings}
        )
        assert answer.status_code == 200, answer.get_json()
        body: dict[str, Any] = answer.get_json()
        assert not body["rejected"], body
        return body


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _hr(sent: Sent, value: int, days_ago: float, reading_id: str) -> dict[str, object]:
    return {
        "metric": "heart_rate", "value": value, "unit": "bpm",
        "time": _iso(sent.at(days_ago)), "id": reading_id,
    }  # fmt: skip


def _steps(sent: Sent, value: int, days_ago: float) -> dict[str, object]:
    # An hour of walking that ended `days_ago`.
    return {
        "metric": "step_count", "value": value, "unit": "steps",
        "start": _iso(sent.at(days_ago) - timedelta(hours=1)), "end": _iso(sent.at(days_ago)),
        "id": f"steps-{days_ago}",
    }  # fmt: skip


@pytest.fixture
def band(app: Flask, world: World, clock: TestClock) -> Sent:
    """A wristband issued to Anna twelve days ago, with its credential; time frozen."""
    now = clock.freeze(clock().replace(microsecond=0))
    with app.app_context():
        s = db.session()
        model = registry.register_model(
            s, None, now, manufacturer="Acme", model_name="Band",
            kind=DeviceKind.WEARABLE, metrics=["heart_rate", "step_count"], system="test",
        )  # fmt: skip
        unit = registry.register_unit(s, None, now, model, "SN-1", system="test")
        anna = s.get(Patient, world.patients["anna"].id)
        registry.issue_to_patient(s, None, now - timedelta(days=12), unit, anna, system="test")
        token = registry.provision_token(s, None, now, unit, system="test")
        s.commit()
    return Sent(world.patients["anna"].id, now, token)


@pytest.fixture
def sent(client: FlaskClient, band: Sent) -> Sent:
    """Two metrics: heart rate (one late, one with a hostile id), an interval of steps, and
    one heart rate older than the default week."""
    band.send(
        client,
        [
            _hr(band, 61, 9, "hr-old"),
            _hr(band, 70, 3, "hr-late"),  # arrives three days after: late
            _steps(band, 1200, 0.5),
            _hr(band, 72, 0.25, HOSTILE_ID),
        ],
    )
    return band


@pytest.fixture
def staff(client: FlaskClient, world: World) -> dict[str, str]:
    return token_for(client, "coord_berlin", world.password)


def _readings(client: FlaskClient, headers: dict[str, str], patient_id: int, **query: Any) -> Any:
    url = f"/api/v1/patients/{patient_id}/readings"
    response = client.get(f"{url}?{urlencode(query)}" if query else url, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _document_schema(client: FlaskClient, name: str) -> dict[str, Any]:
    doc = client.get("/api/v1/openapi.json").get_json()
    return {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}


def _anna(world: World) -> Patient:
    patient = db.session.get(Patient, world.patients["anna"].id)
    assert patient is not None
    return patient


# --- JSON --------------------------------------------------------------------------------


def test_the_last_week_comes_back_in_time_order_with_each_reading_s_facts(
    client: FlaskClient, staff: dict[str, str], sent: Sent, world: World
) -> None:
    found = _readings(client, staff, sent.patient_id)
    assert [(r["metric"], r["value"]) for r in found] == [
        ("heart_rate", 70),
        ("step_count", 1200),
        ("heart_rate", 72),
    ]  # the reading of nine days ago is outside the default week
    late, steps, latest = found
    assert late["late"] is True and steps["late"] is False and latest["late"] is False
    assert late["device_reading_id"] == "hr-late"
    assert latest["device_reading_id"] == HOSTILE_ID  # JSON carries it as it came
    assert {r["subject_number"] for r in found} == {"B1-anna"}
    assert {r["site_number"] for r in found} == {"B1"}
    assert {r["device_serial"] for r in found} == {"SN-1"}
    assert (late["metric_label"], late["unit"], late["unit_ucum"]) == (
        "Heart rate",
        "beats/min",
        "/min",
    )
    assert late["effective_start"] == sent.at(3).isoformat() and late["effective_end"] is None
    assert steps["effective_start"] == (sent.at(0.5) - timedelta(hours=1)).isoformat()
    assert steps["effective_end"] == sent.at(0.5).isoformat()
    assert late["received_at"] == sent.now.isoformat()
    schema = _document_schema(client, "DeviceReading")
    for reading in found:
        validate(reading, schema, cls=OAS30Validator)


def test_filters_by_metric_range_and_limit(
    client: FlaskClient, staff: dict[str, str], sent: Sent
) -> None:
    steps = _readings(client, staff, sent.patient_id, metric="step_count")
    assert [r["value"] for r in steps] == [1200]
    # [from, to): the reading at `to` is left out, the one at `from` kept.
    old = _readings(
        client, staff, sent.patient_id, **{"from": _iso(sent.at(9)), "to": _iso(sent.at(3))}
    )
    assert [r["device_reading_id"] for r in old] == ["hr-old"]
    # Any offset: 10 days ago written in Tokyo time.
    tokyo = (sent.at(10) + timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%S+09:00")
    everything = _readings(client, staff, sent.patient_id, **{"from": tokyo})
    assert len(everything) == 4
    hearts = _readings(client, staff, sent.patient_id, metric="heart_rate", **{"from": tokyo})
    assert [r["value"] for r in hearts] == [61, 70, 72]
    first = _readings(client, staff, sent.patient_id, limit=1, **{"from": tokyo})
    assert [r["device_reading_id"] for r in first] == ["hr-old"]


def test_readings_for_sends_one_query_on_the_patient_metric_time_index(
    app: Flask, world: World, sent: Sent
) -> None:
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    with app.app_context():
        anna = _anna(world)
        with statements_of(app) as statements:
            found = exports.readings_for(
                db.session(), anna, metric=None, start=sent.at(7), end=sent.now, limit=None
            )
        assert len(found) == 3
        assert len(statements) == 1
        connection = db.session.connection()
        event.listen(connection, "before_cursor_execute", record)
        exports.readings_for(
            db.session(), anna, metric="heart_rate", start=sent.at(7), end=sent.now, limit=10
        )
        event.remove(connection, "before_cursor_execute", record)
        ((statement, parameters),) = seen
        cursor = connection.connection.cursor()
        if connection.dialect.name == "postgresql":
            # Few rows make a sequential scan cheaper; what matters is that the index serves.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + statement, parameters)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "patient_id_metric_effective_start" in plan, plan
            assert "Index Cond" in plan and "effective_start" in plan, plan
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
            assert "ix_device_readings_patient_metric_time" in plan, plan
            assert "effective_start>?" in plan, plan
        cursor.close()


# --- CSV ---------------------------------------------------------------------------------


def _csv(app: Flask, world: World, sent: Sent, **filters: Any) -> list[dict[str, str]]:
    with app.app_context():
        lines = exports.readings_csv(
            db.session(),
            _anna(world),
            metric=filters.get("metric"),
            start=filters.get("start", sent.at(10)),
            end=filters.get("end", sent.now),
            limit=None,
        )
        db.session.remove()  # the lines were read before: the session may go
    text_ = "".join(lines)
    assert text_.endswith("\r\n")
    return list(csv.DictReader(io.StringIO(text_)))


def test_csv_has_a_header_and_one_row_per_reading(app: Flask, world: World, sent: Sent) -> None:
    rows = _csv(app, world, sent)
    assert list(rows[0]) == list(exports.CSV_COLUMNS)
    old, late, steps, latest = rows
    assert old == {
        "subject_number": "B1-anna",
        "site_number": "B1",
        "metric": "heart_rate",
        "metric_label": "Heart rate",
        "value": "61",
        "unit": "beats/min",
        "unit_ucum": "/min",
        "effective_start": sent.at(9).isoformat(),
        "effective_end": "",
        "received_at": sent.now.isoformat(),
        "late": "yes",
        "device_serial": "SN-1",
        "device_reading_id": "hr-old",
    }
    assert (late["late"], latest["late"]) == ("yes", "no")
    assert (steps["metric_label"], steps["value"], steps["unit"]) == ("Step count", "1200", "steps")
    assert steps["effective_end"] == sent.at(0.5).isoformat()
    assert [r["metric"] for r in _csv(app, world, sent, metric="step_count")] == ["step_count"]


def test_csv_cells_are_formula_safe(app: Flask, world: World, sent: Sent) -> None:
    latest = _csv(app, world, sent)[-1]
    # Shown as text by a spreadsheet, never run as a formula.
    assert latest["device_reading_id"] == "'" + HOSTILE_ID
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in latest.values())


# --- FHIR --------------------------------------------------------------------------------


def test_observations_are_a_fhir_bundle_with_loinc_codes_and_ucum_units(
    client: FlaskClient, staff: dict[str, str], sent: Sent
) -> None:
    response = client.get(f"/api/v1/patients/{sent.patient_id}/observations", headers=staff)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/fhir+json"
    validate(
        response.get_json(force=True), _document_schema(client, "FhirBundle"), cls=OAS30Validator
    )
    bundle = Bundle.model_validate_json(response.get_data(as_text=True))
    assert bundle.type == "collection"
    observations = [entry.resource for entry in bundle.entry or []]
    assert all(isinstance(o, Observation) for o in observations)
    late, steps, _latest = observations
    assert isinstance(late, Observation) and isinstance(steps, Observation)

    assert late.status == "final"
    assert [(c.system, c.code) for c in late.code.coding or []] == [("http://loinc.org", "8867-4")]
    assert [c.code for c in (late.category or [])[0].coding or []] == ["vital-signs"]
    assert late.valueQuantity is not None
    assert (late.valueQuantity.system, late.valueQuantity.code) == (
        "http://unitsofmeasure.org",
        "/min",
    )
    assert float(late.valueQuantity.value or 0) == 70
    assert late.effectiveDateTime == sent.at(3) and late.effectivePeriod is None
    assert late.issued == sent.now
    assert late.subject is not None and late.subject.identifier is not None
    assert late.subject.identifier.value == "B1-anna"
    assert late.device is not None and late.device.display == "SN-1"
    (identifier,) = late.identifier or []
    assert identifier.value is not None and "hr-late" in identifier.value

    assert [(c.system, c.code) for c in steps.code.coding or []] == [
        ("http://loinc.org", "55423-8")
    ]
    assert [c.code for c in (steps.category or [])[0].coding or []] == ["activity"]
    assert steps.valueQuantity is not None and steps.valueQuantity.code == "{steps}"
    assert steps.effectiveDateTime is None and steps.effectivePeriod is not None
    assert steps.effectivePeriod.start == sent.at(0.5) - timedelta(hours=1)
    assert steps.effectivePeriod.end == sent.at(0.5)


def test_observations_take_the_same_filters(
    client: FlaskClient, staff: dict[str, str], sent: Sent
) -> None:
    url = f"/api/v1/patients/{sent.patient_id}/observations?metric=step_count"
    bundle = Bundle.model_validate_json(client.get(url, headers=staff).get_data(as_text=True))
    assert len(bundle.entry or []) == 1
    window = urlencode({"from": _iso(sent.at(100)), "to": _iso(sent.at(99))})
    empty = client.get(f"{url}&{window}", headers=staff)
    assert empty.status_code == 200
    assert Bundle.model_validate_json(empty.get_data(as_text=True)).entry is None
    bad = client.get(url.replace("step_count", "steps"), headers=staff)
    assert bad.status_code == 422 and bad.mimetype == "application/json"


# --- who may read ------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["readings", "observations"])
def test_another_site_s_staff_get_404(
    client: FlaskClient, world: World, sent: Sent, endpoint: str
) -> None:
    tokyo = token_for(client, "coord_tokyo", world.password)
    response = client.get(f"/api/v1/patients/{sent.patient_id}/{endpoint}", headers=tokyo)
    assert response.status_code == 404
    assert response.get_json()["code"] == "not_found"
    assert client.get(f"/api/v1/patients/{sent.patient_id}/{endpoint}").status_code == 401


def test_the_patient_and_the_trial_manager_read_them_too(
    client: FlaskClient, world: World, sent: Sent
) -> None:
    for username in ("anna", "manager"):
        headers = token_for(client, username, world.password)
        assert len(_readings(client, headers, sent.patient_id)) == 3, username
    kenji = token_for(client, "kenji", world.password)
    other = client.get(f"/api/v1/patients/{sent.patient_id}/readings", headers=kenji)
    assert other.status_code == 404
    # The supply manager sees subject numbers for kits, never clinical data.
    supply = token_for(client, "supply", world.password)
    refused = client.get(f"/api/v1/patients/{sent.patient_id}/readings", headers=supply)
    assert refused.status_code == 403


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"metric": "blood_sugar"}, "metric", "Must be one of"),
        ({"from": "2026-03-01T00:00:00"}, "from", "aware datetime"),
        ({"to": "yesterday"}, "to", "datetime"),
        ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to", "must be after"),
        ({"from": "2026-03-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to", "must be after"),
        ({"from": "2025-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to", "at most 366 days"),
        ({"from": "2999-01-01T00:00:00Z"}, "from", "must be in the past"),
        ({"from": "0001-01-01T00:00:00+01:00"}, "from", "out of range"),
        ({"to": "0001-01-02T00:00:00Z"}, "from", "before the year 1"),
        ({"to": "9999-12-31T23:59:59-01:00"}, "to", "out of range"),
        ({"limit": "0"}, "limit", "greater than or equal to 1"),
        ({"limit": "10001"}, "limit", "less than or equal to 10000"),
        ({"limit": "9" * 5000}, "limit", "integer"),
        ({"limt": "5"}, "limt", "Unknown parameter"),
    ],
)
@pytest.mark.parametrize("endpoint", ["readings", "observations"])
def test_bad_filters_get_422_with_a_message(
    client: FlaskClient,
    staff: dict[str, str],
    sent: Sent,
    endpoint: str,
    query: dict[str, str],
    field: str,
    message: str,
) -> None:
    url = f"/api/v1/patients/{sent.patient_id}/{endpoint}?{urlencode(query)}"
    response = client.get(url, headers=staff)
    assert response.status_code == 422, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == "validation_error"
    assert list(body["details"]["fields"]) == [field]
    assert message in " ".join(body["details"]["fields"][field]), body


def test_a_range_s_message_says_what_to_do(
    client: FlaskClient, staff: dict[str, str], sent: Sent
) -> None:
    query = urlencode({"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"})
    body = client.get(f"/api/v1/patients/{sent.patient_id}/readings?{query}", headers=staff)
    assert body.get_json()["message"] == (
        "The range spans 731 days; ask for at most 366 days at a time."
    )


def test_the_services_refuse_what_the_api_would(app: Flask, world: World, sent: Sent) -> None:
    naive = sent.now.replace(tzinfo=None)
    with app.app_context():
        anna = _anna(world)
        for start, end, metric, limit in (
            (naive, sent.now, None, None),
            (sent.now, sent.at(1), None, None),
            (sent.at(1), sent.now, "blood_sugar", None),
            (sent.at(1), sent.now, None, 0),
        ):
            with pytest.raises(ValidationFailed):
                exports.readings_for(
                    db.session(), anna, metric=metric, start=start, end=end, limit=limit
                )
        # A span longer than the API's is the caller's choice: a study's whole export.
        assert len(exports.readings_for(db.session(), anna, start=sent.at(800), end=sent.now)) == 4
    assert exports.reading_window(None, None, sent.now) == (sent.at(7), sent.now)


# --- the site at the reading's time --------------------------------------------------------


def test_a_reading_before_a_transfer_keeps_the_old_site(
    app: Flask, client: FlaskClient, world: World, band: Sent
) -> None:
    with app.app_context():
        s = db.session()
        coordinator = s.get(User, world.users["coord_berlin"].id)
        patient_service.transfer_patient(
            s, coordinator, band.at(5), _anna(world), s.get(Site, world.tokyo.id), "moved"
        )
        s.commit()
    band.send(client, [_hr(band, 66, 6, "before"), _hr(band, 68, 4, "after")])
    rows = _csv(app, world, band)
    assert [(r["device_reading_id"], r["site_number"]) for r in rows] == [
        ("before", "B1"),
        ("after", "T1"),
    ]
    # Tokyo's staff see the patient now, with her history from Berlin.
    tokyo = token_for(client, "coord_tokyo", world.password)
    found = _readings(client, tokyo, band.patient_id)
    assert [r["site_number"] for r in found] == ["B1", "T1"]
    berlin = token_for(client, "coord_berlin", world.password)
    gone = client.get(f"/api/v1/patients/{band.patient_id}/readings", headers=berlin)
    assert gone.status_code == 404
