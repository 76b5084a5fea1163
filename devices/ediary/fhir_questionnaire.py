"""eDiary instruments as FHIR R4 Questionnaires, and answer sets as QuestionnaireResponses,
built and read through fhir.resources' R4B models (R4-compatible for both resources).

The mapping, both ways:

- single_choice -> choice; multiple_choice -> choice with repeats; options are answerOption
  valueCodings (system `urn:dct-platform:questionnaire:<code>:<link_id>`), an option's score
  value the `ordinalValue` extension (`itemWeight` is read too);
- numeric -> integer (no decimals) or decimal with `maxDecimalPlaces`, with the `minValue`,
  `maxValue` and `questionnaire-unit` (UCUM) extensions;
- scale_0_10 -> integer 0-10 shown as a slider (itemControl `slider`, step 1);
- yes_no -> boolean; date -> date; datetime -> dateTime; text -> text with maxLength
  (string is read as text as well);
- enable_when -> one enableWhen, operator "=" (which FHIR holds true for a repeating item
  when any of its answers matches: "includes");
- translations -> the `translation` extension on `_text`, `_title` and a Coding's `_display`;
- help -> a nested display item `<link_id>-help` with itemControl `help`;
- the score -> the platform extension `SCORE_EXTENSION`, so that it survives the trip.

A Questionnaire is read back with `from_questionnaire`, which takes its code from the
platform identifier (or url) and reports anything it cannot carry as a DefinitionError.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from pydantic import BaseModel, ValidationError

from devices.ediary.instruments import (
    DEFAULT_TEXT_LENGTH,
    DefinitionError,
    Instrument,
    Item,
    Option,
    check_answers,
    validate_definition,
    visible_items,
)

# The platform has no web address of its own, so its names are URNs, as in devices.exports.
PLATFORM_QUESTIONNAIRES = "urn:dct-platform:questionnaire"
SCORE_EXTENSION = "urn:dct-platform:fhir-extension:questionnaire-score"
UCUM = "http://unitsofmeasure.org"
ITEM_CONTROL_SYSTEM = "http://hl7.org/fhir/questionnaire-item-control"

_SD = "http://hl7.org/fhir/StructureDefinition/"
TRANSLATION = _SD + "translation"
MIN_VALUE = _SD + "minValue"
MAX_VALUE = _SD + "maxValue"
MAX_DECIMAL_PLACES = _SD + "maxDecimalPlaces"
UNIT = _SD + "questionnaire-unit"
ITEM_CONTROL = _SD + "questionnaire-itemControl"
SLIDER_STEP = _SD + "questionnaire-sliderStepValue"
ORDINAL_VALUE = _SD + "ordinalValue"
ITEM_WEIGHT = _SD + "itemWeight"

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_HELP_SUFFIX = "-help"


def questionnaire_url(code: str) -> str:
    return f"{PLATFORM_QUESTIONNAIRES}:{code}"


def option_system(instrument: Instrument, item: Item) -> str:
    """The code system of an item's options: an option's code means something only within
    its question."""
    return f"{questionnaire_url(instrument.code)}:{item.link_id}"


# --- Instrument -> Questionnaire ----------------------------------------------------------------


def to_questionnaire(instrument: Instrument) -> dict[str, Any]:
    """The instrument as Questionnaire JSON, validated by fhir.resources."""
    resource: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "url": questionnaire_url(instrument.code),
        "identifier": [{"system": PLATFORM_QUESTIONNAIRES, "value": instrument.code}],
        "version": str(instrument.version),
        "title": instrument.title,
        "status": "active",
        "item": [_questionnaire_item(instrument, item) for item in instrument.items],
    }
    if instrument.title_translations:
        resource["_title"] = _translated(instrument.title_translations)
    if instrument.score is not None:
        score = instrument.score
        parts: list[dict[str, Any]] = [
            {"url": "kind", "valueCode": score.kind},
            {"url": "label", "valueString": score.label},
            *({"url": "item", "valueString": link_id} for link_id in score.items),
            *(
                {
                    "url": "band",
                    "extension": [
                        {"url": "low", **_number("value", low)},
                        {"url": "high", **_number("value", high)},
                        {"url": "label", "valueString": label},
                    ],
                }
                for low, high, label in score.bands
            ),
        ]
        resource["extension"] = [{"url": SCORE_EXTENSION, "extension": parts}]
    return _checked(Questionnaire, resource)


def _questionnaire_item(instrument: Instrument, item: Item) -> dict[str, Any]:
    out: dict[str, Any] = {"linkId": item.link_id, "text": item.text}
    if item.translations:
        out["_text"] = _translated(item.translations)
    extensions: list[dict[str, Any]] = []
    if item.type in ("single_choice", "multiple_choice"):
        out["type"] = "choice"
        if item.type == "multiple_choice":
            out["repeats"] = True
        out["answerOption"] = [_answer_option(instrument, item, o) for o in item.options]
    elif item.type == "numeric":
        assert item.minimum is not None and item.maximum is not None
        integer = item.decimals == 0
        out["type"] = "integer" if integer else "decimal"
        kind = "valueInteger" if integer else "valueDecimal"
        extensions += [
            {"url": MIN_VALUE, kind: int(item.minimum) if integer else item.minimum},
            {"url": MAX_VALUE, kind: int(item.maximum) if integer else item.maximum},
        ]
        if not integer:
            extensions.append({"url": MAX_DECIMAL_PLACES, "valueInteger": item.decimals})
        if item.unit is not None:
            unit = {"system": UCUM, "code": item.unit, "display": item.unit}
            extensions.append({"url": UNIT, "valueCoding": unit})
    elif item.type == "scale_0_10":
        out["type"] = "integer"
        extensions += [
            {"url": MIN_VALUE, "valueInteger": 0},
            {"url": MAX_VALUE, "valueInteger": 10},
            _item_control("slider"),
            {"url": SLIDER_STEP, "valueInteger": 1},
        ]
    elif item.type == "text":
        out["type"] = "text"
        out["maxLength"] = item.max_length or DEFAULT_TEXT_LENGTH
    else:
        out["type"] = {"yes_no": "boolean", "date": "date", "datetime": "dateTime"}[item.type]
    if extensions:
        out["extension"] = extensions
    out["required"] = item.required
    if item.enable_when is not None:
        controller = instrument.item(item.enable_when.question)
        out["enableWhen"] = [
            {
                "question": controller.link_id,
                "operator": "=",
                **_enable_answer(instrument, controller, item.enable_when.answer),
            }
        ]
    if item.help is not None:
        help_item: dict[str, Any] = {
            "linkId": item.link_id + _HELP_SUFFIX,
            "type": "display",
            "text": item.help,
            "extension": [_item_control("help")],
        }
        if item.help_translations:
            help_item["_text"] = _translated(item.help_translations)
        out["item"] = [help_item]
    return out


def _answer_option(instrument: Instrument, item: Item, option: Option) -> dict[str, Any]:
    out: dict[str, Any] = {"valueCoding": _coding(instrument, item, option)}
    if option.value is not None:
        out["extension"] = [{"url": ORDINAL_VALUE, "valueDecimal": option.value}]
    return out


def _coding(
    instrument: Instrument, item: Item, option: Option, *, translated: bool = True
) -> dict[str, Any]:
    coding: dict[str, Any] = {
        "system": option_system(instrument, item),
        "code": option.code,
        "display": option.label,
    }
    if translated and option.translations:
        coding["_display"] = _translated(option.translations)
    return coding


def _enable_answer(instrument: Instrument, controller: Item, answer: object) -> dict[str, Any]:
    if isinstance(answer, bool):
        return {"answerBoolean": answer}
    if isinstance(answer, int):
        return {"answerInteger": answer}
    return {"answerCoding": {"system": option_system(instrument, controller), "code": answer}}


def _item_control(code: str) -> dict[str, Any]:
    coding = {"system": ITEM_CONTROL_SYSTEM, "code": code}
    return {"url": ITEM_CONTROL, "valueCodeableConcept": {"coding": [coding]}}


def _translated(translations: Mapping[str, str]) -> dict[str, Any]:
    return {
        "extension": [
            {
                "url": TRANSLATION,
                "extension": [
                    {"url": "lang", "valueCode": language},
                    {"url": "content", "valueString": text},
                ],
            }
            for language, text in translations.items()
        ]
    }


def _number(prefix: str, value: float) -> dict[str, Any]:
    if isinstance(value, int):
        return {prefix + "Integer": value}
    return {prefix + "Decimal": value}


def _checked(model: type[BaseModel], resource: dict[str, Any]) -> dict[str, Any]:
    # Validated, then written as FHIR JSON: dates as text, decimals as written.
    result: dict[str, Any] = json.loads(model.model_validate(resource).model_dump_json())
    return result


# --- Questionnaire -> Instrument ---------------------------------------------------------------


class _Problems(list[str]):
    def add(self, path: str, message: str) -> None:
        self.append(f"{path}: {message}")


def from_questionnaire(data: object) -> Instrument:
    """The instrument a Questionnaire (JSON) defines. DefinitionError, with FHIR paths
    ("item[2].type: ..."), for anything that is no valid Questionnaire or that the platform's
    instruments cannot express; then with definition paths for what `validate_definition`
    refuses."""
    resource = _valid_questionnaire(data)
    problems = _Problems()
    definition = _definition(resource, problems)
    if problems:
        raise DefinitionError(list(problems))
    return validate_definition(definition)


def _valid_questionnaire(data: object) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise DefinitionError(["resource: expected a FHIR resource as a JSON object"])
    kind = data.get("resourceType")
    if kind != "Questionnaire":
        raise DefinitionError([f"resourceType: expected Questionnaire, got {kind!r}"])
    try:
        return _checked(Questionnaire, dict(data))
    except ValidationError as error:
        raise DefinitionError([_fhir_problem(e) for e in error.errors()]) from None
    except (ValueError, TypeError) as error:  # a model's own check, outside pydantic's
        raise DefinitionError([f"resource: {error}"]) from None


def _fhir_problem(error: Mapping[str, Any]) -> str:
    path = ""
    for part in error.get("loc", ()):
        path = f"{path}[{part}]" if isinstance(part, int) else (f"{path}.{part}" if path else part)
    message = " ".join(str(error.get("msg", "invalid")).split())
    return f"{path or 'resource'}: {message}"


def _definition(resource: Mapping[str, Any], problems: _Problems) -> dict[str, Any]:
    out: dict[str, Any] = {
        "code": _platform_code(resource, problems),
        "version": _version(resource.get("version"), problems),
        "title": resource.get("title"),
    }
    if "_title" in resource:
        out["title_translations"] = _translations(resource["_title"], "_title", problems)
    items = resource.get("item") or []
    out["items"] = [
        _definition_item(item, f"item[{index}]", problems) for index, item in enumerate(items)
    ]
    for index, extension in enumerate(resource.get("extension") or []):
        if extension.get("url") == SCORE_EXTENSION:
            out["score"] = _definition_score(extension, f"extension[{index}]", problems)
    return out


def _platform_code(resource: Mapping[str, Any], problems: _Problems) -> str | None:
    for identifier in resource.get("identifier") or []:
        if identifier.get("system") == PLATFORM_QUESTIONNAIRES and identifier.get("value"):
            return str(identifier["value"])
    url = resource.get("url")
    prefix = PLATFORM_QUESTIONNAIRES + ":"
    if isinstance(url, str) and url.startswith(prefix):
        return url.removeprefix(prefix)
    problems.add(
        "url",
        f"expected {prefix}<code>, or an identifier of system {PLATFORM_QUESTIONNAIRES}",
    )
    return None


def _version(raw: object, problems: _Problems) -> int | None:
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        return int(raw)
    problems.add("version", f'expected a whole number, e.g. "1", got {raw!r}')
    return None


_FHIR_TYPES = {"boolean": "yes_no", "date": "date", "dateTime": "datetime"}


def _definition_item(raw: Mapping[str, Any], path: str, problems: _Problems) -> dict[str, Any]:
    link_id = raw.get("linkId")
    out: dict[str, Any] = {"link_id": link_id, "text": raw.get("text")}
    if "_text" in raw:
        out["translations"] = _translations(raw["_text"], f"{path}._text", problems)
    out["required"] = bool(raw.get("required", False))
    extensions = {e.get("url"): e for e in raw.get("extension") or []}
    fhir_type = raw.get("type")
    if fhir_type == "choice":
        out["type"] = "multiple_choice" if raw.get("repeats") else "single_choice"
        out["options"] = _options(raw, path, problems)
    elif fhir_type in ("integer", "decimal"):
        low = extensions.get(MIN_VALUE, {})
        high = extensions.get(MAX_VALUE, {})
        minimum = low.get("valueInteger", low.get("valueDecimal"))
        maximum = high.get("valueInteger", high.get("valueDecimal"))
        slider = fhir_type == "integer" and _control(extensions) == "slider"
        # A slider over any other range is a numeric item: its range is what it measures.
        if slider and (minimum, maximum) == (0, 10):
            out["type"] = "scale_0_10"
        else:
            out |= {"type": "numeric", "minimum": minimum, "maximum": maximum, "decimals": 0}
            if fhir_type == "decimal":
                places = extensions.get(MAX_DECIMAL_PLACES, {}).get("valueInteger")
                if places is None:
                    problems.add(f"{path}.extension", f"a decimal item needs {MAX_DECIMAL_PLACES}")
                out["decimals"] = places
            if UNIT in extensions:
                out["unit"] = (extensions[UNIT].get("valueCoding") or {}).get("code")
    elif fhir_type in ("text", "string"):
        out["type"] = "text"
        out["max_length"] = raw.get("maxLength", DEFAULT_TEXT_LENGTH)
    elif fhir_type in _FHIR_TYPES:
        out["type"] = _FHIR_TYPES[fhir_type]
    else:
        problems.add(
            f"{path}.type",
            f"{fhir_type!r} items are not supported; use choice, integer, decimal, boolean, "
            "date, dateTime, text or string",
        )
    if raw.get("enableWhen"):
        out["enable_when"] = _enable_when(raw, path, problems)
    _read_help(raw, out, path, problems)
    return out


def _control(extensions: Mapping[str, Any]) -> str | None:
    concept = extensions.get(ITEM_CONTROL, {}).get("valueCodeableConcept") or {}
    codes = [c.get("code") for c in concept.get("coding") or []]
    return codes[0] if codes else None


def _options(raw: Mapping[str, Any], path: str, problems: _Problems) -> list[dict[str, Any]]:
    if raw.get("answerValueSet"):
        problems.add(f"{path}.answerValueSet", "list the answers as answerOption instead")
    options: list[dict[str, Any]] = []
    for index, answer in enumerate(raw.get("answerOption") or []):
        at = f"{path}.answerOption[{index}]"
        coding = answer.get("valueCoding")
        if coding is None:
            problems.add(at, "only valueCoding answer options are supported")
            continue
        option: dict[str, Any] = {"code": coding.get("code"), "label": coding.get("display")}
        weights = [
            e for e in answer.get("extension") or [] if e.get("url") in (ORDINAL_VALUE, ITEM_WEIGHT)
        ]
        if weights:
            value = weights[0].get("valueDecimal", weights[0].get("valueInteger"))
            if not isinstance(value, int | float) or value != int(value):
                problems.add(f"{at}.extension", f"an option's value must be whole, not {value!r}")
            else:
                option["value"] = int(value)
        if "_display" in coding:
            option["translations"] = _translations(
                coding["_display"], f"{at}.valueCoding._display", problems
            )
        options.append(option)
    return options


def _enable_when(raw: Mapping[str, Any], path: str, problems: _Problems) -> dict[str, Any] | None:
    conditions = raw["enableWhen"]
    if len(conditions) > 1:
        problems.add(f"{path}.enableWhen", "at most one condition per item is supported")
        return None
    condition = conditions[0]
    at = f"{path}.enableWhen[0]"
    if condition.get("operator") != "=":
        problems.add(f"{at}.operator", f'only "=" is supported, not {condition.get("operator")!r}')
        return None
    if "answerBoolean" in condition:
        answer = condition["answerBoolean"]
    elif "answerInteger" in condition:
        answer = condition["answerInteger"]
    elif "answerCoding" in condition:
        answer = condition["answerCoding"].get("code")
    else:
        problems.add(at, "expected answerBoolean, answerInteger or answerCoding")
        return None
    return {"question": condition.get("question"), "answer": answer}


def _read_help(raw: Mapping[str, Any], out: dict[str, Any], path: str, problems: _Problems) -> None:
    for index, child in enumerate(raw.get("item") or []):
        at = f"{path}.item[{index}]"
        extensions = {e.get("url"): e for e in child.get("extension") or []}
        if child.get("type") != "display" or _control(extensions) != "help" or "help" in out:
            problems.add(at, "nested items are not supported, except one display item of help")
            continue
        out["help"] = child.get("text")
        if "_text" in child:
            out["help_translations"] = _translations(child["_text"], f"{at}._text", problems)


def _translations(raw: Mapping[str, Any], path: str, problems: _Problems) -> dict[str, str]:
    found: dict[str, str] = {}
    for index, extension in enumerate(raw.get("extension") or []):
        if extension.get("url") != TRANSLATION:
            continue
        parts = {p.get("url"): p for p in extension.get("extension") or []}
        language = parts.get("lang", {}).get("valueCode")
        text = parts.get("content", {}).get("valueString")
        if not isinstance(language, str) or not isinstance(text, str):
            problems.add(f"{path}.extension[{index}]", "a translation needs lang and content")
        else:
            found[language] = text
    return found


def _definition_score(raw: Mapping[str, Any], path: str, problems: _Problems) -> dict[str, Any]:
    score: dict[str, Any] = {"items": [], "bands": []}
    for part in raw.get("extension") or []:
        url = part.get("url")
        if url == "kind":
            score["kind"] = part.get("valueCode")
        elif url == "label":
            score["label"] = part.get("valueString")
        elif url == "item":
            score["items"].append(part.get("valueString"))
        elif url == "band":
            fields = {p.get("url"): p for p in part.get("extension") or []}
            score["bands"].append(
                [
                    _number_of(fields.get("low", {})),
                    _number_of(fields.get("high", {})),
                    fields.get("label", {}).get("valueString"),
                ]
            )
        else:
            problems.add(f"{path}.extension", f"unknown part {url!r} of the score")
    return score


def _number_of(part: Mapping[str, Any]) -> object:
    return part.get("valueInteger", part.get("valueDecimal"))


# --- answers -> QuestionnaireResponse ----------------------------------------------------------


class AnswersRefused(ValueError):
    """Answers that `check_answers` refuses; `errors` are its messages by link id."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def to_questionnaire_response(
    instrument: Instrument,
    answers: Mapping[str, object],
    *,
    subject_reference: str,
    authored: datetime,
    response_id: str,
) -> dict[str, Any]:
    """A completed QuestionnaireResponse (JSON, validated by fhir.resources) to the
    instrument's Questionnaire at its version: one item per answered question shown, in the
    instrument's order, each answer typed as its question is. The answers are checked
    again: AnswersRefused when they do not pass, ValueError for an `authored` without its UTC
    offset or an id that FHIR does not allow."""
    clean, errors = check_answers(instrument, answers)
    if errors:
        raise AnswersRefused(errors)
    if authored.utcoffset() is None:
        raise ValueError("authored needs its UTC offset")
    if not _FHIR_ID.fullmatch(response_id):
        raise ValueError(f"{response_id!r} is no FHIR id: 1-64 of A-Z a-z 0-9 - .")
    resource = {
        "resourceType": "QuestionnaireResponse",
        "id": response_id,
        "questionnaire": f"{questionnaire_url(instrument.code)}|{instrument.version}",
        "status": "completed",
        "subject": {"reference": subject_reference},
        "authored": authored,
        "item": [
            {
                "linkId": item.link_id,
                "text": item.text,
                "answer": _answers(instrument, item, clean[item.link_id]),
            }
            for item in visible_items(instrument, clean)
            if item.link_id in clean
        ],
    }
    return _checked(QuestionnaireResponse, resource)


def _answers(instrument: Instrument, item: Item, value: object) -> list[dict[str, Any]]:
    if item.type in ("single_choice", "multiple_choice"):
        codes = value if isinstance(value, list) else [value]
        chosen = [o for o in item.options if o.code in codes]
        # The answer as chosen; the translations of its label belong to the Questionnaire.
        return [{"valueCoding": _coding(instrument, item, o, translated=False)} for o in chosen]
    key = {
        "numeric": "valueInteger" if item.decimals == 0 else "valueDecimal",
        "scale_0_10": "valueInteger",
        "yes_no": "valueBoolean",
        "date": "valueDate",
        "datetime": "valueDateTime",
        "text": "valueString",
    }[item.type]
    return [{key: value}]
