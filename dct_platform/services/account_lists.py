"""The account list as administrators search it: one query for the page and the API."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from dct_platform import policy
from dct_platform.models import SiteMembership, User
from dct_platform.models.users import with_access
from dct_platform.roles import Role

MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class AccountCriteria:
    q: str = ""
    role: str | None = None
    site_id: int | None = None
    page: int = 1
    page_size: int = 50


@dataclass(frozen=True)
class AccountPage:
    users: list[User]
    total: int
    criteria: AccountCriteria

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.criteria.page_size))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find_accounts(session: Session, actor: User, criteria: AccountCriteria) -> AccountPage:
    conditions: list[ColumnElement[bool]] = [policy.visible(actor, User, session=session)]
    if q := criteria.q.strip().lower()[:100]:
        pattern = f"%{_escape_like(q)}%"
        # A patient's account name is personal data: found by username only, never by name.
        by_name = (func.lower(User.display_name).like(pattern, escape="\\")) & (
            User.role != Role.PATIENT
        )
        conditions.append(or_(func.lower(User.username).like(pattern, escape="\\"), by_name))
    if criteria.role:
        conditions.append(User.role == criteria.role)
    if criteria.site_id is not None:
        conditions.append(
            exists(
                select(SiteMembership.id).where(
                    SiteMembership.user_id == User.id, SiteMembership.site_id == criteria.site_id
                )
            )
        )
    total = session.scalar(select(func.count(User.id)).where(*conditions)) or 0
    size = min(max(criteria.page_size, 1), MAX_PAGE_SIZE)
    users = list(
        session.scalars(
            select(User)
            .where(*conditions)
            .order_by(User.username)
            .offset((max(criteria.page, 1) - 1) * size)
            .limit(size)
            .options(*with_access())
        ).unique()
    )
    return AccountPage(users, total, criteria)
