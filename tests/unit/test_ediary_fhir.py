"""eDiary instruments as FHIR R4 Questionnaires and answers as QuestionnaireResponses
(devices/ediary/fhir_questionnaire.py): the mapping, the round trip, and what a broken
Questionnaire reports."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from devices.ediary.demo_instruments import DAILY_SYMPTOMS, MOOD_9
from devices.ediary.fhir_questionnaire import (
    ITEM_CONTROL,
    MAX_DECIMAL_PLACES,
    MAX_VALUE,
    MIN_VALUE,
    ORDINAL_VALUE,
    SCORE_EXTENSION,
    TRANSLATION,
    UNIT,
    AnswersRefused,
    from_questionnaire,
    to_questionnaire,
    to_questionnaire_response,
)
from devices.ediary.instruments import DefinitionError, Instrument, validate_definition
from tests.unit.test_ediary_instruments import ALL_TYPES

AUTHORED = datetime(2026, 3, 10, 21, 15, tzinfo=timezone(timedelta(hours=1)))


def _items(questionnaire: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["linkId"]: i for i in questionnaire["item"]}


def _extensions(element: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["url"]: e for e in element.get("extension", [])}


def _translations(element: dict[str, Any]) -> dict[str, str]:
    out = {}
    for extension in element["extension"]:
        assert extension["url"] == TRANSLATION
        parts = {p["url"]: p for p in extension["extension"]}
        out[parts["lang"]["valueCode"]] = parts["content"]["valueString"]
    return out


# --- round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize("definition", [DAILY_SYMPTOMS, MOOD_9, ALL_TYPES])
def test_round_trip(definition: dict[str, Any]) -> None:
    instrument = validate_definition(definition)
    questionnaire = to_questionnaire(instrument)
    Questionnaire.model_validate(questionnaire)
    back = from_questionnaire(questionnaire)
    assert back == instrument
    # Everything kept, translations and score included: the definitions are equal as data.
    assert back.to_dict() == definition
    assert back.score == instrument.score


def test_questionnaire_header() -> None:
    questionnaire = to_questionnaire(validate_definition(ALL_TYPES))
    assert questionnaire["resourceType"] == "Questionnaire"
    assert questionnaire["url"] == "urn:dct-platform:questionnaire:all-types"
    assert questionnaire["identifier"] == [
        {"system": "urn:dct-platform:questionnaire", "value": "all-types"}
    ]
    assert questionnaire["version"] == "3"
    assert questionnaire["status"] == "active"
    assert questionnaire["title"] == "Every item type"
    assert _translations(questionnaire["_title"]) == {
        "de": "Alle Fragetypen",
        "ja": "すべての質問形式",
    }
    (score,) = questionnaire["extension"]
    assert score["url"] == SCORE_EXTENSION
    parts = [p["url"] for p in score["extension"]]
    assert parts == ["kind", "label", "item", "item", "item", "item", "band", "band"]
    high_band = score["extension"][-1]["extension"]
    assert high_band[0] == {"url": "low", "valueDecimal": 40.5}
    assert high_band[1] == {"url": "high", "valueInteger": 100}


def test_item_types_map_to_fhir() -> None:
    items = _items(to_questionnaire(validate_definition(ALL_TYPES)))
    assert {k: (v["type"], v.get("repeats")) for k, v in items.items()} == {
        "feeling": ("choice", None),
        "where": ("choice", True),
        "back_pain": ("integer", None),
        "took_medicine": ("boolean", None),
        "last_dose": ("dateTime", None),
        "temperature": ("decimal", None),
        "steps": ("integer", None),
        "visit_day": ("date", None),
        "notes": ("text", None),
    }
    assert items["notes"]["maxLength"] == 20
    assert items["feeling"]["required"] is True and items["notes"]["required"] is False

    temperature = _extensions(items["temperature"])
    assert temperature[MIN_VALUE] == {"url": MIN_VALUE, "valueDecimal": 34.5}
    assert temperature[MAX_VALUE] == {"url": MAX_VALUE, "valueDecimal": 42}
    assert temperature[MAX_DECIMAL_PLACES]["valueInteger"] == 1
    assert temperature[UNIT]["valueCoding"] == {
        "system": "http://unitsofmeasure.org",
        "code": "Cel",
        "display": "Cel",
    }
    steps = _extensions(items["steps"])
    assert steps[MIN_VALUE]["valueInteger"] == 0 and steps[MAX_VALUE]["valueInteger"] == 100000
    assert ITEM_CONTROL not in steps

    scale = _extensions(items["back_pain"])
    assert scale[MIN_VALUE]["valueInteger"] == 0 and scale[MAX_VALUE]["valueInteger"] == 10
    assert scale[ITEM_CONTROL]["valueCodeableConcept"]["coding"][0]["code"] == "slider"


def test_options_skip_logic_translations_and_help() -> None:
    items = _items(to_questionnaire(validate_definition(ALL_TYPES)))
    feeling = items["feeling"]
    assert _translations(feeling["_text"]) == {
        "de": "Wie fühlen Sie sich?",
        "ja": "気分はいかがですか",
    }
    bad = feeling["answerOption"][1]
    assert bad["valueCoding"]["code"] == "bad"
    assert bad["valueCoding"]["display"] == "Bad"
    assert bad["valueCoding"]["system"] == "urn:dct-platform:questionnaire:all-types:feeling"
    assert _translations(bad["valueCoding"]["_display"]) == {"de": "Schlecht"}
    assert bad["extension"] == [{"url": ORDINAL_VALUE, "valueDecimal": 2}]

    assert items["where"]["enableWhen"] == [
        {
            "question": "feeling",
            "operator": "=",
            "answerCoding": {
                "system": "urn:dct-platform:questionnaire:all-types:feeling",
                "code": "bad",
            },
        }
    ]
    assert items["back_pain"]["enableWhen"][0]["answerCoding"]["code"] == "back"
    assert items["took_medicine"]["enableWhen"] == [
        {"question": "back_pain", "operator": "=", "answerInteger": 10}
    ]
    assert items["last_dose"]["enableWhen"] == [
        {"question": "took_medicine", "operator": "=", "answerBoolean": True}
    ]

    (help_item,) = items["temperature"]["item"]
    assert help_item["type"] == "display"
    assert help_item["text"] == "Measure it under the tongue."
    assert (
        _extensions(help_item)[ITEM_CONTROL]["valueCodeableConcept"]["coding"][0]["code"] == "help"
    )
    assert _translations(help_item["_text"])["ja"] == "舌の下で測ってください。"


def test_daily_diary_ships_german_and_japanese() -> None:
    questionnaire = to_questionnaire(validate_definition(DAILY_SYMPTOMS))
    for item in questionnaire["item"]:
        assert set(_translations(item["_text"])) == {"de", "ja"}
        for option in item.get("answerOption", []):
            assert set(_translations(option["valueCoding"]["_display"])) == {"de", "ja"}


def test_to_questionnaire_leaves_the_definition_alone() -> None:
    original = copy.deepcopy(ALL_TYPES)
    to_questionnaire(validate_definition(ALL_TYPES))
    assert original == ALL_TYPES


# --- reading a foreign or broken Questionnaire ---------------------------------------------------


def _questionnaire() -> dict[str, Any]:
    return to_questionnaire(validate_definition(ALL_TYPES))


def _problems(data: object) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        from_questionnaire(data)
    return caught.value.errors


def test_not_a_questionnaire() -> None:
    assert _problems({"resourceType": "Observation", "status": "final"}) == [
        "resourceType: expected Questionnaire, got 'Observation'"
    ]
    assert _problems({"status": "active"}) == ["resourceType: expected Questionnaire, got None"]
    assert _problems(["Questionnaire"]) == ["resource: expected a FHIR resource as a JSON object"]


def test_invalid_fhir_is_reported_with_paths() -> None:
    data = _questionnaire()
    data["item"][0]["required"] = "sometimes"
    data["colour"] = "blue"
    problems = _problems(data)
    assert any(p.startswith("item[0].required: Input should be a valid boolean") for p in problems)
    assert "colour: Extra inputs are not permitted" in problems


def test_what_instruments_cannot_express_is_reported() -> None:
    data = _questionnaire()
    del data["identifier"]
    data["url"] = "https://example.org/Questionnaire/x"
    data["version"] = "2.1"
    data["item"][0]["type"] = "group"
    data["item"][1]["answerOption"][0] = {"valueString": "Head"}
    data["item"][2]["enableWhen"][0]["operator"] = "!="
    data["item"][5]["extension"] = [
        e for e in data["item"][5]["extension"] if e["url"] != MAX_DECIMAL_PLACES
    ]
    data["item"][6]["item"] = [{"linkId": "x", "type": "string", "text": "X"}]
    assert _problems(data) == [
        "url: expected urn:dct-platform:questionnaire:<code>, or an identifier of system "
        "urn:dct-platform:questionnaire",
        "version: expected a whole number, e.g. \"1\", got '2.1'",
        "item[0].type: 'group' items are not supported; use choice, integer, decimal, boolean, "
        "date, dateTime, text or string",
        "item[1].answerOption[0]: only valueCoding answer options are supported",
        "item[2].enableWhen[0].operator: only \"=\" is supported, not '!='",
        f"item[5].extension: a decimal item needs {MAX_DECIMAL_PLACES}",
        "item[6].item[0]: nested items are not supported, except one display item of help",
    ]


def test_definition_rules_apply_to_a_questionnaire() -> None:
    data = _questionnaire()
    data["item"][1]["linkId"] = "feeling"  # a second "feeling"
    data["item"][3]["enableWhen"][0]["question"] = "notes"  # a later item
    problems = _problems(data)
    assert 'items[1].link_id: "feeling" is used by an earlier item' in problems
    assert 'items[3].enable_when.question: "notes" is not an earlier item' in problems


def test_a_broken_score_extension() -> None:
    data = _questionnaire()
    data["extension"][0]["extension"].append({"url": "weight", "valueInteger": 2})
    assert _problems(data) == ["extension[0].extension: unknown part 'weight' of the score"]
    data = _questionnaire()
    data["extension"][0]["extension"][2] = {"url": "item", "valueString": "notes"}
    assert _problems(data) == [
        'score.items[0]: "notes" is a text item; only choice, numeric and scale_0_10 items '
        "can be scored"
    ]


def test_a_plain_foreign_questionnaire_is_read() -> None:
    # No slider, a string item, the code from the url, itemWeight instead of ordinalValue.
    instrument = from_questionnaire(
        {
            "resourceType": "Questionnaire",
            "url": "urn:dct-platform:questionnaire:foreign",
            "version": "2",
            "title": "Foreign",
            "status": "draft",
            "item": [
                {
                    "linkId": "level",
                    "text": "Level",
                    "type": "integer",
                    "extension": [
                        {"url": MIN_VALUE, "valueInteger": 0},
                        {"url": MAX_VALUE, "valueInteger": 10},
                    ],
                },
                {"linkId": "name", "text": "Name", "type": "string", "maxLength": 40},
                {
                    "linkId": "pick",
                    "text": "Pick",
                    "type": "choice",
                    "answerOption": [
                        {
                            "valueCoding": {"code": "a", "display": "A"},
                            "extension": [
                                {
                                    "url": "http://hl7.org/fhir/StructureDefinition/itemWeight",
                                    "valueDecimal": 1.0,
                                }
                            ],
                        },
                        {"valueCoding": {"code": "b", "display": "B"}},
                    ],
                },
            ],
        }
    )
    assert (instrument.code, instrument.version) == ("foreign", 2)
    level, name, pick = instrument.items
    assert (level.type, level.minimum, level.maximum, level.decimals) == ("numeric", 0, 10, 0)
    assert (name.type, name.max_length) == ("text", 40)
    assert [(o.code, o.value) for o in pick.options] == [("a", 1), ("b", None)]


# --- QuestionnaireResponse ----------------------------------------------------------------------


def _response(instrument: Instrument, answers: dict[str, object]) -> dict[str, Any]:
    return to_questionnaire_response(
        instrument,
        answers,
        subject_reference="Patient/42",
        authored=AUTHORED,
        response_id="resp-1",
    )


def test_questionnaire_response_carries_the_answers() -> None:
    instrument = validate_definition(ALL_TYPES)
    answers: dict[str, object] = {
        "feeling": "bad",
        "where": ["legs", "back"],
        "back_pain": 10,
        "took_medicine": True,
        "last_dose": "2026-03-10T08:00:00+01:00",
        "temperature": 37.5,
        "steps": 4200,
        "visit_day": "2026-03-12",
        "notes": "All fine",
    }
    response = _response(instrument, answers)
    QuestionnaireResponse.model_validate(response)
    assert response["resourceType"] == "QuestionnaireResponse"
    assert response["id"] == "resp-1"
    assert response["status"] == "completed"
    assert response["questionnaire"] == "urn:dct-platform:questionnaire:all-types|3"
    assert response["subject"] == {"reference": "Patient/42"}
    assert response["authored"] == "2026-03-10T21:15:00+01:00"
    system = "urn:dct-platform:questionnaire:all-types:"
    assert {i["linkId"]: i["answer"] for i in response["item"]} == {
        "feeling": [
            {"valueCoding": {"system": system + "feeling", "code": "bad", "display": "Bad"}}
        ],
        "where": [
            {"valueCoding": {"system": system + "where", "code": "back", "display": "Back"}},
            {"valueCoding": {"system": system + "where", "code": "legs", "display": "Legs"}},
        ],
        "back_pain": [{"valueInteger": 10}],
        "took_medicine": [{"valueBoolean": True}],
        "last_dose": [{"valueDateTime": "2026-03-10T08:00:00+01:00"}],
        "temperature": [{"valueDecimal": 37.5}],
        "steps": [{"valueInteger": 4200}],
        "visit_day": [{"valueDate": "2026-03-12"}],
        "notes": [{"valueString": "All fine"}],
    }
    assert [i["linkId"] for i in response["item"]] == [i.link_id for i in instrument.items]
    assert response["item"][0]["text"] == "How do you feel?"


def test_questionnaire_response_leaves_out_what_was_not_answered() -> None:
    daily = validate_definition(DAILY_SYMPTOMS)
    response = _response(
        daily,
        {
            "wellbeing": 7,
            "pain": False,
            "nausea": "none",
            "hours_slept": 8,
            "sleep_quality": "good",
            "anything_else": "",
        },
    )
    answers = {i["linkId"]: i["answer"] for i in response["item"]}
    assert list(answers) == ["wellbeing", "pain", "nausea", "hours_slept", "sleep_quality"]
    assert answers["hours_slept"] == [{"valueDecimal": 8.0}]


def test_questionnaire_response_refuses_what_check_answers_refuses() -> None:
    daily = validate_definition(DAILY_SYMPTOMS)
    with pytest.raises(AnswersRefused) as caught:
        _response(daily, {"wellbeing": 7, "pain": False, "pain_intensity": 3})
    assert caught.value.errors["pain_intensity"] == [
        '"pain_intensity" is not asked when "pain" is no.'
    ]
    mood = validate_definition(MOOD_9)
    answers = {f"mood_{n}": "never" for n in range(1, 10)}
    with pytest.raises(ValueError, match="UTC offset"):
        to_questionnaire_response(
            mood,
            answers,
            subject_reference="Patient/1",
            authored=datetime(2026, 3, 10, 9, 0),  # no offset
            response_id="r",
        )
    with pytest.raises(ValueError, match="no FHIR id"):
        to_questionnaire_response(
            mood, answers, subject_reference="Patient/1", authored=AUTHORED, response_id="r 1"
        )
    response = to_questionnaire_response(
        mood,
        answers,
        subject_reference="Patient/1",
        authored=AUTHORED.astimezone(UTC),
        response_id="r",
    )
    assert response["authored"] == "2026-03-10T20:15:00Z"
