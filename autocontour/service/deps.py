"""What the routes share: the app's state, a database session, the user a request comes from.

A request is authenticated by ``Authorization: Bearer <token>`` (scripts) or by the session
cookie a login set (the page). A cookie-authenticated request that changes something (POST, PUT,
PATCH, DELETE) must also carry the login's CSRF token in ``X-CSRF-Token``: another site can make
a browser send the cookie, not read the token.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from sqlalchemy.orm import Session

from autocontour.service.display import Views
from autocontour.service.queue import Queue
from autocontour.service.settings import Settings
from autocontour.store.database import Store
from autocontour.store.schema import User

SESSION_COOKIE = "autocontour_session"
CSRF_COOKIE = "autocontour_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_ID = 2**31 - 1
"""The largest id: ids are PostgreSQL integers (32 bits). A number outside 1..MAX_ID in a URL is
refused (422) before a query is made: the database would fail on it (SQLite overflows past 64
bits, PostgreSQL past 32), a 500 instead of an answer."""

Id = Annotated[int, Path(ge=1, le=MAX_ID)]
"""A case, job, result or token id in the path."""
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
"""An optional id in the query string."""


@dataclass
class AppState:
    """What one running app holds: its settings, the store, the queue, the viewer's caches."""

    settings: Settings
    store: Store
    queue: Queue
    views: Views = field(default_factory=Views)


def app_state(request: Request) -> AppState:
    return request.app.state.autocontour  # type: ignore[no-any-return]


State = Annotated[AppState, Depends(app_state)]


def database(state: State) -> Iterator[Session]:
    with state.store.session() as session:
        yield session


Db = Annotated[Session, Depends(database)]


def current_user(request: Request, session: Db) -> User:
    """The user the request is authenticated as (401 when none; 403 on a missing CSRF token)."""
    from autocontour.store.accounts import login_of, token_user

    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        user = token_user(session, header[7:].strip())
        if user is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked token",
                                headers={"WWW-Authenticate": "Bearer"})
        return user
    cookie = request.cookies.get(SESSION_COOKIE)
    login = login_of(session, cookie) if cookie else None
    if login is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "log in (POST /api/login) or send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    if request.method not in SAFE_METHODS and not hmac.compare_digest(
            request.headers.get(CSRF_HEADER, ""), login.csrf):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"missing or wrong {CSRF_HEADER} header (the csrf_token of the login)")
    user = session.get(User, login.user_id)
    assert user is not None
    return user


CurrentUser = Annotated[User, Depends(current_user)]
