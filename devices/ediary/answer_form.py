"""A questionnaire as an HTML form: its items as the controls of a page, the posted form
read back into answers, and the problems `check_answers` finds, in the reader's language.
The patient's diary form (patient_portal) and the site's correction form share it, and the
template macro `ediary/_question.html` draws each control.

The items come from the instrument's definition (devices/ediary/instruments.py), not from
a WTForms class: each item type has its control (`ItemType` -> `Question.control`), and
the texts are the instrument's own translations, English when it has none for the
patient's language. Checking stays where it is: `entries.submit` runs `check_answers` and
this module only turns its messages into sentences of the catalogue, so that a German or
Japanese patient never reads the English of the checker.

Skip logic without JavaScript: every item is on the page; the answers of items that the
other answers hide are dropped before they are sent (`read_answers`), so a hidden item is
never required and never refused. diary-draft.js hides and shows the items as the patient
answers, from the `show_if` the template writes on each item.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import cast

from babel.numbers import format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from dct_platform.localtime import local_to_utc
from dct_platform.timeutil import zone as timezone
from devices.ediary.instruments import FORM_ERRORS, Instrument, Item, visible_items

# Field names of the answers: "q-<link id>", so that no link id ("client_id" is a valid
# one) can take the name of the form's own fields.
PREFIX = "q-"
GROUPED = frozenset({"single_choice", "multiple_choice", "scale_0_10", "yes_no"})
YES, NO = "yes", "no"
_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)")
_LOCAL_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?")
# UCUM codes patients would not read as words; the rest (kg, cm, mmHg) are shown as they are.
_UNITS = {
    "h": _l("hours"),
    "min": _l("minutes"),
    "d": _l("days"),
    "Cel": "°C",
    "[degF]": "°F",
    "mm[Hg]": "mmHg",
    "/min": _l("per minute"),
}


def field_name(link_id: str) -> str:
    return PREFIX + link_id


def in_language(text: str, translations: Mapping[str, str], language: str) -> str:
    """`text` in `language` ("pt-BR" falls back to "pt"), else the definition's own text."""
    return translations.get(language) or translations.get(language.split("-")[0]) or text


def number_text(value: float | None, language: str) -> str:
    if value is None:
        return ""
    return str(format_decimal(value, locale=language, group_separator=False))


def unit_text(unit: str | None) -> str:
    if not unit:
        return ""
    return str(_UNITS.get(unit, unit))


def form_value(answer: object) -> str:
    """An answer as the form sends it: "yes"/"no", a number, an option code."""
    if isinstance(answer, bool):
        return YES if answer else NO
    return str(answer)


# --- the page's questions ----------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    id: str
    value: str
    label: str
    checked: bool


@dataclass(frozen=True)
class ShowIf:
    """The item is asked only when the field `name` has (or, multiple choice, includes)
    `value`; `text` says so to a patient without JavaScript."""

    name: str
    value: str
    text: str


@dataclass(frozen=True)
class Question:
    item: Item
    name: str
    id: str  # the control's id, or the first choice's: where the error summary links to
    text: str
    help: str | None
    hint: str | None  # what the form adds: a number's range, "choose all that apply"
    unit: str
    choices: tuple[Choice, ...]
    value: str  # the text controls' value
    errors: tuple[str, ...]
    show_if: ShowIf | None

    @property
    def grouped(self) -> bool:
        return self.item.type in GROUPED

    @property
    def control(self) -> str:
        return self.item.type

    @property
    def described_by(self) -> str:
        """The ids of what describes the question, and only those the page has."""
        ids = [
            f"{self.name}-when" if self.show_if else "",
            f"{self.name}-help" if self.help else "",
            f"{self.name}-hint" if self.hint else "",
            f"{self.name}-unit" if self.unit else "",
            f"{self.name}-error" if self.errors else "",
        ]
        return " ".join(i for i in ids if i)


def _choices(item: Item, language: str, chosen: list[str]) -> tuple[Choice, ...]:
    if item.type == "scale_0_10":
        pairs = [(str(n), str(n)) for n in range(11)]
    elif item.type == "yes_no":
        pairs = [(YES, _("Yes")), (NO, _("No"))]
    else:
        pairs = [(o.code, in_language(o.label, o.translations, language)) for o in item.options]
    name = field_name(item.link_id)
    return tuple(
        Choice(f"{name}-{index}", value, label, value in chosen)
        for index, (value, label) in enumerate(pairs)
    )


def _answer_label(controller: Item, answer: object, language: str) -> str:
    if isinstance(answer, bool):
        return cast(str, _("Yes") if answer else _("No"))
    option = controller.option(answer)
    if option is not None:
        return in_language(option.label, option.translations, language)
    return str(answer)


def _show_if(instrument: Instrument, item: Item, language: str) -> ShowIf | None:
    condition = item.enable_when
    if condition is None:
        return None
    controller = instrument.item(condition.question)
    text = _(
        "Only if you answered “%(answer)s” to: %(question)s",
        answer=_answer_label(controller, condition.answer, language),
        question=in_language(controller.text, controller.translations, language),
    )
    return ShowIf(field_name(controller.link_id), form_value(condition.answer), text)


def _hint(item: Item, language: str) -> str | None:
    if item.type == "multiple_choice":
        return cast(str, _("Choose all that apply."))
    if item.type == "numeric":
        return cast(
            str,
            _(
                "A number from %(minimum)s to %(maximum)s.",
                minimum=number_text(item.minimum, language),
                maximum=number_text(item.maximum, language),
            ),
        )
    return None


def questions(
    instrument: Instrument,
    language: str,
    values: Mapping[str, list[str]] | None = None,
    errors: Mapping[str, list[str]] | None = None,
) -> list[Question]:
    """Every item of the instrument as a question of the page, with the values the patient
    sent (by link id, as `read_answers` keeps them) and the messages to show."""
    values, errors = values or {}, errors or {}
    found = []
    for item in instrument.items:
        name = field_name(item.link_id)
        sent = values.get(item.link_id, [])
        choices = _choices(item, language, sent) if item.type in GROUPED else ()
        help_text = in_language(item.help, item.help_translations, language) if item.help else None
        found.append(
            Question(
                item=item,
                name=name,
                id=choices[0].id if choices else name,
                text=in_language(item.text, item.translations, language),
                help=help_text,
                hint=_hint(item, language),
                unit=unit_text(item.unit) if item.type == "numeric" else "",
                choices=choices,
                value=sent[0] if sent and not choices else "",
                errors=tuple(problem_text(item, m, language) for m in errors.get(item.link_id, [])),
                show_if=_show_if(instrument, item, language),
            )
        )
    return found


# --- reading the posted form ---------------------------------------------------------------


def _number(text: str) -> object:
    """ "7,5" or "7.5" as a number (7.5; "7" as 7); anything else stays text, which
    check_answers refuses with its own message."""
    compact = text.replace(" ", "").replace("\u00a0", "")
    if not _NUMBER.fullmatch(compact):
        return text
    try:
        value = Decimal(compact.replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        return text
    if value == value.to_integral_value() and "." not in compact and "," not in compact:
        return int(value)
    return float(value)


def _local_datetime(text: str, zone: str) -> object:
    """A datetime-local value ("2026-03-10T09:30") is a time on the patient's clock: it is
    sent with the zone's offset, as check_answers wants it."""
    if not _LOCAL_DATETIME.fullmatch(text):
        return text
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        return text
    instant = local_to_utc(naive.date(), naive.time(), zone)
    return instant.astimezone(timezone(zone)).isoformat()


def _typed(item: Item, text: str, zone: str) -> object:
    if item.type == "scale_0_10":
        return int(text) if text.isdigit() and len(text) <= 2 else text
    if item.type == "yes_no":
        return {YES: True, NO: False}.get(text, text)
    if item.type == "numeric":
        return _number(text)
    if item.type == "datetime":
        return _local_datetime(text, zone)
    return text


def read_answers(
    instrument: Instrument, form: MultiDict[str, str], zone: str
) -> tuple[dict[str, object], dict[str, list[str]]]:
    """The answers to send (typed as check_answers reads them, without the blank ones and
    without those of items the other answers hide), and every value as it was sent, by
    link id, to show the form again."""
    sent: dict[str, list[str]] = {}
    answers: dict[str, object] = {}
    for item in instrument.items:
        name = field_name(item.link_id)
        if item.type == "multiple_choice":
            chosen = [v for v in form.getlist(name) if v]
            sent[item.link_id] = chosen
            if chosen:
                answers[item.link_id] = chosen
            continue
        text = form.get(name, "")
        sent[item.link_id] = [text]
        if text.strip():
            answers[item.link_id] = _typed(item, text.strip(), zone)
    shown = {item.link_id for item in visible_items(instrument, answers)}
    return {k: v for k, v in answers.items() if k in shown}, sent


# --- check_answers' problems in the patient's language ----------------------------------------


def problem_text(item: Item, message: str, language: str) -> str:
    """What check_answers said about an answer to `item`, as a sentence of the catalogue.
    Its messages are English; each kind it has for the item's type has a translation, and a
    message it may add later reads "Please check this answer." until it gets one."""
    if message == "This question needs an answer.":
        return cast(str, _("This question needs an answer."))
    kind = item.type
    if kind == "numeric":
        if message.startswith("Must be between"):
            low = number_text(item.minimum, language)
            high = number_text(item.maximum, language)
            if item.unit:
                return cast(
                    str,
                    _(
                        "Must be between %(minimum)s and %(maximum)s %(unit)s.",
                        minimum=low,
                        maximum=high,
                        unit=unit_text(item.unit),
                    ),
                )
            return cast(
                str, _("Must be between %(minimum)s and %(maximum)s.", minimum=low, maximum=high)
            )
        if message == "Use a whole number.":
            return cast(str, _("Use a whole number, without decimals."))
        if message.startswith("Use at most"):
            if item.decimals == 1:
                return cast(str, _("Use at most one decimal place."))
            return cast(str, _("Use at most %(num)d decimal places.", num=item.decimals))
        return cast(str, _("Enter a number."))
    if kind == "scale_0_10":
        return cast(str, _("Choose a number from 0 to 10."))
    if kind == "yes_no":
        return cast(str, _("Choose yes or no."))
    if kind in ("single_choice", "multiple_choice"):
        return cast(str, _("Choose from the answers shown."))
    if kind == "date":
        return cast(str, _("Enter a date."))
    if kind == "datetime":
        return cast(str, _("Enter a date and a time."))
    if kind == "text" and message.startswith("At most"):
        return cast(str, _("Use at most %(num)d characters.", num=item.max_length or 0))
    return cast(str, _("Please check this answer."))


def form_errors(errors: Mapping[str, list[str]], instrument: Instrument) -> list[str]:
    """Problems with the answer set as a whole (none come from this form), and with
    questions the form does not have: shown above the form."""
    known = {item.link_id for item in instrument.items}
    return [
        cast(str, _("Please check your answers and send them again."))
        for key in errors
        if key == FORM_ERRORS or key not in known
    ][:1]
