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
