"""A request body larger than the upload limit is refused while it arrives (413), whether it
says its length or not, before the rest of it is read or spooled to disk."""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]


class _TooLarge(BaseException):
    """Not an Exception: the form parser's ``except Exception`` must not turn it into a 400."""


class BodyLimit:
    """Pure ASGI middleware: at most ``max_bytes`` of request body (plus 1 MiB for the form
    fields around a multipart upload)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes + (1 << 20)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def watching_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        limit = (self.max_bytes - (1 << 20)) / 2**20
        body = json.dumps({"detail": f"the upload is larger than the limit of {limit:.4g} MiB; "
                                     "nothing was kept"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class LoginFirst:
    """Pure ASGI middleware: a request that sends a body (POST, PUT, PATCH) to the API, the login
    excepted, is answered 401 before its body is read unless it carries a bearer token or a
    session cookie that is somebody's. Without it an anonymous multipart upload would be parsed
    (spooled to disk, up to the size limit) before the route's login check ran.

    Only whether the credential exists is checked here; the route checks it again, with the
    CSRF token, as for every request.
    """

    def __init__(self, app: Any, store: Any) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH") \
                and scope["path"].startswith("/api/") and scope["path"] != "/api/login":
            from anyio import to_thread

            headers = dict(scope.get("headers") or [])
            if not await to_thread.run_sync(self._known, headers):
                body = json.dumps({"detail": "log in (POST /api/login) or send "
                                             "'Authorization: Bearer <token>'"}).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode()),
                                        (b"www-authenticate", b"Bearer"),
                                        (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _known(self, headers: dict[bytes, bytes]) -> bool:
        from http.cookies import SimpleCookie

        from autocontour.store.accounts import login_of, token_known

        authorization = headers.get(b"authorization", b"").decode("latin-1")
        with self.store.session() as session:
            if authorization[:7].lower() == "bearer ":
                return token_known(session, authorization[7:].strip())
            cookies = SimpleCookie()
            try:
                cookies.load(headers.get(b"cookie", b"").decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie header is no login
                return False
            login = cookies.get("autocontour_session")
            return login is not None and login_of(session, login.value) is not None
