"""Users (unique names, argon2id password hashes with argon2-cffi's current defaults), browser
logins and bearer tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from autocontour.errors import InvalidInputError
from autocontour.store.schema import ApiToken, LoginSession, User, now

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


# --- logins and tokens ------------------------------------------------------------------------
# A browser login and a script's bearer token are both 32 random bytes (URL-safe base64); the
# database keeps only their SHA-256, so a copy of the database logs nobody in.

TOKEN_BYTES = 32


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_login(session: Session, user: User, hours: float) -> tuple[str, str]:
    """Open a browser login of ``user`` valid for ``hours``.

    Returns:
        (the session cookie's value, the CSRF token the page must send back in a header).
    """
    token, csrf = secrets.token_urlsafe(TOKEN_BYTES), secrets.token_urlsafe(TOKEN_BYTES)
    session.add(LoginSession(user_id=user.id, token_sha256=_digest(token), csrf=csrf,
                             expires=now() + timedelta(hours=hours)))
    session.commit()
    return token, csrf


def login_of(session: Session, token: str) -> LoginSession | None:
    """The unexpired login of a session cookie, or None."""
    login = session.scalar(select(LoginSession).where(LoginSession.token_sha256 == _digest(token)))
    if login is None or login.expires <= now():
        return None
    return login


def end_login(session: Session, token: str) -> None:
    """Log out: the cookie no longer logs anybody in (expired logins are swept too)."""
    session.execute(delete(LoginSession).where(
        (LoginSession.token_sha256 == _digest(token)) | (LoginSession.expires <= now())))
    session.commit()


def add_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """A new bearer token of ``user``: (its record, the token, which is not kept anywhere)."""
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise InvalidInputError("a token's name must have 1-64 characters")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    record = ApiToken(user_id=user.id, name=name, token_sha256=_digest(token))
    session.add(record)
    session.commit()
    return record, token


#: How often a token's last use is written: a minute is precise enough to show, and a read
#: request then seldom writes.
LAST_USED_EVERY = timedelta(minutes=1)


def token_user(session: Session, token: str) -> User | None:
    """The user of a bearer token, or None.

    Its last use is noted at most once a :data:`LAST_USED_EVERY`, and only when the database
    takes the write: a writer that holds SQLite's lock (a worker frozen in the middle of a
    transaction) must not turn a read request into an error, so the note then waits for the
    next request.
    """
    record = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == _digest(token)))
    if record is None:
        return None
    user_id = record.user_id
    if record.last_used is None or now() - record.last_used >= LAST_USED_EVERY:
        record.last_used = now()
        try:
            session.commit()
        except OperationalError:  # the database is busy: the note can wait
            session.rollback()
    return session.get(User, user_id)


def token_known(session: Session, token: str) -> bool:
    """Whether a bearer token is one of somebody's (read only: its last use is not noted)."""
    return session.scalar(select(ApiToken.id).where(ApiToken.token_sha256 == _digest(token))) \
        is not None


def tokens_of(session: Session, user: User) -> list[ApiToken]:
    """``user``'s tokens, oldest first."""
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)
                                .order_by(ApiToken.id)))


def revoke_token(session: Session, user: User, token_id: int) -> bool:
    """Delete ``user``'s token ``token_id``; False when there is no such token of this user."""
    done = session.execute(delete(ApiToken).where(ApiToken.id == token_id,
                                                  ApiToken.user_id == user.id))
    session.commit()
    return bool(done.rowcount)
