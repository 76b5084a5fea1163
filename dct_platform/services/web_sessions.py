"""Signed-in browser sessions, recorded on the server so that signing out really ends one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session

from dct_platform.models import User, WebSession
from dct_platform.models.users import with_access
from dct_platform.security import new_token, token_digest


def open_web_session(session: Session, user: User, now: datetime) -> str:
    """Record a new session for `user`; the returned id goes into the (signed) cookie."""
    sid = new_token()
    session.add(WebSession(user_id=user.id, sid_hash=token_digest(sid), created_at=now))
    session.flush()
    return sid


def end_web_session(session: Session, sid: str | None, now: datetime) -> None:
    if not sid:
        return
    session.execute(
        update(WebSession)
        .where(WebSession.sid_hash == token_digest(sid), WebSession.ended_at.is_(None))
        .values(ended_at=now)
    )


def session_user(session: Session, user_id: int, sid: str | None) -> User | None:
    """The account of a cookie's session, if that session is still open on the server."""
    if not sid:
        return None
    return (
        session.scalars(
            select(User)
            .join(WebSession, WebSession.user_id == User.id)
            .where(
                User.id == user_id,
                WebSession.sid_hash == token_digest(sid),
                WebSession.ended_at.is_(None),
            )
            .options(*with_access())
        )
        .unique()
        .one_or_none()
    )


def purge_web_sessions(session: Session, now: datetime, max_age: timedelta) -> int:
    """Housekeeping: forget ended sessions after a day and any session older than `max_age`."""
    statement = delete(WebSession).where(
        or_(WebSession.ended_at < now - timedelta(days=1), WebSession.created_at < now - max_age)
    )
    result = cast(CursorResult[Any], session.execute(statement))
    return result.rowcount or 0
