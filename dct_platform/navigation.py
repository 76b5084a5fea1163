"""Role-aware navigation and home pages, filled by the core and the feature packages."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, url_for
from flask_login import current_user


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    order: int


def add_nav_item(
    app: Flask, roles: tuple[str, ...] | list[str], label: str, endpoint: str, order: int = 50
) -> None:
    nav: dict[str, list[NavItem]] = app.extensions.setdefault("dct_nav", {})
    for role in roles:
        nav.setdefault(str(role), []).append(NavItem(label, endpoint, order))
        nav[str(role)].sort(key=lambda item: item.order)


def set_home(app: Flask, role: str, endpoint: str) -> None:
    """The page a role lands on after signing in; a feature package may take over a role's home."""
    app.extensions.setdefault("dct_home", {})[str(role)] = endpoint


def home_endpoint(app: Flask, role: str) -> str:
    homes: dict[str, str] = app.extensions.get("dct_home", {})
    return homes.get(role, "web.generic_home")


def nav_for(app: Flask, role: str) -> list[NavItem]:
    return list(app.extensions.get("dct_nav", {}).get(role, []))


def init_app(app: Flask) -> None:
    @app.context_processor
    def _navigation() -> dict[str, object]:
        if not current_user.is_authenticated:
            return {"nav_items": []}
        items = [(item.label, url_for(item.endpoint)) for item in nav_for(app, current_user.role)]
        return {"nav_items": items}
