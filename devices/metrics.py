"""The catalogue of what a device may report: units, conversions and plausible ranges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Unit:
    """One accepted unit and the affine map into its metric's canonical unit.

    Affine rather than a plain factor because °F to °C needs an offset as well as a scale.
    """

    code: str
    symbol: str
    aliases: tuple[str, ...] = ()
    scale: float = 1.0
    offset: float = 0.0

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.code, self.symbol, *self.aliases)

    def to_canonical(self, value: float) -> float:
        return value * self.scale + self.offset


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    """What a reading measures. `unit` is canonical: values are stored in it and `minimum`
    and `maximum` (both inclusive) are given in it."""

    code: str
    label: str
    unit: Unit
    other_units: tuple[Unit, ...] = ()
    minimum: float
    maximum: float
    integer: bool = False
    interval: bool = False
    _by_spelling: Mapping[str, Unit] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.unit.scale != 1.0 or self.unit.offset != 0.0:
            raise ValueError(f"{self.code}: the canonical unit must convert to itself")
        lookup = {s: u for u in (self.unit, *self.other_units) for s in u.spellings}
        # frozen: the lookup is derived once here, so the hot path is one dict access.
        object.__setattr__(self, "_by_spelling", MappingProxyType(lookup))

    @property
    def units(self) -> tuple[Unit, ...]:
        return (self.unit, *self.other_units)

    def accepted_unit(self, spelling: str) -> Unit | None:
        """The unit written as `spelling`; spellings are case-sensitive, as in UCUM."""
        return self._by_spelling.get(spelling)

    def accepted_units_text(self) -> str:
        """'kg or lb': how a rejection tells the sender what to use instead."""
        symbols = [u.symbol for u in self.units]
        if len(symbols) == 1:
            return symbols[0]
        return f"{', '.join(symbols[:-1])} or {symbols[-1]}"


KILOGRAM = Unit("kg", "kg")
POUND = Unit("[lb_av]", "lb", scale=0.45359237)
# Plain "C" and "F" are coulomb and farad in UCUM, but Open mHealth writes temperatures that
# way and nothing else a temperature could be measured in is spelt so.
CELSIUS = Unit("Cel", "°C", aliases=("degC", "C"))
FAHRENHEIT = Unit("[degF]", "°F", aliases=("degF", "F"), scale=5 / 9, offset=-32 * 5 / 9)
# Open mHealth allows kelvin for body temperature, so it is accepted here too.
KELVIN = Unit("K", "K", scale=1.0, offset=-273.15)
BEATS_PER_MINUTE = Unit("/min", "beats/min", aliases=("bpm", "{beats}/min"))
STEPS = Unit("{steps}", "steps", aliases=("{step}",))
PERCENT = Unit("%", "%")
MILLIMETRES_OF_MERCURY = Unit("mm[Hg]", "mmHg")
DECIBEL_MILLIWATT = Unit("dB[mW]", "dBm")


_CATALOGUE = (
    Metric(
        code="heart_rate",
        label="Heart rate",
        unit=BEATS_PER_MINUTE,
        minimum=20,
        maximum=300,
    ),
    Metric(
        code="step_count",
        label="Step count",
        unit=STEPS,
        # A static bound, not a rate: it only catches counters that overflowed or reset.
        minimum=0,
        maximum=100_000,
        integer=True,
        interval=True,
    ),
    Metric(
        code="systolic_blood_pressure",
        label="Systolic blood pressure",
        unit=MILLIMETRES_OF_MERCURY,
        minimum=40,
        maximum=300,
    ),
    Metric(
        code="diastolic_blood_pressure",
        label="Diastolic blood pressure",
        unit=MILLIMETRES_OF_MERCURY,
        minimum=20,
        maximum=200,
    ),
    Metric(
        code="body_weight",
        label="Body weight",
        unit=KILOGRAM,
        other_units=(POUND,),
        # From the smallest preterm neonates to the heaviest recorded adults.
        minimum=0.2,
        maximum=650,
    ),
    Metric(
        code="oxygen_saturation",
        label="Oxygen saturation",
        unit=PERCENT,
        # Below 50 % pulse oximeters are unreliable; a fraction (0.97) lands here too and is
        # refused rather than silently stored as 0.97 %.
        minimum=50,
        maximum=100,
    ),
    Metric(
        code="body_temperature",
        label="Body temperature",
        unit=CELSIUS,
        other_units=(FAHRENHEIT, KELVIN),
        minimum=25,
        maximum=45,
    ),
    Metric(
        code="ambient_temperature",
        label="Ambient temperature",
        unit=CELSIUS,
        other_units=(FAHRENHEIT, KELVIN),
        # Shipment loggers travel in liquid-nitrogen dry shippers (about -196 °C) as well as
        # in hot vans.
        minimum=-200,
        maximum=100,
    ),
    Metric(
        code="battery_level",
        label="Battery level",
        unit=PERCENT,
        minimum=0,
        maximum=100,
    ),
    Metric(
        code="signal_strength",
        label="Signal strength",
        unit=DECIBEL_MILLIWATT,
        # Received power: Bluetooth and cellular radios report roughly -150 to 0 dBm.
        minimum=-150,
        maximum=0,
    ),
)

METRICS: Mapping[str, Metric] = MappingProxyType({m.code: m for m in _CATALOGUE})


def metric(code: str) -> Metric | None:
    return METRICS.get(code)
