"""The reference miner's request limits, applied at the ASGI level, below every route.

- Path rule: a path over ``max_path_bytes`` (raw, query included) is 414; a path holding a NUL or
  another control character, a backslash, or a ``.``/``..`` segment, once percent-decoded, is 400.
  A malformed path is always a 4xx, never a 500.
- Body rule: a declared ``Content-Length`` over ``max_body_bytes`` is answered 413 at once, before a
  byte of the body is read; a malformed one is 400; a body streamed without a length (chunked) is
  counted as the app reads it and cut with 413 at the limit. Nothing past the limit is ever buffered.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

DEFAULT_MAX_BODY_BYTES = 64 * 1024
"""Largest request body a miner reads: real ones (a Fernet-wrapped job request, a key exchange) are < 2 KB."""
DEFAULT_MAX_PATH_BYTES = 2048

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def path_problem(scope: Scope, max_path_bytes: int = DEFAULT_MAX_PATH_BYTES) -> tuple[int, str] | None:
    """Path rule (module docstring): None for a sane path, else (status, reason)."""
    raw = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
    if len(raw) + len(scope.get("query_string") or b"") > max_path_bytes:
        return 414, f"request path longer than {max_path_bytes} bytes"
    path = scope.get("path", "")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return 400, "request path holds a NUL or control character"
    if "\\" in path or any(segment in (".", "..") for segment in path.split("/")):
        return 400, "request path holds a backslash or a '.'/'..' segment"
    return None


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length`` (None when absent); ValueError when malformed or repeated
    with different values."""
    values = {v.strip() for k, v in scope.get("headers", ()) if k.lower() == b"content-length"}
    if not values:
        return None
    if len(values) > 1 or not all(v.isdigit() for v in values):
        raise ValueError("malformed Content-Length")
    return int(values.pop())


class RequestLimits:
    """ASGI middleware enforcing the path and body rules of the module docstring.

    ``who`` names the miner in refusals (``{"detail": "miner X: ..."}``).
    """

    def __init__(self, app: Callable, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_path_bytes: int = DEFAULT_MAX_PATH_BYTES, who: str = "miner"):
        self.app = app
        self.max_body_bytes = int(max_body_bytes)
        self.max_path_bytes = int(max_path_bytes)
        self.who = who

    async def _refuse(self, send: Send, status: int, reason: str) -> None:
        body = json.dumps({"detail": f"{self.who}: {reason}"}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = path_problem(scope, self.max_path_bytes)
        try:
            declared = declared_length(scope)
        except ValueError as exc:
            problem = problem or (400, str(exc))
            declared = None
        if problem is None and declared is not None and declared > self.max_body_bytes:
            problem = 413, f"request body of {declared} bytes exceeds the {self.max_body_bytes}-byte limit"
        if problem is not None:
            await self._refuse(send, *problem)
            return
        await self._call_counted(scope, receive, send)

    async def _call_counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a ``receive`` that cuts the body at the limit: the client gets 413, the
        app sees a disconnect (and whatever it then tries to answer is dropped)."""
        state = {"received": 0, "started": False, "refused": False}

        async def counted_receive() -> Message:
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body_bytes:
                    if not state["started"]:
                        await self._refuse(send, 413, f"request body exceeds the {self.max_body_bytes}-byte limit")
                    state["refused"] = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: Message) -> None:
            if state["refused"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception:
            if not state["refused"]:
                raise
