"""The time-zone list of the patient's profile: places named in the patient's language,
grouped by region, the zones the patient most likely wants first.

A patient picks a place from a list instead of typing an IANA name such as
"America/Argentina/Buenos_Aires", which nobody outside IT knows.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache
from typing import cast

from babel import Locale
from babel.core import get_global
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from dct_platform.timeutil import is_valid_timezone, timezones_by_region

# Where the studies' patients live comes first; the IANA region names are not all words
# people use ("America" holds both continents, "Indian" is the Indian Ocean).
REGIONS = {
    "Europe": _l("Europe"),
    "America": _l("Americas"),
    "Asia": _l("Asia"),
    "Africa": _l("Africa"),
    "Australia": _l("Australia"),
    "Pacific": _l("Pacific"),
    "Atlantic": _l("Atlantic"),
    "Indian": _l("Indian Ocean"),
    "Antarctica": _l("Antarctica"),
    "Arctic": _l("Arctic"),
    "": _l("Other"),
}

Choices = dict[str, list[tuple[str, str]]]


@lru_cache(maxsize=1)
def _cldr_names() -> dict[str, list[str]]:
    # CLDR keys its city names by older zone ids (Asia/Saigon for Asia/Ho_Chi_Minh).
    names: dict[str, list[str]] = defaultdict(list)
    for old, current in get_global("zone_aliases").items():
        names[current].append(old)
    return names


def _city(locale: Locale, name: str) -> str:
    for key in (name, *_cldr_names().get(name, ())):
        # Babel's locale data is untyped; a zone's "city" entry is its name as text.
        city: str | None = locale.time_zones.get(key, {}).get("city")
        if city:
            return city
    # CLDR leaves out names a language writes as English does: "Buenos_Aires" is that.
    return name.rsplit("/", 1)[-1].replace("_", " ")


def zone_label(locale: Locale, name: str, country: str | None) -> str:
    if name == "UTC":
        # flask_babel is untyped (see pyproject); gettext returns the translated str.
        return cast(str, _("Coordinated Universal Time (UTC)"))
    city = _city(locale, name)
    country_name = locale.territories.get(country) if country else None
    if not country_name or country_name == city:  # "Singapore (Singapore)" says it twice
        return city
    return cast(str, _("%(city)s (%(country)s)", city=city, country=country_name))


def _sort_key(label: str) -> str:
    # "Zürich" among the Z, not after them.
    decomposed = unicodedata.normalize("NFKD", label)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@lru_cache(maxsize=8)
def _regional_choices(language: str) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    locale = Locale.parse(language)
    by_region = timezones_by_region()
    groups = []
    for region, group_label in REGIONS.items():
        labelled = [(name, zone_label(locale, name, cc)) for name, cc in by_region.get(region, [])]
        labelled.sort(key=lambda choice: _sort_key(choice[1]))
        groups.append((str(group_label), tuple(labelled)))
    return tuple(groups)


def zone_choices(likely: Iterable[str | None]) -> Choices:
    """Groups of (zone, label) for a <select> with <optgroup>s: first the `likely` zones
    (the patient's current zone, their site's zone), then every zone by region.

    A likely zone is not repeated in its region: a <select> with the current value twice
    would mark two options as selected.
    """
    language = str(get_locale() or "en")
    locale = Locale.parse(language)
    countries = {name: cc for zones in timezones_by_region().values() for name, cc in zones}
    first: list[tuple[str, str]] = []
    for name in likely:
        if name and is_valid_timezone(name) and name not in dict(first):
            first.append((name, zone_label(locale, name, countries.get(name))))
    choices: Choices = {_("Suggested for you"): first} if first else {}
    taken = {name for name, _label in first}
    for group_label, zones in _regional_choices(language):
        choices[group_label] = [choice for choice in zones if choice[0] not in taken]
    return choices
