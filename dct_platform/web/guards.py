from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask_login import current_user, login_required

from dct_platform import policy

F = TypeVar("F", bound=Callable[..., Any])


def roles_required(*roles: str) -> Callable[[F], F]:
    """Signed in, and one of `roles`; another role gets 403 (never a hidden link only)."""

    def decorate(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            policy.require_role(current_user, *roles)
            return view(*args, **kwargs)

        # functools.wraps keeps the view's signature, which F stands for.
        return cast(F, wrapped)

    return decorate
