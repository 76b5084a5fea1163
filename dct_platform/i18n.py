"""Languages of the person-facing pages.

Patients see the portal in their preferred language; the sign-in page follows the
browser's language. Staff pages are written in English only and stay English, so that no
page mixes two languages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

from flask import Flask, g, has_request_context, request
from flask_babel import Babel, get_locale, get_translations
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from flask_login import current_user
from sqlalchemy import select
from werkzeug.exceptions import default_exceptions

from dct_platform.extensions import db
from dct_platform.models import Patient
from dct_platform.roles import Role, role_label

# Languages with a complete catalogue in dct_platform/translations.
SUPPORTED_LANGUAGES = {"en": "English", "de": "Deutsch", "ja": "日本語"}
DEFAULT_LANGUAGE = "en"


def patient_language(user_id: int) -> str | None:
    return db.session.scalar(select(Patient.preferred_language).where(Patient.user_id == user_id))


def select_locale() -> str:
    if not has_request_context():  # CLI commands and jobs: messages in the default language
        return DEFAULT_LANGUAGE
    if "dct_locale" in g:
        return cast(str, g.dct_locale)
    locale = DEFAULT_LANGUAGE
    if current_user and current_user.is_authenticated:
        if current_user.role == Role.PATIENT:
            preferred = (patient_language(current_user.id) or "").split("-")[0]
            locale = preferred if preferred in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE
    else:
        locale = request.accept_languages.best_match(SUPPORTED_LANGUAGES) or DEFAULT_LANGUAGE
    g.dct_locale = locale
    return locale


def current_language() -> str:
    return str(get_locale() or DEFAULT_LANGUAGE)


def in_current_language(message: object) -> bool:
    """Whether `message` reads in the language of the request.

    English is the language of the code, so every message is. Otherwise a lazily
    translated message is when the catalogue has its text, and an already translated one
    when it is one of the catalogue's translations. A plain English message (a library's,
    or one nobody marked for translation) is not, and must not reach a German or Japanese
    page.
    """
    if current_language() == DEFAULT_LANGUAGE:
        return True
    catalogue = getattr(get_translations(), "_catalog", {})
    if isinstance(message, LazyString):
        # flask_babel keeps the message id as the first argument of its gettext call.
        return bool(message._args) and message._args[0] in catalogue
    return isinstance(message, str) and message in catalogue.values()


# Heading and explanation of each error page, for the statuses people can meet.
_ERROR_TEXTS = {
    400: (
        _l("There is a problem"),
        _l("The page may have expired. Please go back, reload the page and try again."),
    ),
    401: (_l("Please sign in"), _l("Please sign in to continue.")),
    403: (_l("Not allowed"), _l("You do not have access to this page.")),
    404: (
        _l("Not found"),
        _l("This page does not exist or is not available to you. Please check the address."),
    ),
    405: (
        _l("Not possible here"),
        _l("This page cannot be used in this way. Please go back and try again."),
    ),
    409: (
        _l("Changed in the meantime"),
        _l("This was changed in the meantime. Please reload the page and try again."),
    ),
    413: (_l("Too large"), _l("What you sent is too large to be accepted.")),
    422: (
        _l("Please check your entries"),
        _l("Some of your entries could not be accepted. Please go back and correct them."),
    ),
    429: (
        _l("Too many attempts"),
        _l("There were too many attempts. Please wait a few minutes and try again."),
    ),
    500: (
        _l("Something went wrong"),
        _l(
            "Something went wrong on our side. Please try again later. "
            "If it happens again, please call your study site."
        ),
    ),
    503: (
        _l("Temporarily unavailable"),
        _l("The service is temporarily unavailable. Please try again in a few minutes."),
    ),
}
_INCIDENT = re.compile(r"\(incident ([0-9a-f]+)\)")


@dataclass(frozen=True)
class ErrorPage:
    heading: str
    text: str
    # The incident number of an unexpected error, for the call to the study site, when the
    # text does not already carry it.
    incident: str | None = None


def _framework_default(status: int, text: str) -> bool:
    exc = default_exceptions.get(status)
    return exc is not None and text in (exc.description, exc.name)


def error_page(status: int, message: object) -> ErrorPage:
    """What the error page says: the specific message when it is in the reader's language
    (and more than the framework's stock sentence), else the status's own explanation."""
    heading, explanation = _ERROR_TEXTS.get(status) or _ERROR_TEXTS[500 if status >= 500 else 400]
    text = str(message or "")
    if text and not _framework_default(status, text) and in_current_language(message):
        return ErrorPage(str(heading), text)
    incident = _INCIDENT.search(text)
    return ErrorPage(str(heading), str(explanation), incident.group(1) if incident else None)


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["role_name"] = role_label
    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.globals["error_page"] = error_page
