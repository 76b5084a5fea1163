"""eDiary instruments: the questionnaires patients fill, their skip logic, the checking of a
submitted answer set and the score. Pure Python: no database, no Flask.

A definition is stored and exchanged as a JSON-able dict, the one `validate_definition`
reads and `Instrument.to_dict` writes (optional keys left out when empty)::

    {
      "code": "daily-symptoms",                  # ^[a-z][a-z0-9]*(-[a-z0-9]+)*$, at most 64
      "version": 1,                              # integer >= 1
      "title": "Daily symptom diary",
      "title_translations": {"de": "...", "ja": "..."},              # optional
      "items": [
        {"link_id": "pain", "type": "yes_no", "text": "Any pain today?", "required": true,
         "translations": {"de": "..."}, "help": "...", "help_translations": {"de": "..."}},
        {"link_id": "pain_level", "type": "scale_0_10", "text": "How strong?",
         "required": true, "enable_when": {"question": "pain", "answer": true}},
        {"link_id": "nausea", "type": "single_choice", "text": "Nausea?", "required": true,
         "options": [{"code": "none", "label": "None", "value": 0, "translations": {}},
                     {"code": "mild", "label": "Mild", "value": 1}]},
        {"link_id": "slept", "type": "numeric", "text": "Hours slept?", "required": true,
         "minimum": 0, "maximum": 24, "decimals": 1, "unit": "h"},
        {"link_id": "notes", "type": "text", "text": "Anything else?", "required": false,
         "max_length": 1000}
      ],
      "score": {"kind": "sum", "items": ["nausea"], "label": "Nausea score",
                "bands": [[0, 0, "none"], [1, 1, "some"]]}                   # optional
    }

Item types: single_choice and multiple_choice (with `options`), numeric (with `minimum`,
`maximum`, `decimals` (default 0) and an optional UCUM `unit`), scale_0_10, yes_no, date,
datetime and text (with `max_length`, default 1000). `required` defaults to false. A link id
matches ^[a-z][a-z0-9_]{0,39}$, an option code ^[a-z0-9][a-z0-9_-]{0,39}$, a language code
is BCP 47-like ("de", "ja", "pt-BR").

`enable_when` shows an item only when an earlier yes_no, single_choice or scale_0_10 item's
answer equals `answer`, or an earlier multiple_choice item's answers include it. It is
transitive: an item whose controlling item is hidden is hidden too.

The score (kind "sum") adds up the listed items: a choice's option `value` (all chosen
options' for multiple_choice), a numeric or scale answer itself; a listed item that skip
logic hides counts 0; when a listed item that is shown was left unanswered, the score is
None. A band `[low, high, label]` holds a score with low <= score <= high.

Answers, as `check_answers` returns them, are JSON-able: an option code (str), a list of
codes in the options' order, an int (scale, numeric without decimals), a float (numeric
with decimals), a bool, "YYYY-MM-DD", an ISO date-time with its offset, or text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal, TypeGuard, cast, get_args

ItemType = Literal[
    "single_choice",
    "multiple_choice",
    "numeric",
    "scale_0_10",
    "yes_no",
    "datetime",
    "date",
    "text",
]
ITEM_TYPES: tuple[ItemType, ...] = get_args(ItemType)
CHOICE_TYPES = frozenset({"single_choice", "multiple_choice"})
# Equality against free text, a date or a measured number is no sensible condition to show
# a question on; these are the types an enable_when may depend on.
CONTROLLING_TYPES = frozenset({"yes_no", "single_choice", "multiple_choice", "scale_0_10"})
SCORABLE_TYPES = frozenset({"single_choice", "multiple_choice", "numeric", "scale_0_10"})

Number = int | float
Band = tuple[Number, Number, str]

DEFAULT_TEXT_LENGTH = 1000
MAX_TEXT_LENGTH = 10_000
MAX_DECIMALS = 6
# check_answers files problems with the answer set as a whole under this key, which no link
# id can be.
FORM_ERRORS = "_answers"

_CODE = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
_LINK_ID = re.compile(r"[a-z][a-z0-9_]{0,39}")
_OPTION_CODE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")
_UNIT = re.compile(r"[!-~]{1,30}")  # UCUM codes are printable ASCII without spaces
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})")


def _no_translations() -> Mapping[str, str]:
    return MappingProxyType({})


# --- the model -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    """One answer of a choice item; `value` is what it adds to a score."""

    code: str
    label: str
    value: int | None = None
    # Read-only mappings; left out of the hash because a mapping has none.
    translations: Mapping[str, str] = field(default_factory=_no_translations, hash=False)


@dataclass(frozen=True, slots=True)
class EnableWhen:
    """Show the item only if the earlier item `question` was answered `answer` (for a
    multiple_choice item: its answers include `answer`)."""

    question: str
    answer: bool | int | str


@dataclass(frozen=True, slots=True)
class Item:
    link_id: str
    type: ItemType
    text: str
    required: bool = False
    translations: Mapping[str, str] = field(default_factory=_no_translations, hash=False)
    help: str | None = None
    help_translations: Mapping[str, str] = field(default_factory=_no_translations, hash=False)
    options: tuple[Option, ...] = ()
    minimum: Number | None = None
    maximum: Number | None = None
    decimals: int = 0
    unit: str | None = None
    max_length: int | None = None
    enable_when: EnableWhen | None = None

    def option(self, code: object) -> Option | None:
        return next((o for o in self.options if o.code == code), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"link_id": self.link_id, "type": self.type, "text": self.text}
        if self.translations:
            out["translations"] = dict(self.translations)
        out["required"] = self.required
        if self.help is not None:
            out["help"] = self.help
        if self.help_translations:
            out["help_translations"] = dict(self.help_translations)
        if self.type in CHOICE_TYPES:
            out["options"] = [_option_dict(o) for o in self.options]
        if self.type == "numeric":
            out |= {"minimum": self.minimum, "maximum": self.maximum, "decimals": self.decimals}
            if self.unit is not None:
                out["unit"] = self.unit
        if self.type == "text":
            out["max_length"] = self.max_length
        if self.enable_when is not None:
            out["enable_when"] = {
                "question": self.enable_when.question,
                "answer": self.enable_when.answer,
            }
        return out


def _option_dict(option: Option) -> dict[str, Any]:
    out: dict[str, Any] = {"code": option.code, "label": option.label}
    if option.value is not None:
        out["value"] = option.value
    if option.translations:
        out["translations"] = dict(option.translations)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Score:
    kind: Literal["sum"] = "sum"
    items: tuple[str, ...]
    label: str
    bands: tuple[Band, ...] = ()


@dataclass(frozen=True, slots=True)
class Instrument:
    code: str
    version: int
    title: str
    items: tuple[Item, ...]
    title_translations: Mapping[str, str] = field(default_factory=_no_translations, hash=False)
    score: Score | None = None

    def item(self, link_id: str) -> Item:
        for item in self.items:
            if item.link_id == link_id:
                return item
        raise KeyError(link_id)

    def to_dict(self) -> dict[str, Any]:
        """The definition in the format `validate_definition` reads."""
        out: dict[str, Any] = {"code": self.code, "version": self.version, "title": self.title}
        if self.title_translations:
            out["title_translations"] = dict(self.title_translations)
        out["items"] = [i.to_dict() for i in self.items]
        if self.score is not None:
            out["score"] = {
                "kind": self.score.kind,
                "items": list(self.score.items),
                "label": self.score.label,
                "bands": [list(b) for b in self.score.bands],
            }
        return out


class DefinitionError(ValueError):
    """A definition that cannot be used; `errors` names every problem with its path."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


# --- reading a definition ----------------------------------------------------------------------

_INSTRUMENT_KEYS = ("code", "version", "title", "title_translations", "items", "score")
_COMMON_ITEM_KEYS = (
    "link_id", "type", "text", "translations", "required", "help", "help_translations",
    "enable_when",
)  # fmt: skip
_TYPE_KEYS: Mapping[str, tuple[str, ...]] = {
    "single_choice": ("options",),
    "multiple_choice": ("options",),
    "numeric": ("minimum", "maximum", "decimals", "unit"),
    "text": ("max_length",),
}
_OPTION_KEYS = ("code", "label", "value", "translations")
_SCORE_KEYS = ("kind", "items", "label", "bands")


class _Problems(list[str]):
    def add(self, path: str, message: str) -> None:
        self.append(f"{path}: {message}")


def _at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def validate_definition(data: object) -> Instrument:
    """The instrument that `data`, a JSON-able dict, defines; DefinitionError listing every
    problem found, each with its path, when it defines none."""
    problems = _Problems()
    if not isinstance(data, Mapping):
        raise DefinitionError(["definition: expected an object"])
    _known_keys(data, _INSTRUMENT_KEYS, "", problems)
    code = _required_text(data, "code", "", problems, pattern=_CODE, limit=64)
    version = data.get("version")
    if not _is_int(version) or version < 1:
        problems.add("version", "expected a whole number of at least 1")
    title = _required_text(data, "title", "", problems)
    title_translations = _translations(
        data.get("title_translations"), "title_translations", problems
    )
    items = _items(data.get("items"), problems)
    score = None
    if "score" in data:
        score = _score(data["score"], items, problems)
    if problems:
        raise DefinitionError(list(problems))
    assert code is not None and title is not None and _is_int(version)
    parsed = tuple(i for i in items.values() if i is not None)
    return Instrument(code, version, title, parsed, title_translations, score)


def _items(raw: object, problems: _Problems) -> dict[str, Item | None]:
    """The items by link id, in order; None for an item with problems of its own, so that
    later items can still tell an earlier item from an unknown one."""
    items: dict[str, Item | None] = {}
    if not isinstance(raw, list) or not raw:
        problems.add("items", "expected a non-empty list of items")
        return items
    for index, entry in enumerate(raw):
        path = _at("items", index)
        if not isinstance(entry, Mapping):
            problems.add(path, "expected an object")
            continue
        before = len(problems)
        item = _item(entry, path, items, problems)
        link_id = entry.get("link_id")
        if isinstance(link_id, str) and _LINK_ID.fullmatch(link_id):
            if link_id in items:
                problems.add(_at(path, "link_id"), f'"{link_id}" is used by an earlier item')
                continue
            items[link_id] = item if len(problems) == before else None
    return items


def _item(
    data: Mapping[str, Any], path: str, earlier: Mapping[str, Item | None], problems: _Problems
) -> Item | None:
    link_id = _required_text(data, "link_id", path, problems, pattern=_LINK_ID)
    item_type = data.get("type")
    if item_type not in ITEM_TYPES:
        problems.add(_at(path, "type"), f"expected one of: {', '.join(ITEM_TYPES)}")
        _known_keys(data, (*_COMMON_ITEM_KEYS, *_all_type_keys()), path, problems)
        return None
    kind = cast(ItemType, item_type)
    _known_keys(data, (*_COMMON_ITEM_KEYS, *_TYPE_KEYS.get(kind, ())), path, problems, kind)
    text = _required_text(data, "text", path, problems)
    translations = _translations(data.get("translations"), _at(path, "translations"), problems)
    required = data.get("required", False)
    if not isinstance(required, bool):
        problems.add(_at(path, "required"), "expected true or false")
    help_text = None
    if "help" in data:
        help_text = _required_text(data, "help", path, problems)
    help_translations = _translations(
        data.get("help_translations"), _at(path, "help_translations"), problems
    )
    if help_translations and "help" not in data:
        problems.add(_at(path, "help_translations"), "translations of a help text not given")
    item = Item(
        link_id=link_id or "",
        type=kind,
        text=text or "",
        required=required is True,
        translations=translations,
        help=help_text,
        help_translations=help_translations,
    )
    if kind in CHOICE_TYPES:
        item = _with_options(item, data.get("options"), _at(path, "options"), problems)
    elif kind == "numeric":
        item = _with_range(item, data, path, problems)
    elif kind == "text":
        length = data.get("max_length", DEFAULT_TEXT_LENGTH)
        if not _is_int(length) or not 1 <= length <= MAX_TEXT_LENGTH:
            problems.add(_at(path, "max_length"), f"expected a whole number 1-{MAX_TEXT_LENGTH}")
        else:
            item = _replace(item, max_length=length)
    if "enable_when" in data:
        condition = _enable_when(data["enable_when"], _at(path, "enable_when"), earlier, problems)
        item = _replace(item, enable_when=condition)
    return item


def _all_type_keys() -> tuple[str, ...]:
    return tuple(k for keys in _TYPE_KEYS.values() for k in keys)


def _with_options(item: Item, raw: object, path: str, problems: _Problems) -> Item:
    if not isinstance(raw, list) or len(raw) < 2:
        problems.add(path, "expected a list of at least two options")
        return item
    options: list[Option] = []
    for index, entry in enumerate(raw):
        at = _at(path, index)
        if not isinstance(entry, Mapping):
            problems.add(at, "expected an object")
            continue
        _known_keys(entry, _OPTION_KEYS, at, problems)
        code = _required_text(entry, "code", at, problems, pattern=_OPTION_CODE)
        label = _required_text(entry, "label", at, problems)
        value = entry.get("value")
        if value is not None and not _is_int(value):
            problems.add(_at(at, "value"), "expected a whole number (or no value)")
            value = None
        translations = _translations(entry.get("translations"), _at(at, "translations"), problems)
        if code is not None and any(o.code == code for o in options):
            problems.add(_at(at, "code"), f'"{code}" is used by an earlier option')
        elif code is not None and label is not None:
            options.append(Option(code, label, value, translations))
    return _replace(item, options=tuple(options))


def _with_range(item: Item, data: Mapping[str, Any], path: str, problems: _Problems) -> Item:
    decimals = data.get("decimals", 0)
    if not _is_int(decimals) or not 0 <= decimals <= MAX_DECIMALS:
        problems.add(_at(path, "decimals"), f"expected a whole number 0-{MAX_DECIMALS}")
        decimals = MAX_DECIMALS
    bounds: list[Number | None] = []
    for key in ("minimum", "maximum"):
        value = data.get(key)
        if not _is_number(value):
            problems.add(_at(path, key), "expected a number")
            bounds.append(None)
        elif _decimal_places(value) > decimals:
            problems.add(_at(path, key), f"{value} has more decimals than the item's {decimals}")
            bounds.append(None)
        else:
            bounds.append(value)
    low, high = bounds
    if low is not None and high is not None and not low < high:
        problems.add(_at(path, "maximum"), f"must be greater than the minimum ({low})")
    unit = None
    if "unit" in data:
        unit = _required_text(data, "unit", path, problems, pattern=_UNIT)
    return _replace(item, minimum=low, maximum=high, decimals=decimals, unit=unit)


def _enable_when(
    raw: object, path: str, earlier: Mapping[str, Item | None], problems: _Problems
) -> EnableWhen | None:
    if not isinstance(raw, Mapping):
        problems.add(path, "expected an object with question and answer")
        return None
    _known_keys(raw, ("question", "answer"), path, problems)
    question = raw.get("question")
    answer = raw.get("answer")
    if not isinstance(question, str) or question not in earlier:
        problems.add(_at(path, "question"), f"{_quoted(question)} is not an earlier item")
        return None
    controller = earlier[question]
    if controller is None:
        return None  # its own problems are reported; its answers cannot be judged
    if controller.type not in CONTROLLING_TYPES:
        kinds = ", ".join(sorted(CONTROLLING_TYPES))
        problems.add(
            _at(path, "question"),
            f'"{question}" is a {controller.type} item; an item can depend on {kinds} items',
        )
        return None
    if not _is_valid_condition(controller, answer):
        problems.add(
            _at(path, "answer"),
            f'{_quoted(answer)} is not a possible answer of "{question}" '
            f"(expected {_expected(controller)})",
        )
        return None
    return EnableWhen(question, cast(bool | int | str, answer))


def _is_valid_condition(controller: Item, answer: object) -> bool:
    if controller.type == "yes_no":
        return isinstance(answer, bool)
    if controller.type == "scale_0_10":
        return _is_int(answer) and 0 <= answer <= 10
    return isinstance(answer, str) and controller.option(answer) is not None


def _expected(item: Item) -> str:
    if item.type == "yes_no":
        return "true or false"
    if item.type == "scale_0_10":
        return "a whole number 0-10"
    return "one of: " + ", ".join(o.code for o in item.options)


def _score(raw: object, items: Mapping[str, Item | None], problems: _Problems) -> Score | None:
    if not isinstance(raw, Mapping):
        problems.add("score", "expected an object")
        return None
    _known_keys(raw, _SCORE_KEYS, "score", problems)
    if raw.get("kind", "sum") != "sum":
        problems.add("score.kind", 'expected "sum", the only kind of score there is')
    label = _required_text(raw, "label", "score", problems)
    listed = raw.get("items")
    if not isinstance(listed, list) or not listed:
        problems.add("score.items", "expected a non-empty list of link ids")
        listed = []
    for index, link_id in enumerate(listed):
        at = _at("score.items", index)
        if not isinstance(link_id, str) or link_id not in items:
            problems.add(at, f"{_quoted(link_id)} is not an item")
        elif link_id in listed[:index]:
            problems.add(at, f'"{link_id}" is listed twice')
        elif (item := items[link_id]) is not None:
            _check_scorable(item, at, problems)
    bands = _bands(raw.get("bands", []), problems)
    if label is None:
        return None
    return Score(items=tuple(str(i) for i in listed), label=label, bands=bands)


def _check_scorable(item: Item, path: str, problems: _Problems) -> None:
    if item.type not in SCORABLE_TYPES:
        problems.add(
            path,
            f'"{item.link_id}" is a {item.type} item; only choice, numeric and scale_0_10 '
            "items can be scored",
        )
    for option in item.options:
        if option.value is None:
            problems.add(path, f'option "{option.code}" of "{item.link_id}" has no value')


def _bands(raw: object, problems: _Problems) -> tuple[Band, ...]:
    if not isinstance(raw, list):
        problems.add("score.bands", "expected a list of [low, high, label]")
        return ()
    bands: list[Band] = []
    for index, entry in enumerate(raw):
        at = _at("score.bands", index)
        if (
            not isinstance(entry, list | tuple)
            or len(entry) != 3
            or not _is_number(entry[0])
            or not _is_number(entry[1])
            or not isinstance(entry[2], str)
            or not entry[2].strip()
        ):
            problems.add(at, "expected [low, high, label]")
            continue
        low, high, label = entry
        if low > high:
            problems.add(at, f"low ({low}) is above high ({high})")
        elif bands and low <= bands[-1][1]:
            problems.add(at, f"must begin above the previous band's high ({bands[-1][1]})")
        else:
            bands.append((low, high, label))
    return tuple(bands)


# --- small readers ---------------------------------------------------------------------------


def _known_keys(
    data: Mapping[str, Any],
    allowed: Iterable[str],
    path: str,
    problems: _Problems,
    kind: str | None = None,
) -> None:
    allowed = tuple(allowed)
    for key in data:
        if key in allowed:
            continue
        if kind is not None and key in _all_type_keys():
            problems.add(_at(path, str(key)), f"not used by a {kind} item")
        else:
            problems.add(_at(path, str(key)), "unknown key")


def _required_text(
    data: Mapping[str, Any],
    key: str,
    path: str,
    problems: _Problems,
    *,
    pattern: re.Pattern[str] | None = None,
    limit: int | None = None,
) -> str | None:
    value = data.get(key)
    at = _at(path, key)
    if not isinstance(value, str) or not value.strip():
        problems.add(at, "expected non-empty text")
        return None
    if pattern is not None and not pattern.fullmatch(value):
        problems.add(at, f'"{value}" does not match {pattern.pattern}')
        return None
    if limit is not None and len(value) > limit:
        problems.add(at, f"at most {limit} characters")
        return None
    return value


def _translations(raw: object, path: str, problems: _Problems) -> Mapping[str, str]:
    if raw is None:
        return _no_translations()
    if not isinstance(raw, Mapping):
        problems.add(path, 'expected an object of language code to text, e.g. {"de": "..."}')
        return _no_translations()
    good: dict[str, str] = {}
    for language, text in raw.items():
        at = _at(path, str(language))
        if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
            problems.add(at, f"{_quoted(language)} is not a language code")
        elif not isinstance(text, str) or not text.strip():
            problems.add(at, "expected non-empty text")
        else:
            good[language] = text
    return MappingProxyType(good)


def _is_int(value: object) -> TypeGuard[int]:
    # JSON true is no 1: a bool is an int to Python, never to a questionnaire.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[Number]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _decimal_places(value: Number) -> int:
    # The shortest text that reads back as the float ("7.1", not 7.0999...), normalised so
    # that 7.0 has none.
    exponent = Decimal(repr(value)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _quoted(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    return str(value) if _is_number(value) else _kind(value)


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


# --- skip logic -------------------------------------------------------------------------------


def visible_items(instrument: Instrument, answers: Mapping[str, object]) -> list[Item]:
    """The items shown, in order, given the answers so far. An item whose controlling item
    is hidden is hidden too, whatever answer that item may still carry."""
    shown: list[Item] = []
    shown_ids: set[str] = set()
    for item in instrument.items:
        condition = item.enable_when
        if condition is None or (
            condition.question in shown_ids
            and _holds(instrument.item(condition.question), condition, answers)
        ):
            shown.append(item)
            shown_ids.add(item.link_id)
    return shown


def _holds(controller: Item, condition: EnableWhen, answers: Mapping[str, object]) -> bool:
    answer = answers.get(controller.link_id)
    if controller.type == "multiple_choice":
        return isinstance(answer, list | tuple) and condition.answer in answer
    return _same(answer, condition.answer)


def _same(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return type(a) is type(b) and a == b


# --- answers --------------------------------------------------------------------------------


def check_answers(
    instrument: Instrument, answers: object
) -> tuple[dict[str, object], dict[str, list[str]]]:
    """The answers cleaned (see the module's docstring), and the problems by link id, each a
    message to show next to its question. Anything may arrive, as a form or the API sent it:
    nothing here raises on bad input. A None, an empty or blank text and an empty list are
    no answer. Answers are accepted only when no problem is returned."""
    if not isinstance(answers, Mapping):
        return {}, {FORM_ERRORS: ["Send the answers as an object of question id to answer."]}
    errors: dict[str, list[str]] = {}
    known = {item.link_id for item in instrument.items}
    for key in answers:
        if key not in known:
            errors.setdefault(str(key), []).append(f"Unknown question {_quoted(key)}.")
    clean: dict[str, object] = {}
    # Per item: True shown, False hidden, None when a controlling answer was itself wrong,
    # so that whether the item is asked cannot be told.
    shown: dict[str, bool | None] = {}
    wrong: set[str] = set()  # answered, but not acceptably
    for item in instrument.items:
        raw = answers.get(item.link_id)
        visible, why_hidden = _visibility(instrument, item, shown, clean, wrong)
        shown[item.link_id] = visible
        if _blank(raw):
            if visible and item.required:
                errors.setdefault(item.link_id, []).append("This question needs an answer.")
            continue
        if visible is False:
            errors.setdefault(item.link_id, []).append(why_hidden)
            continue
        value, problem = _check_value(item, raw)
        if problem is not None:
            errors.setdefault(item.link_id, []).append(problem)
            wrong.add(item.link_id)
        else:
            clean[item.link_id] = value
    return clean, errors


def _visibility(
    instrument: Instrument,
    item: Item,
    shown: Mapping[str, bool | None],
    clean: Mapping[str, object],
    wrong: set[str],
) -> tuple[bool | None, str]:
    condition = item.enable_when
    if condition is None:
        return True, ""
    question = condition.question
    if shown[question] is None or question in wrong:
        return None, ""
    if shown[question] is False:
        return False, f'"{item.link_id}" is not asked because "{question}" is not asked.'
    controller = instrument.item(question)
    if _holds(controller, condition, clean):
        return True, ""
    if controller.type == "multiple_choice":
        wanted = _describe(controller, condition.answer)
        return False, f'"{item.link_id}" is not asked unless "{question}" includes {wanted}.'
    actual = _describe(controller, clean.get(question))
    return False, f'"{item.link_id}" is not asked when "{question}" is {actual}.'


def _describe(item: Item, answer: object) -> str:
    if answer is None:
        return "unanswered"
    if isinstance(answer, bool):
        return "yes" if answer else "no"
    option = item.option(answer)
    if option is not None:
        return f'"{option.label}"'
    return str(answer)


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | tuple) and not value


def _check_value(item: Item, raw: object) -> tuple[object, str | None]:
    checker = _CHECKERS[item.type]
    return checker(item, raw)


def _check_single(item: Item, raw: object) -> tuple[object, str | None]:
    if not isinstance(raw, str):
        return None, f"Expected one option code, got {_kind(raw)}."
    if item.option(raw) is None:
        return None, f'"{raw}" is not an option; choose one of: {_codes(item)}.'
    return raw, None


def _check_multiple(item: Item, raw: object) -> tuple[object, str | None]:
    if not isinstance(raw, list | tuple):
        return None, f"Expected a list of option codes, got {_kind(raw)}."
    for index, code in enumerate(raw):
        if not isinstance(code, str) or item.option(code) is None:
            return None, f"{_quoted(code)} is not an option; choose from: {_codes(item)}."
        if code in raw[:index]:
            return None, f'"{code}" is chosen twice.'
    return [o.code for o in item.options if o.code in raw], None


def _codes(item: Item) -> str:
    return ", ".join(o.code for o in item.options)


def _check_numeric(item: Item, raw: object) -> tuple[object, str | None]:
    if not _is_number(raw):
        finite = isinstance(raw, float) and not math.isfinite(raw)
        return (
            None,
            "Expected a finite number." if finite else f"Expected a number, got {_kind(raw)}.",
        )
    assert item.minimum is not None and item.maximum is not None
    if not item.minimum <= raw <= item.maximum:
        unit = f" {item.unit}" if item.unit else ""
        return None, f"Must be between {item.minimum} and {item.maximum}{unit}."
    if _decimal_places(raw) > item.decimals:
        if item.decimals == 0:
            return None, "Use a whole number."
        plural = "s" if item.decimals > 1 else ""
        return None, f"Use at most {item.decimals} decimal{plural}."
    return (int(raw) if item.decimals == 0 else float(raw)), None


def _check_scale(item: Item, raw: object) -> tuple[object, str | None]:
    if not _is_int(raw) or not 0 <= raw <= 10:
        return None, f"Expected a whole number from 0 to 10, got {_quoted(raw)}."
    return raw, None


def _check_yes_no(item: Item, raw: object) -> tuple[object, str | None]:
    if not isinstance(raw, bool):
        return None, f"Expected yes or no (true or false), got {_kind(raw)}."
    return raw, None


def _check_date(item: Item, raw: object) -> tuple[object, str | None]:
    if not isinstance(raw, str) or not _DATE.fullmatch(raw):
        return None, "Expected a date as YYYY-MM-DD, e.g. 2026-03-10."
    try:
        return date.fromisoformat(raw).isoformat(), None
    except ValueError:
        return None, f'"{raw}" is no date of the calendar.'


def _check_datetime(item: Item, raw: object) -> tuple[object, str | None]:
    example = "e.g. 2026-03-10T09:30:00+01:00"
    if not isinstance(raw, str) or not _DATETIME.fullmatch(raw):
        return None, f"Expected a date and time with its UTC offset, {example}."
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None, f'"{raw}" is no time of the calendar; {example}.'
    return moment.isoformat(), None


def _check_text(item: Item, raw: object) -> tuple[object, str | None]:
    if not isinstance(raw, str):
        return None, f"Expected text, got {_kind(raw)}."
    text = raw.strip()
    if "\x00" in text:
        return None, "The text contains a NUL character."
    limit = item.max_length or DEFAULT_TEXT_LENGTH
    if len(text) > limit:
        return None, f"At most {limit} characters, please (this has {len(text)})."
    return text, None


_CHECKERS = {
    "single_choice": _check_single,
    "multiple_choice": _check_multiple,
    "numeric": _check_numeric,
    "scale_0_10": _check_scale,
    "yes_no": _check_yes_no,
    "date": _check_date,
    "datetime": _check_datetime,
    "text": _check_text,
}


# --- score ----------------------------------------------------------------------------------


def score(instrument: Instrument, answers: Mapping[str, object]) -> Number | None:
    """The instrument's score from answers as `check_answers` cleaned them (see the module's
    docstring for the formula); None without a score or when a listed item that is shown
    was left unanswered. ValueError for an answer that was never checked and is wrong."""
    if instrument.score is None:
        return None
    shown = {item.link_id for item in visible_items(instrument, answers)}
    total: Number = 0
    for link_id in instrument.score.items:
        if link_id not in shown:
            continue  # skipped by the skip logic: counts 0
        answer = answers.get(link_id)
        if _blank(answer):
            return None
        total += _points(instrument.item(link_id), answer)
    return total


def _points(item: Item, answer: object) -> Number:
    chosen = answer if item.type == "multiple_choice" else [answer]
    if item.type in CHOICE_TYPES and isinstance(chosen, list | tuple):
        values = [o.value for code in chosen if (o := item.option(code)) is not None]
        if len(values) == len(chosen) and all(v is not None for v in values):
            return sum(cast(list[int], values))
    elif _is_number(answer):
        return answer
    raise ValueError(f'{_quoted(answer)} cannot be scored as an answer to "{item.link_id}"')


def score_band(instrument: Instrument, value: Number | None) -> str | None:
    """The label of the band holding the score `value`, None when no band does."""
    if instrument.score is None or value is None:
        return None
    return next(
        (label for low, high, label in instrument.score.bands if low <= value <= high), None
    )
