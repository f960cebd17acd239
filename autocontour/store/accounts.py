"""Users: unique names, argon2id password hashes (argon2-cffi's current defaults)."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from autocontour.errors import InvalidInputError
from autocontour.store.schema import User

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8
_HASHER = PasswordHasher()


class UserExistsError(InvalidInputError):
    """A user of that name exists already (nothing was changed)."""


def add_user(session: Session, name: str, password: str) -> User:
    """Create a user; the password is stored only as its argon2 hash.

    Raises:
        InvalidInputError: a name that is not 1-64 letters, digits or ``._@-`` (starting with a
            letter or digit), or a password shorter than 8 characters.
        UserExistsError: the name is taken.
    """
    if not NAME.match(name):
        raise InvalidInputError(f"user name {name!r}: use 1-64 letters, digits or ._@- "
                                "(starting with a letter or digit)")
    if len(password) < MIN_PASSWORD:
        raise InvalidInputError(f"user {name}: the password must have at least {MIN_PASSWORD} "
                                "characters")
    if find_user(session, name) is not None:
        raise UserExistsError(f"user {name} exists already; nothing was changed")
    user = User(name=name, password_hash=_HASHER.hash(password))
    session.add(user)
    session.commit()
    return user


def find_user(session: Session, name: str) -> User | None:
    """The user of that name, or None."""
    return session.scalar(select(User).where(User.name == name))


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The user when the password is right, else None (the same for an unknown name)."""
    user = find_user(session, name)
    if user is None:
        _HASHER.hash(password)  # spend the same time as a wrong password: names do not leak
        return None
    try:
        _HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _HASHER.check_needs_rehash(user.password_hash):  # parameters raised since: upgrade it
        user.password_hash = _HASHER.hash(password)
        session.commit()
    return user
