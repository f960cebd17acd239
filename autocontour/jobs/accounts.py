"""Accounts of the case store: ``autocontour user add NAME``, ``autocontour user token NAME``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AddUserRequest:
    """A new user of the store at ``home`` (default ``$AUTOCONTOUR_HOME``) / ``database_url``.

    The password is handed over in memory only (the CLI reads it from the terminal or stdin,
    never from the command line, where other users could see it).
    """

    name: str
    password: str
    home: str | Path | None = None
    database_url: str | None = None


@dataclass(frozen=True)
class AddUserResult:
    name: str
    user_id: int
    home: Path


def add_user(request: AddUserRequest) -> AddUserResult:
    """Create the user (the store is created or migrated first).

    Raises:
        InvalidInputError: a bad name or short password, a store that cannot be opened.
        UserExistsError: the name is taken (nothing changed).
    """
    from autocontour.store.accounts import add_user as add
    from autocontour.store.database import open_store

    store = open_store(request.home, request.database_url)
    with store.session() as session:
        user = add(session, request.name, request.password)
        return AddUserResult(user.name, user.id, store.home)


@dataclass(frozen=True)
class AddTokenRequest:
    """A bearer token for user ``name`` (for scripts and a planning system), called ``label``."""

    name: str
    label: str
    home: str | Path | None = None
    database_url: str | None = None


def add_token(request: AddTokenRequest) -> str:
    """Create the token and return it (the store keeps only its hash: it cannot be shown again).

    Raises:
        InvalidInputError: no such user, a label that is not 1-64 characters.
    """
    from autocontour.errors import InvalidInputError
    from autocontour.store.accounts import add_token as add
    from autocontour.store.accounts import find_user
    from autocontour.store.database import open_store

    store = open_store(request.home, request.database_url)
    with store.session() as session:
        user = find_user(session, request.name)
        if user is None:
            raise InvalidInputError(f"user {request.name}: no such user in {store.home}")
        return add(session, user, request.label)[1]
