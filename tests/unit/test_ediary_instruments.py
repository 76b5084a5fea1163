"""eDiary instrument definitions (devices/ediary/instruments.py): the definition format and
its errors, skip logic, the checking of submitted answers and the score."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from devices.ediary.demo_instruments import DAILY_SYMPTOMS, MOOD_9
from devices.ediary.instruments import (
    FORM_ERRORS,
    DefinitionError,
    EnableWhen,
    Instrument,
    check_answers,
    score,
    score_band,
    validate_definition,
    visible_items,
)

# Every item type, skip logic on each type an item can depend on, translations, help and a
# score with a fractional band: shared with test_ediary_fhir.py.
ALL_TYPES: dict[str, Any] = {
    "code": "all-types",
    "version": 3,
    "title": "Every item type",
    "title_translations": {"de": "Alle Fragetypen", "ja": "すべての質問形式"},
    "items": [
        {
            "link_id": "feeling",
            "type": "single_choice",
            "text": "How do you feel?",
            "translations": {"de": "Wie fühlen Sie sich?", "ja": "気分はいかがですか"},
            "required": True,
            "options": [
                {"code": "good", "label": "Good", "value": 0, "translations": {"de": "Gut"}},
                {"code": "bad", "label": "Bad", "value": 2, "translations": {"de": "Schlecht"}},
            ],
        },
        {
            "link_id": "where",
            "type": "multiple_choice",
            "text": "Where does it hurt?",
            "required": True,
            "options": [
                {"code": "head", "label": "Head", "value": 1},
                {"code": "back", "label": "Back", "value": 1},
                {"code": "legs", "label": "Legs", "value": 1},
            ],
            "enable_when": {"question": "feeling", "answer": "bad"},
        },
        {
            "link_id": "back_pain",
            "type": "scale_0_10",
            "text": "How bad is the back pain?",
            "required": True,
            "enable_when": {"question": "where", "answer": "back"},
        },
        {
            "link_id": "took_medicine",
            "type": "yes_no",
            "text": "Did you take a painkiller?",
            "required": False,
            "enable_when": {"question": "back_pain", "answer": 10},
        },
        {
            "link_id": "last_dose",
            "type": "datetime",
            "text": "When did you take it?",
            "required": True,
            "enable_when": {"question": "took_medicine", "answer": True},
        },
        {
            "link_id": "temperature",
            "type": "numeric",
            "text": "Your temperature",
            "required": True,
            "help": "Measure it under the tongue.",
            "help_translations": {
                "de": "Unter der Zunge messen.",
                "ja": "舌の下で測ってください。",
            },
            "minimum": 34.5,
            "maximum": 42,
            "decimals": 1,
            "unit": "Cel",
        },
        {
            "link_id": "steps",
            "type": "numeric",
            "text": "Steps yesterday",
            "required": False,
            "minimum": 0,
            "maximum": 100000,
            "decimals": 0,
        },
        {"link_id": "visit_day", "type": "date", "text": "Day of your visit", "required": False},
        {
            "link_id": "notes",
            "type": "text",
            "text": "Notes",
            "required": False,
            "max_length": 20,
        },
    ],
    "score": {
        "kind": "sum",
        "items": ["feeling", "where", "back_pain", "temperature"],
        "label": "Crafted score",
        "bands": [[0, 40, "low"], [40.5, 100, "high"]],
    },
}


def _instrument(*items: dict[str, Any], **extra: Any) -> Instrument:
    return validate_definition(
        {"code": "t", "version": 1, "title": "T", "items": list(items)} | extra
    )


def _errors(definition: dict[str, Any]) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(definition)
    return caught.value.errors


def _yes_no(link_id: str, **extra: Any) -> dict[str, Any]:
    return {"link_id": link_id, "type": "yes_no", "text": link_id} | extra


def _choice(link_id: str, *codes: str, kind: str = "single_choice", **extra: Any) -> dict[str, Any]:
    options = [{"code": c, "label": c.title(), "value": n} for n, c in enumerate(codes)]
    return {"link_id": link_id, "type": kind, "text": link_id, "options": options} | extra


# --- definitions ---------------------------------------------------------------------------


@pytest.mark.parametrize("definition", [DAILY_SYMPTOMS, MOOD_9, ALL_TYPES])
def test_definitions_validate_and_round_trip(definition: dict[str, Any]) -> None:
    instrument = validate_definition(definition)
    assert instrument.to_dict() == definition
    assert validate_definition(instrument.to_dict()) == instrument
    hash(instrument)  # frozen all the way down, translations included


def test_demo_instruments_are_what_they_say() -> None:
    daily = validate_definition(DAILY_SYMPTOMS)
    assert daily.title == "Daily symptom diary"
    assert [i.type for i in daily.items] == [
        "scale_0_10", "yes_no", "scale_0_10", "single_choice", "multiple_choice", "numeric",
        "single_choice", "text",
    ]  # fmt: skip
    assert daily.item("pain_intensity").enable_when == EnableWhen("pain", True)
    slept = daily.item("hours_slept")
    assert (slept.minimum, slept.maximum, slept.decimals) == (0, 24, 1)
    assert not daily.item("anything_else").required
    # The platform ships German and Japanese: every text a patient reads has both.
    for item in daily.items:
        assert set(item.translations) == {"de", "ja"}, item.link_id
        for option in item.options:
            assert set(option.translations) == {"de", "ja"}, (item.link_id, option.code)

    mood = validate_definition(MOOD_9)
    assert len(mood.items) == 9
    assert all([o.value for o in i.options] == [0, 1, 2, 3] for i in mood.items)
    assert mood.score is not None
    assert mood.score.items == tuple(i.link_id for i in mood.items)
    assert mood.score.bands[0][:2] == (0, 4) and mood.score.bands[-1][:2] == (20, 27)


def test_mood_9_is_worded_in_its_own_words() -> None:
    # The PHQ-9's wording is licensed: none of its phrases may appear.
    texts = " ".join(
        [i["text"] for i in MOOD_9["items"]]
        + [o["label"] for i in MOOD_9["items"] for o in i["options"]]
    ).lower()
    for phrase in (
        "little interest or pleasure",
        "feeling down, depressed, or hopeless",
        "several days",
        "more than half the days",
        "nearly every day",
        "bothered by",
    ):
        assert phrase not in texts


def test_every_problem_is_named_with_its_path() -> None:
    errors = _errors(
        {
            "code": "Not A Code",
            "version": 0,
            "title": "",
            "colour": "blue",
            "items": [
                {"link_id": "a", "type": "numeric", "text": "A", "minimum": 5, "maximum": 1},
                _yes_no("b", enable_when={"question": "q9", "answer": True}),
                _choice("c", "x", "x"),
                _yes_no("a"),
                {"link_id": "d", "type": "photo", "text": "D"},
                _yes_no("e", options=[]),
            ],
            "score": {"items": ["a", "zz"], "label": "S", "bands": [[0, 5, "a"], [5, 9, "b"]]},
        }
    )
    assert errors == [
        "colour: unknown key",
        'code: "Not A Code" does not match [a-z][a-z0-9]*(-[a-z0-9]+)*',
        "version: expected a whole number of at least 1",
        "title: expected non-empty text",
        "items[0].maximum: must be greater than the minimum (5)",
        'items[1].enable_when.question: "q9" is not an earlier item',
        'items[2].options[1].code: "x" is used by an earlier option',
        'items[3].link_id: "a" is used by an earlier item',
        "items[4].type: expected one of: single_choice, multiple_choice, numeric, scale_0_10, "
        "yes_no, datetime, date, text",
        "items[5].options: not used by a yes_no item",
        'score.items[1]: "zz" is not an item',
        "score.bands[1]: must begin above the previous band's high (5)",
    ]


def test_enable_when_points_only_to_earlier_items() -> None:
    errors = _errors(
        {
            "code": "t",
            "version": 1,
            "title": "T",
            "items": [_yes_no("a", enable_when={"question": "b", "answer": True}), _yes_no("b")],
        }
    )
    assert errors == ['items[0].enable_when.question: "b" is not an earlier item']
    assert _errors(
        {
            "code": "t",
            "version": 1,
            "title": "T",
            "items": [_yes_no("a", enable_when={"question": "a", "answer": True})],
        }
    ) == ['items[0].enable_when.question: "a" is not an earlier item']


@pytest.mark.parametrize(
    ("controller", "answer", "message"),
    [
        (
            _yes_no("c"),
            1,
            'items[1].enable_when.answer: 1 is not a possible answer of "c" (expected true or false)',
        ),
        (
            _yes_no("c"),
            "yes",
            'items[1].enable_when.answer: "yes" is not a possible answer of "c" (expected true or false)',
        ),
        (
            _choice("c", "x", "y"),
            "z",
            'items[1].enable_when.answer: "z" is not a possible answer of "c" (expected one of: x, y)',
        ),
        (
            _choice("c", "x", "y", kind="multiple_choice"),
            "z",
            'items[1].enable_when.answer: "z" is not a possible answer of "c" (expected one of: x, y)',
        ),
        (
            {"link_id": "c", "type": "scale_0_10", "text": "C"},
            11,
            'items[1].enable_when.answer: 11 is not a possible answer of "c" (expected a whole number 0-10)',
        ),
        (
            {"link_id": "c", "type": "scale_0_10", "text": "C"},
            True,
            'items[1].enable_when.answer: true is not a possible answer of "c" (expected a whole number 0-10)',
        ),
        (
            {"link_id": "c", "type": "text", "text": "C"},
            "hi",
            'items[1].enable_when.question: "c" is a text item; an item can depend on multiple_choice, scale_0_10, single_choice, yes_no items',
        ),
    ],
)
def test_enable_when_needs_a_possible_answer(
    controller: dict[str, Any], answer: object, message: str
) -> None:
    definition = {
        "code": "t",
        "version": 1,
        "title": "T",
        "items": [controller, _yes_no("d", enable_when={"question": "c", "answer": answer})],
    }
    assert _errors(definition) == [message]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"link_id": "9a", "type": "yes_no", "text": "A"},
            'items[0].link_id: "9a" does not match [a-z][a-z0-9_]{0,39}',
        ),
        (
            {"link_id": "a", "type": "yes_no", "text": "A", "required": "yes"},
            "items[0].required: expected true or false",
        ),
        (
            {"link_id": "a", "type": "yes_no", "text": "A", "translations": {"german": "B"}},
            'items[0].translations.german: "german" is not a language code',
        ),
        (
            {"link_id": "a", "type": "yes_no", "text": "A", "help_translations": {"de": "B"}},
            "items[0].help_translations: translations of a help text not given",
        ),
        (
            {
                "link_id": "a",
                "type": "single_choice",
                "text": "A",
                "options": [{"code": "x", "label": "X"}],
            },
            "items[0].options: expected a list of at least two options",
        ),
        (
            {
                "link_id": "a",
                "type": "single_choice",
                "text": "A",
                "options": [
                    {"code": "x", "label": "X", "value": True},
                    {"code": "y", "label": "Y"},
                ],
            },
            "items[0].options[0].value: expected a whole number (or no value)",
        ),
        (
            {"link_id": "a", "type": "numeric", "text": "A", "minimum": 0},
            "items[0].maximum: expected a number",
        ),
        (
            {"link_id": "a", "type": "numeric", "text": "A", "minimum": "0", "maximum": 1},
            "items[0].minimum: expected a number",
        ),
        (
            {"link_id": "a", "type": "numeric", "text": "A", "minimum": 0.5, "maximum": 1},
            "items[0].minimum: 0.5 has more decimals than the item's 0",
        ),
        (
            {
                "link_id": "a",
                "type": "numeric",
                "text": "A",
                "minimum": 0,
                "maximum": 1,
                "unit": "per day",
            },
            'items[0].unit: "per day" does not match [!-~]{1,30}',
        ),
        (
            {"link_id": "a", "type": "text", "text": "A", "max_length": 0},
            "items[0].max_length: expected a whole number 1-10000",
        ),
        (
            {"link_id": "a", "type": "text", "text": "A", "minimum": 0},
            "items[0].minimum: not used by a text item",
        ),
    ],
)
def test_item_problems(item: dict[str, Any], message: str) -> None:
    assert _errors({"code": "t", "version": 1, "title": "T", "items": [item]}) == [message]


@pytest.mark.parametrize(
    ("score_definition", "message"),
    [
        (
            {"items": ["note"], "label": "S"},
            'score.items[0]: "note" is a text item; only choice, numeric and scale_0_10 items can be scored',
        ),
        (
            {"items": ["unvalued"], "label": "S"},
            'score.items[0]: option "y" of "unvalued" has no value',
        ),
        ({"items": ["level", "level"], "label": "S"}, 'score.items[1]: "level" is listed twice'),
        ({"items": [], "label": "S"}, "score.items: expected a non-empty list of link ids"),
        (
            {"kind": "mean", "items": ["level"], "label": "S"},
            'score.kind: expected "sum", the only kind of score there is',
        ),
        (
            {"items": ["level"], "label": "S", "bands": [[3, 1, "x"]]},
            "score.bands[0]: low (3) is above high (1)",
        ),
        (
            {"items": ["level"], "label": "S", "bands": [[0, 1]]},
            "score.bands[0]: expected [low, high, label]",
        ),
    ],
)
def test_score_problems(score_definition: dict[str, Any], message: str) -> None:
    items = [
        {"link_id": "note", "type": "text", "text": "N"},
        {
            "link_id": "unvalued",
            "type": "single_choice",
            "text": "U",
            "options": [{"code": "x", "label": "X", "value": 1}, {"code": "y", "label": "Y"}],
        },
        {"link_id": "level", "type": "scale_0_10", "text": "L"},
    ]
    definition = {
        "code": "t",
        "version": 1,
        "title": "T",
        "items": items,
        "score": score_definition,
    }
    assert _errors(definition) == [message]


@pytest.mark.parametrize(
    "data", [None, [], "x", {"code": "t", "version": 1, "title": "T", "items": []}]
)
def test_not_a_definition(data: object) -> None:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(data)
    assert caught.value.errors
    assert str(caught.value) == "; ".join(caught.value.errors)


def test_definition_is_not_changed_by_validation() -> None:
    original = copy.deepcopy(ALL_TYPES)
    validate_definition(ALL_TYPES)
    assert original == ALL_TYPES


# --- skip logic --------------------------------------------------------------------------------


def _ids(instrument: Instrument, answers: dict[str, object]) -> list[str]:
    return [i.link_id for i in visible_items(instrument, answers)]


def test_skip_logic_is_transitive() -> None:
    instrument = validate_definition(ALL_TYPES)
    always = ["feeling", "temperature", "steps", "visit_day", "notes"]
    assert _ids(instrument, {}) == always
    answers: dict[str, object] = {
        "feeling": "bad",
        "where": ["back"],
        "back_pain": 10,
        "took_medicine": True,
    }
    assert _ids(instrument, answers) == [
        "feeling", "where", "back_pain", "took_medicine", "last_dose", *always[1:],
    ]  # fmt: skip
    # The first answer changed: all four that depend on it, one on another, are hidden,
    # whatever answers they still carry.
    assert _ids(instrument, answers | {"feeling": "good"}) == always
    assert _ids(instrument, answers | {"where": ["head", "legs"]}) == [
        "feeling",
        "where",
        *always[1:],
    ]
    assert _ids(instrument, answers | {"back_pain": 9}) == [
        "feeling",
        "where",
        "back_pain",
        *always[1:],
    ]


def test_skip_logic_compares_strictly() -> None:
    instrument = validate_definition(ALL_TYPES)
    answers: dict[str, object] = {"feeling": "bad", "where": ["back"], "back_pain": 10}
    # JSON 1 is not true, and "10" is not 10.
    assert "last_dose" not in _ids(instrument, answers | {"took_medicine": 1})
    assert "took_medicine" not in _ids(instrument, answers | {"back_pain": "10"})
    assert "back_pain" not in _ids(instrument, answers | {"where": "back"})


# --- answers ---------------------------------------------------------------------------------


def _check(item: dict[str, Any], value: object) -> tuple[dict[str, object], dict[str, list[str]]]:
    return check_answers(_instrument(item | {"link_id": "q", "text": "Q"}), {"q": value})


SINGLE = {
    "type": "single_choice",
    "options": [{"code": "a", "label": "A"}, {"code": "b", "label": "B"}],
}
MULTIPLE = SINGLE | {"type": "multiple_choice"}
NUMERIC = {"type": "numeric", "minimum": 0, "maximum": 24, "decimals": 1, "unit": "h"}
WHOLE = {"type": "numeric", "minimum": -5, "maximum": 5}


@pytest.mark.parametrize(
    ("item", "value", "clean"),
    [
        (SINGLE, "b", "b"),
        (MULTIPLE, ["b", "a"], ["a", "b"]),  # in the options' order
        (MULTIPLE, ("a",), ["a"]),
        (NUMERIC, 7.5, 7.5),
        (NUMERIC, 7, 7.0),
        (NUMERIC, 0, 0.0),
        (NUMERIC, 24, 24.0),
        (WHOLE, -5, -5),
        (WHOLE, 3.0, 3),
        ({"type": "scale_0_10"}, 0, 0),
        ({"type": "scale_0_10"}, 10, 10),
        ({"type": "yes_no"}, False, False),
        ({"type": "date"}, "2026-02-28", "2026-02-28"),
        ({"type": "datetime"}, "2026-03-10T09:30:00+01:00", "2026-03-10T09:30:00+01:00"),
        ({"type": "datetime"}, "2026-03-10T08:30:00.250Z", "2026-03-10T08:30:00.250000+00:00"),
        # Seconds added: FHIR's dateTime has them.
        ({"type": "datetime"}, "2026-03-10T09:30-05:00", "2026-03-10T09:30:00-05:00"),
        ({"type": "text", "max_length": 5}, "  hello ", "hello"),
    ],
)
def test_good_answers(item: dict[str, Any], value: object, clean: object) -> None:
    answers, errors = _check(item, value)
    assert errors == {}
    assert answers == {"q": clean}
    assert type(answers["q"]) is type(clean)


@pytest.mark.parametrize(
    ("item", "value", "message"),
    [
        (SINGLE, "c", '"c" is not an option; choose one of: a, b.'),
        (SINGLE, ["a"], "Expected one option code, got a list."),
        (SINGLE, 1, "Expected one option code, got a number."),
        (MULTIPLE, "a", "Expected a list of option codes, got text."),
        (MULTIPLE, ["a", "c"], '"c" is not an option; choose from: a, b.'),
        (MULTIPLE, ["a", 1], "1 is not an option; choose from: a, b."),
        (MULTIPLE, ["a", "a"], '"a" is chosen twice.'),
        (NUMERIC, "7.5", "Expected a number, got text."),
        (NUMERIC, True, "Expected a number, got true/false."),
        (NUMERIC, float("nan"), "Expected a finite number."),
        (NUMERIC, float("inf"), "Expected a finite number."),
        (NUMERIC, 24.5, "Must be between 0 and 24 h."),
        (NUMERIC, -0.1, "Must be between 0 and 24 h."),
        (NUMERIC, 7.25, "Use at most 1 decimal."),
        (WHOLE, 2.5, "Use a whole number."),
        ({"type": "scale_0_10"}, 11, "Expected a whole number from 0 to 10, got 11."),
        ({"type": "scale_0_10"}, -1, "Expected a whole number from 0 to 10, got -1."),
        ({"type": "scale_0_10"}, 4.5, "Expected a whole number from 0 to 10, got 4.5."),
        ({"type": "scale_0_10"}, "4", 'Expected a whole number from 0 to 10, got "4".'),
        ({"type": "scale_0_10"}, True, "Expected a whole number from 0 to 10, got true."),
        ({"type": "yes_no"}, "yes", "Expected yes or no (true or false), got text."),
        ({"type": "yes_no"}, 1, "Expected yes or no (true or false), got a number."),
        ({"type": "date"}, "10.03.2026", "Expected a date as YYYY-MM-DD, e.g. 2026-03-10."),
        ({"type": "date"}, "20260310", "Expected a date as YYYY-MM-DD, e.g. 2026-03-10."),
        ({"type": "date"}, "2026-02-30", '"2026-02-30" is no date of the calendar.'),
        ({"type": "date"}, 20260310, "Expected a date as YYYY-MM-DD, e.g. 2026-03-10."),
        (
            {"type": "datetime"},
            "2026-03-10T09:30:00",
            "Expected a date and time with its UTC offset, e.g. 2026-03-10T09:30:00+01:00.",
        ),
        (
            {"type": "datetime"},
            "2026-03-10",
            "Expected a date and time with its UTC offset, e.g. 2026-03-10T09:30:00+01:00.",
        ),
        (
            {"type": "datetime"},
            "2026-03-10T25:00:00Z",
            '"2026-03-10T25:00:00Z" is no time of the calendar; e.g. 2026-03-10T09:30:00+01:00.',
        ),
        (
            {"type": "text", "max_length": 5},
            "toolong",
            "At most 5 characters, please (this has 7).",
        ),
        ({"type": "text"}, 5, "Expected text, got a number."),
        ({"type": "text"}, {"a": 1}, "Expected text, got an object."),
        ({"type": "text"}, "a\x00b", "The text contains a NUL character."),
    ],
)
def test_wrong_answers(item: dict[str, Any], value: object, message: str) -> None:
    answers, errors = _check(item, value)
    assert answers == {}
    assert errors == {"q": [message]}


@pytest.mark.parametrize("blank", [None, "", "   ", []])
def test_blank_is_no_answer(blank: object) -> None:
    assert _check({"type": "text"}, blank) == ({}, {})
    assert _check({"type": "yes_no", "required": True}, blank) == (
        {},
        {"q": ["This question needs an answer."]},
    )


def test_daily_diary_answers() -> None:
    daily = validate_definition(DAILY_SYMPTOMS)
    answers = {
        "wellbeing": 6,
        "pain": True,
        "pain_intensity": 4,
        "nausea": "mild",
        "symptoms": ["rash", "headache"],
        "hours_slept": 6.5,
        "sleep_quality": "fair",
        "anything_else": "",
    }
    clean, errors = check_answers(daily, answers)
    assert errors == {}
    expected = answers | {"symptoms": ["headache", "rash"]}  # in the options' order
    del expected["anything_else"]  # blank: no answer
    assert clean == expected
    assert "anything_else" not in clean


def test_hidden_items_are_not_answered_and_visible_required_ones_are() -> None:
    daily = validate_definition(DAILY_SYMPTOMS)
    clean, errors = check_answers(daily, {"wellbeing": 6, "pain": False, "pain_intensity": 4})
    assert errors == {
        "pain_intensity": ['"pain_intensity" is not asked when "pain" is no.'],
        "nausea": ["This question needs an answer."],
        "hours_slept": ["This question needs an answer."],
        "sleep_quality": ["This question needs an answer."],
    }
    assert clean == {"wellbeing": 6, "pain": False}
    # Asked now, and required.
    _, errors = check_answers(daily, {"pain": True})
    assert errors["pain_intensity"] == ["This question needs an answer."]
    # A form sends every field: the hidden one empty is fine.
    _, errors = check_answers(daily, {"pain": False, "pain_intensity": None})
    assert "pain_intensity" not in errors


def test_hidden_messages_name_the_reason() -> None:
    instrument = validate_definition(ALL_TYPES)
    base = {"temperature": 37.0}
    _, errors = check_answers(instrument, base | {"feeling": "good", "where": ["back"]})
    assert errors == {"where": ['"where" is not asked when "feeling" is "Good".']}
    _, errors = check_answers(instrument, base | {"where": ["back"]})
    assert errors == {
        "feeling": ["This question needs an answer."],
        "where": ['"where" is not asked when "feeling" is unanswered.'],
    }
    _, errors = check_answers(
        instrument, base | {"feeling": "bad", "where": ["head"], "back_pain": 3}
    )
    assert errors == {"back_pain": ['"back_pain" is not asked unless "where" includes "Back".']}
    _, errors = check_answers(instrument, base | {"feeling": "good", "took_medicine": True})
    assert errors == {
        "took_medicine": ['"took_medicine" is not asked because "back_pain" is not asked.']
    }


def test_an_item_whose_controller_is_wrong_is_only_type_checked() -> None:
    instrument = validate_definition(ALL_TYPES)
    # "where" is wrong: whether "back_pain" is asked cannot be told, so it is neither
    # required nor refused as hidden, but its own answer is still checked.
    _, errors = check_answers(
        instrument, {"feeling": "bad", "where": ["neck"], "temperature": 37.0}
    )
    assert errors == {"where": ['"neck" is not an option; choose from: head, back, legs.']}
    _, errors = check_answers(
        instrument, {"feeling": "bad", "where": "back", "back_pain": 11, "temperature": 37.0}
    )
    assert errors == {
        "where": ["Expected a list of option codes, got text."],
        "back_pain": ["Expected a whole number from 0 to 10, got 11."],
    }


@pytest.mark.parametrize("answers", [None, [], "pain=yes", 3])
def test_answers_that_are_no_object(answers: object) -> None:
    assert check_answers(validate_definition(DAILY_SYMPTOMS), answers) == (
        {},
        {FORM_ERRORS: ["Send the answers as an object of question id to answer."]},
    )


def test_unknown_questions_are_refused() -> None:
    daily = validate_definition(DAILY_SYMPTOMS)
    _, errors = check_answers(daily, {"mood": 3, 7: "x"})
    assert errors["mood"] == ['Unknown question "mood".']
    assert errors["7"] == ["Unknown question 7."]


# --- score ------------------------------------------------------------------------------------


def test_mood_score_and_bands() -> None:
    mood = validate_definition(MOOD_9)
    answers = {f"mood_{n}": "some_days" for n in range(1, 10)}
    assert score(mood, answers) == 9
    assert score_band(mood, 9) == "mild"
    answers |= {"mood_1": "almost_daily", "mood_2": "most_days"}
    assert score(mood, answers) == 12
    assert score_band(mood, 12) == "moderate"
    assert score(mood, dict.fromkeys(answers, "never")) == 0
    assert score_band(mood, 0) == "minimal"
    assert score(mood, dict.fromkeys(answers, "almost_daily")) == 27
    assert score_band(mood, 27) == "severe"
    assert [score_band(mood, s) for s in (4, 5, 14, 15, 19, 20)] == [
        "minimal", "mild", "moderate", "moderately severe", "moderately severe", "severe",
    ]  # fmt: skip
    assert score_band(mood, 28) is None
    assert score_band(mood, None) is None


def test_score_is_none_when_a_shown_item_is_unanswered() -> None:
    mood = validate_definition(MOOD_9)
    answers = {f"mood_{n}": "some_days" for n in range(1, 9)}
    assert score(mood, answers) is None
    assert score(mood, answers | {"mood_9": None}) is None


def test_skipped_items_count_zero() -> None:
    instrument = validate_definition(ALL_TYPES)
    assert score(instrument, {"feeling": "good", "temperature": 37.5}) == 37.5
    bad = {"feeling": "bad", "temperature": 37.5}
    assert score(instrument, bad) is None  # "where" is shown and unanswered
    assert score(instrument, bad | {"where": ["head", "legs"]}) == 2 + 2 + 37.5
    assert score(instrument, bad | {"where": ["head", "back"]}) is None  # back_pain now shown
    total = score(instrument, bad | {"where": ["head", "back"], "back_pain": 4})
    assert total == 2 + 2 + 4 + 37.5
    assert score_band(instrument, total) == "high"
    assert score_band(instrument, 40.2) is None  # between the bands
    assert score(instrument, {"feeling": "good"}) is None  # temperature is always shown


def test_score_of_an_instrument_without_one() -> None:
    daily = validate_definition(DAILY_SYMPTOMS)
    assert score(daily, {"wellbeing": 5}) is None
    assert score_band(daily, 3) is None


def test_score_refuses_answers_that_were_never_checked() -> None:
    mood = validate_definition(MOOD_9)
    with pytest.raises(ValueError, match="cannot be scored"):
        score(mood, {f"mood_{n}": "often" for n in range(1, 10)})
