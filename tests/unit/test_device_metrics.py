from __future__ import annotations

import pytest

from devices.metrics import METRICS, Metric, Unit, metric


def test_lookup_by_code() -> None:
    heart_rate = metric("heart_rate")
    assert heart_rate is METRICS["heart_rate"]
    assert heart_rate is not None
    assert heart_rate.unit.symbol == "beats/min"
    assert metric("blood_sugar") is None


def test_catalogue_holds_the_agreed_metrics() -> None:
    assert set(METRICS) == {
        "heart_rate",
        "step_count",
        "systolic_blood_pressure",
        "diastolic_blood_pressure",
        "body_weight",
        "oxygen_saturation",
        "body_temperature",
        "ambient_temperature",
        "battery_level",
        "signal_strength",
    }
    for code, entry in METRICS.items():
        assert entry.code == code
        assert entry.minimum < entry.maximum


def test_only_step_count_is_an_interval_metric_and_a_whole_number() -> None:
    assert [c for c, m in METRICS.items() if m.interval] == ["step_count"]
    assert [c for c, m in METRICS.items() if m.integer] == ["step_count"]


@pytest.mark.parametrize(
    ("code", "spelling"),
    [
        ("body_weight", "kg"),
        ("body_weight", "lb"),
        ("body_weight", "[lb_av]"),
        ("body_temperature", "Cel"),
        ("body_temperature", "degC"),
        ("body_temperature", "°C"),
        ("body_temperature", "[degF]"),
        ("body_temperature", "°F"),
        ("oxygen_saturation", "%"),
        ("systolic_blood_pressure", "mm[Hg]"),
        ("diastolic_blood_pressure", "mmHg"),
        ("heart_rate", "/min"),
        ("heart_rate", "beats/min"),
        ("heart_rate", "bpm"),
        ("step_count", "steps"),
        ("step_count", "{steps}"),
    ],
)
def test_common_spellings_are_accepted(code: str, spelling: str) -> None:
    assert METRICS[code].accepted_unit(spelling) is not None


@pytest.mark.parametrize(
    ("code", "spelling"),
    [("body_weight", "lbs"), ("body_weight", "KG"), ("heart_rate", "mmHg"), ("step_count", "")],
)
def test_other_spellings_are_not(code: str, spelling: str) -> None:
    assert METRICS[code].accepted_unit(spelling) is None


@pytest.mark.parametrize(("fahrenheit", "celsius"), [(32, 0), (212, 100), (98.6, 37), (-40, -40)])
def test_fahrenheit_converts_with_an_offset(fahrenheit: float, celsius: float) -> None:
    unit = METRICS["body_temperature"].accepted_unit("°F")
    assert unit is not None
    assert unit.to_canonical(fahrenheit) == pytest.approx(celsius)


def test_kelvin_and_pounds_convert() -> None:
    kelvin = METRICS["body_temperature"].accepted_unit("K")
    pound = METRICS["body_weight"].accepted_unit("[lb_av]")
    assert kelvin is not None and pound is not None
    assert kelvin.to_canonical(310.15) == pytest.approx(37)
    assert pound.to_canonical(100) == pytest.approx(45.359237)


def test_canonical_unit_converts_to_itself() -> None:
    for entry in METRICS.values():
        assert entry.unit.to_canonical(12.5) == 12.5
        assert entry.units[0] is entry.unit


def test_a_canonical_unit_with_a_conversion_is_refused() -> None:
    with pytest.raises(ValueError, match="canonical unit"):
        Metric(code="x", label="X", unit=Unit("lb", "lb", scale=0.45), minimum=0, maximum=1)


def test_accepted_units_are_listed_for_people() -> None:
    assert METRICS["body_weight"].accepted_units_text() == "kg or lb"
    assert METRICS["body_temperature"].accepted_units_text() == "°C, °F or K"
    assert METRICS["heart_rate"].accepted_units_text() == "beats/min"
