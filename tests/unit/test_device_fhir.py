"""The metric -> FHIR table of devices/exports.py: every metric of the catalogue has codes, a
category and the UCUM code of the unit its values are stored in, and each reading becomes
an Observation that fhir.resources accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from devices.exports import (
    FHIR_METRICS,
    LOINC,
    OBSERVATION_CATEGORY,
    PLATFORM_METRICS,
    UCUM,
    ExportedReading,
    bundle_of,
    csv_lines,
)
from devices.metrics import METRICS

RECEIVED = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
VITAL_SIGNS = {
    "heart_rate": "8867-4",
    "systolic_blood_pressure": "8480-6",
    "diastolic_blood_pressure": "8462-4",
    "body_weight": "29463-7",
    "oxygen_saturation": "2708-6",
    "body_temperature": "8310-5",
}


def _reading(metric: str, value: float = 50, *, interval: bool = False) -> ExportedReading:
    start = RECEIVED - timedelta(hours=2)
    return ExportedReading(
        subject_number="B1-001",
        site_number="B1",
        metric=metric,
        value=value,
        effective_start=start,
        effective_end=start + timedelta(hours=1) if interval else None,
        received_at=RECEIVED,
        late=False,
        device_serial="SN-1",
        device_reading_id=None,
        unit_id=7,
        dedup_key=f"key-{metric}",
    )


def _loinc_check_digit_holds(code: str) -> bool:
    """LOINC codes end in a mod-10 (Luhn) check digit: a mistyped code fails it."""
    number, _, check = code.partition("-")
    total = 0
    for position, digit in enumerate(reversed(number)):
        d = int(digit) * (2 if position % 2 == 0 else 1)
        total += d // 10 + d % 10
    return (10 - total % 10) % 10 == int(check)


def test_every_metric_of_the_catalogue_has_a_mapping_and_no_more() -> None:
    assert set(FHIR_METRICS) == set(METRICS)


@pytest.mark.parametrize("code", list(METRICS))
def test_the_ucum_code_is_the_unit_values_are_stored_in(code: str) -> None:
    # Values are stored in the canonical unit: any other UCUM code would mislabel them.
    assert FHIR_METRICS[code].ucum == METRICS[code].unit.code


@pytest.mark.parametrize("code", list(METRICS))
def test_codes_are_loinc_or_the_platform_s_own(code: str) -> None:
    codings = FHIR_METRICS[code].codes
    assert codings, code
    for coding in codings:
        assert coding.system in (LOINC, PLATFORM_METRICS)
        assert coding.display
        if coding.system == LOINC:
            assert _loinc_check_digit_holds(coding.code), coding
        else:
            assert coding.code == code


def test_the_agreed_loinc_codes() -> None:
    for metric, loinc in VITAL_SIGNS.items():
        assert FHIR_METRICS[metric].codes[0].code == loinc
        assert FHIR_METRICS[metric].category.code == "vital-signs"
        assert FHIR_METRICS[metric].category.system == OBSERVATION_CATEGORY
    assert [c.code for c in FHIR_METRICS["oxygen_saturation"].codes] == ["2708-6", "59408-5"]
    steps = FHIR_METRICS["step_count"]
    assert (steps.codes[0].code, steps.category.code) == ("55423-8", "activity")


@pytest.mark.parametrize("code", list(METRICS))
def test_every_metric_makes_a_valid_observation(code: str) -> None:
    metric = METRICS[code]
    value = (metric.minimum + metric.maximum) / 2
    bundle = bundle_of([_reading(code, value, interval=metric.interval)], now=RECEIVED)
    # Through JSON and back, as a receiving system would read it.
    parsed = Bundle.model_validate_json(bundle.model_dump_json())
    assert parsed.type == "collection"
    (entry,) = parsed.entry or []
    observation = entry.resource
    assert isinstance(observation, Observation)
    assert observation.status == "final"
    quantity = observation.valueQuantity
    assert quantity is not None
    assert (quantity.system, quantity.code) == (UCUM, metric.unit.code)
    assert float(quantity.value or 0) == pytest.approx(value)
    if metric.interval:
        assert observation.effectivePeriod is not None
        assert observation.effectiveDateTime is None
    else:
        assert observation.effectiveDateTime is not None
        assert observation.effectivePeriod is None


def test_the_same_reading_gets_the_same_full_url_and_another_reading_another() -> None:
    first = json.loads(bundle_of([_reading("heart_rate")]).model_dump_json())
    again = json.loads(bundle_of([_reading("heart_rate")]).model_dump_json())
    other = json.loads(bundle_of([_reading("body_weight")]).model_dump_json())
    assert first["entry"][0]["fullUrl"] == again["entry"][0]["fullUrl"]
    assert first["entry"][0]["fullUrl"] != other["entry"][0]["fullUrl"]
    assert first["entry"][0]["fullUrl"].startswith("urn:uuid:")


def test_csv_keeps_negative_numbers_numeric_and_device_text_inert() -> None:
    reading = _reading("signal_strength", -67.5)
    hostile = ExportedReading(
        **{
            **{f: getattr(reading, f) for f in reading.__slots__},
            "device_reading_id": "=HYPERLINK(1)",
        }
    )
    header, row = list(csv_lines([hostile]))
    assert header.startswith("subject_number,site_number,metric,")
    assert ",-67.5,dBm,dB[mW]," in row
    assert row.rstrip("\r\n").endswith(",'=HYPERLINK(1)")
