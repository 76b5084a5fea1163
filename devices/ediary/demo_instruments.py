"""Two instrument definitions for the demo and the tests, as data in the format
`instruments.validate_definition` reads (tests validate them).

`MOOD_9` follows the structure of the PHQ-9 (nine symptoms over the last two weeks, four
frequencies scored 0-3, a sum of 0-27 with the usual severity bands) in wording of its own:
the PHQ-9's wording is licensed. It is a demo, not a validated instrument, and carries no
translations: a translated questionnaire of this kind needs a linguistic validation of its
own. What its ninth item calls for clinically (an alert to the site) is not defined here.
"""

# Japanese is written with full-width question marks, brackets and colons, which RUF001
# takes for look-alikes of ASCII ones.
# ruff: noqa: RUF001

from __future__ import annotations

from typing import Any, Final


def _option(code: str, label: str, value: int, de: str, ja: str) -> dict[str, Any]:
    return {"code": code, "label": label, "value": value, "translations": {"de": de, "ja": ja}}


DAILY_SYMPTOMS: Final[dict[str, Any]] = {
    "code": "daily-symptoms",
    "version": 1,
    "title": "Daily symptom diary",
    "title_translations": {"de": "Tägliches Symptomtagebuch", "ja": "毎日の症状日誌"},
    "items": [
        {
            "link_id": "wellbeing",
            "type": "scale_0_10",
            "text": "Overall, how well do you feel today? (0 = very poorly, 10 = very well)",
            "translations": {
                "de": "Wie gut fühlen Sie sich heute insgesamt? (0 = sehr schlecht, 10 = sehr gut)",
                "ja": "今日の全体的な体調はいかがですか？（0 = とても悪い、10 = とても良い）",
            },
            "required": True,
        },
        {
            "link_id": "pain",
            "type": "yes_no",
            "text": "Have you had any pain today?",
            "translations": {
                "de": "Hatten Sie heute Schmerzen?",
                "ja": "今日、痛みはありましたか？",
            },
            "required": True,
        },
        {
            "link_id": "pain_intensity",
            "type": "scale_0_10",
            "text": (
                "How strong was your pain at its worst today? "
                "(0 = no pain, 10 = worst pain you can imagine)"
            ),
            "translations": {
                "de": (
                    "Wie stark waren Ihre Schmerzen heute im schlimmsten Moment? "
                    "(0 = keine Schmerzen, 10 = stärkste vorstellbare Schmerzen)"
                ),
                "ja": (
                    "今日の痛みは、最も強いときでどの程度でしたか？"
                    "（0 = 痛みなし、10 = 想像できる最悪の痛み）"
                ),
            },
            "required": True,
            "enable_when": {"question": "pain", "answer": True},
        },
        {
            "link_id": "nausea",
            "type": "single_choice",
            "text": "How bad was any nausea today?",
            "translations": {
                "de": "Wie stark war Ihre Übelkeit heute?",
                "ja": "今日の吐き気はどの程度でしたか？",
            },
            "required": True,
            "options": [
                _option("none", "None", 0, "Keine", "なし"),
                _option("mild", "Mild", 1, "Leicht", "軽い"),
                _option("moderate", "Moderate", 2, "Mäßig", "中程度"),
                _option("severe", "Severe", 3, "Stark", "強い"),
            ],
        },
        {
            "link_id": "symptoms",
            "type": "multiple_choice",
            "text": "Which of these did you have today?",
            "translations": {
                "de": "Welche dieser Beschwerden hatten Sie heute?",
                "ja": "今日、次のうちどの症状がありましたか？",
            },
            # No "none of these" option: an empty answer says it, and skip logic knows no
            # option that excludes the others.
            "required": False,
            "help": "Leave this empty if you had none of them.",
            "help_translations": {
                "de": "Lassen Sie die Frage leer, wenn Sie keine davon hatten.",
                "ja": "該当するものがなければ、空欄のままにしてください。",
            },
            "options": [
                _option("headache", "Headache", 1, "Kopfschmerzen", "頭痛"),
                _option("dizziness", "Dizziness", 1, "Schwindel", "めまい"),
                _option("fatigue", "Tiredness", 1, "Müdigkeit", "疲労感"),
                _option("cough", "Cough", 1, "Husten", "咳"),
                _option("rash", "Rash", 1, "Hautausschlag", "発疹"),
                _option("diarrhoea", "Diarrhoea", 1, "Durchfall", "下痢"),
                _option("breathless", "Shortness of breath", 1, "Atemnot", "息切れ"),
            ],
        },
        {
            "link_id": "hours_slept",
            "type": "numeric",
            "text": "How many hours did you sleep last night?",
            "translations": {
                "de": "Wie viele Stunden haben Sie letzte Nacht geschlafen?",
                "ja": "昨夜は何時間眠りましたか？",
            },
            "required": True,
            "help": "For example 7.5 for seven and a half hours.",
            "help_translations": {
                "de": "Zum Beispiel 7,5 für siebeneinhalb Stunden.",
                "ja": "例：7時間半なら 7.5",
            },
            "minimum": 0,
            "maximum": 24,
            "decimals": 1,
            "unit": "h",
        },
        {
            "link_id": "sleep_quality",
            "type": "single_choice",
            "text": "How well did you sleep last night?",
            "translations": {
                "de": "Wie gut haben Sie letzte Nacht geschlafen?",
                "ja": "昨夜の睡眠の質はいかがでしたか？",
            },
            "required": True,
            "options": [
                _option("very_poor", "Very poorly", 0, "Sehr schlecht", "とても悪い"),
                _option("poor", "Poorly", 1, "Schlecht", "悪い"),
                _option("fair", "Fairly well", 2, "Mittelmäßig", "ふつう"),
                _option("good", "Well", 3, "Gut", "良い"),
                _option("very_good", "Very well", 4, "Sehr gut", "とても良い"),
            ],
        },
        {
            "link_id": "anything_else",
            "type": "text",
            "text": "Is there anything else you would like to tell us?",
            "translations": {
                "de": "Möchten Sie uns noch etwas mitteilen?",
                "ja": "ほかにお伝えしたいことはありますか？",
            },
            "required": False,
            "max_length": 1000,
        },
    ],
}

_FREQUENCIES = [
    {"code": "never", "label": "Never", "value": 0},
    {"code": "some_days", "label": "On some days", "value": 1},
    {"code": "most_days", "label": "On most days", "value": 2},
    {"code": "almost_daily", "label": "Almost every day", "value": 3},
]

_MOOD_QUESTIONS = (
    "did you find little joy or interest in things you usually like doing?",
    "did you feel low, sad or without hope?",
    "did you have trouble falling or staying asleep, or sleep far more than usual?",
    "did you feel worn out or short of energy?",
    "did you eat much less or much more than you normally do?",
    "did you think badly of yourself, or feel you had let yourself or others down?",
    "did you find it hard to keep your mind on things, such as reading or a TV programme?",
    "did you move or speak so slowly that others might notice, or feel so restless "
    "that you could not keep still?",
    "did you think you would be better off dead, or think about hurting yourself?",
)

MOOD_9: Final[dict[str, Any]] = {
    "code": "mood-9",
    "version": 1,
    "title": "Mood check (9 questions)",
    "items": [
        {
            "link_id": f"mood_{number}",
            "type": "single_choice",
            "text": f"In the last 14 days, how often {question}",
            "required": True,
            "options": [dict(option) for option in _FREQUENCIES],
        }
        | (
            {
                "help": (
                    "If you have such thoughts now, call your study team or your local "
                    "emergency number straight away."
                )
            }
            if number == 9
            else {}
        )
        for number, question in enumerate(_MOOD_QUESTIONS, start=1)
    ],
    "score": {
        "kind": "sum",
        "items": [f"mood_{number}" for number in range(1, 10)],
        "label": "Mood score (0-27)",
        "bands": [
            [0, 4, "minimal"],
            [5, 9, "mild"],
            [10, 14, "moderate"],
            [15, 19, "moderately severe"],
            [20, 27, "severe"],
        ],
    },
}
