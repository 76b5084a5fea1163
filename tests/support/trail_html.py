"""Read the audit trail off a page the way its reader does: action by action."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class ShownRecord:
    description: str = ""
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class ShownAction:
    summary: str = ""
    meta: str = ""
    reason: str = ""
    records: list[ShownRecord] = field(default_factory=list)

    @property
    def text(self) -> str:
        parts = [self.summary, self.meta, self.reason]
        for r in self.records:
            parts += [r.description, *(f"{k}: {v}" for k, v in r.fields.items())]
        return "\n".join(parts)


class _TrailParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.actions: list[ShownAction] = []
        self.target: str | None = None
        self.text = ""
        self.label = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        cls = dict(attrs).get("class") or ""
        if tag == "li" and "trail-action" in cls:
            self.actions.append(ShownAction())
        elif not self.actions:
            return
        elif tag == "p" and cls in ("trail-head", "trail-meta", "trail-reason"):
            self._start(cls)
        elif tag == "div" and "trail-record" in cls:
            self.actions[-1].records.append(ShownRecord())
            self._start("record")
        elif tag in ("dt", "dd"):
            self._start(tag)

    def _start(self, target: str) -> None:
        self.target, self.text = target, ""

    def handle_data(self, data: str) -> None:
        if self.target:
            self.text += data

    def handle_endtag(self, tag: str) -> None:
        if not self.target or tag not in ("p", "dt", "dd"):
            return
        text = " ".join(self.text.split())
        action = self.actions[-1]
        if self.target == "trail-head":
            action.summary = text
        elif self.target == "trail-meta":
            action.meta = text
        elif self.target == "trail-reason":
            action.reason = text.removeprefix("Reason: ")
        elif self.target == "record":
            action.records[-1].description = text
        elif self.target == "dt":
            self.label = text
        elif self.target == "dd":
            action.records[-1].fields[self.label] = text
        self.target = None


def shown_actions(html: str) -> list[ShownAction]:
    parser = _TrailParser()
    parser.feed(html)
    return parser.actions
