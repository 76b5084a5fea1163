"""A refused form shown again on its page: the messages at their fields, what was typed, and
the rest of the refusal on top. For pages with several small forms, where a FlaskForm per
form would be heavier than the forms (see form_errors.show_domain_error for those)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dct_platform.errors import DomainError


@dataclass
class Refusal:
    """Which form was refused (`form`, e.g. "decline" or "pin-12"), what was sent, the
    messages per field and those of the form as a whole."""

    form: str = ""
    values: dict[str, str] = field(default_factory=dict)
    fields: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def errors(self, form: str, name: str) -> list[str]:
        return self.fields.get(name, []) if form == self.form else []

    def value(self, form: str, name: str, default: str = "") -> str:
        return self.values.get(name, default) if form == self.form else default

    def has(self, form: str) -> bool:
        return form == self.form

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)


def refused(
    form: str,
    exc: DomainError,
    values: Mapping[str, str],
    known: Mapping[str, str] | Iterable[str],
) -> Refusal:
    """The service's refusal where the page shows it. `known` names the fields the form has
    a control for (or maps the service's field names to the form's controls): a field's
    messages go there; the rest, and any refusal not about a field (a conflict, say), on top."""
    controls = dict(known) if isinstance(known, Mapping) else {name: name for name in known}
    fields: dict[str, list[str]] = {}
    general: list[str] = []
    for name, messages in (exc.details.get("fields") or {}).items():
        target = fields.setdefault(controls[name], []) if name in controls else general
        target.extend(str(m) for m in messages)
    if not fields or exc.status != 422:
        general = [str(exc.message), *[g for g in general if g != str(exc.message)]]
    return Refusal(form, dict(values), fields, general)
