"""Log in and out (a session cookie and a CSRF token), and bearer tokens for scripts."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status

from autocontour.service.deps import CSRF_COOKIE, SESSION_COOKIE, CurrentUser, Db, Id, State
from autocontour.service.schemas import LoggedIn, Login, Me, NewToken, TokenCreated, TokenOut

router = APIRouter(prefix="/api", tags=["accounts"])


@router.post("/login", response_model=LoggedIn)
def login(body: Login, response: Response, session: Db, state: State) -> LoggedIn:
    """Log in: sets the session cookie (HttpOnly) and returns the CSRF token."""
    from autocontour.store.accounts import authenticate, login_of, start_login

    user = authenticate(session, body.name, body.password)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    token, csrf = start_login(session, user, state.settings.session_hours)
    record = login_of(session, token)
    assert record is not None
    age = int(state.settings.session_hours * 3600)
    secure = state.settings.secure_cookies
    response.set_cookie(SESSION_COOKIE, token, max_age=age, httponly=True, samesite="strict",
                        secure=secure, path="/")
    response.set_cookie(CSRF_COOKIE, csrf, max_age=age, httponly=False, samesite="strict",
                        secure=secure, path="/")
    return LoggedIn(user=user.name, csrf_token=csrf, expires=record.expires)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(request: Request, response: Response, user: CurrentUser, session: Db) -> None:
    """End this login (the cookie no longer works, here or anywhere it was copied)."""
    from autocontour.store.accounts import end_login

    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        end_login(session, cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


@router.get("/me", response_model=Me)
def me(user: CurrentUser) -> Me:
    """Who the request is authenticated as."""
    return Me(id=user.id, name=user.name)


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def new_token(body: NewToken, user: CurrentUser, session: Db) -> TokenCreated:
    """A bearer token for scripts (shown once; the server keeps only its hash)."""
    from autocontour.store.accounts import add_token

    record, token = add_token(session, user, body.name)
    return TokenCreated(id=record.id, name=record.name, created=record.created,
                        last_used=record.last_used, token=token)


@router.get("/tokens", response_model=list[TokenOut])
def tokens(user: CurrentUser, session: Db) -> list[TokenOut]:
    """Your tokens (names and dates; never the tokens)."""
    from autocontour.store.accounts import tokens_of

    return [TokenOut.model_validate(t) for t in tokens_of(session, user)]


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke(token_id: Id, user: CurrentUser, session: Db) -> None:
    """Revoke one of your tokens."""
    from autocontour.store.accounts import revoke_token

    if not revoke_token(session, user, token_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"token {token_id}: not found")
