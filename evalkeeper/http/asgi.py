"""The ASGI interface's types (as Starlette spells them), and the one request body reader
of the HTTP app.

`read_body(declared, chunks, max_bytes, too_large)` reads a body chunk by chunk and
refuses it with `too_large(size)` as soon as it is over `max_bytes`: at once when the
declared `content-length` is, else once what arrived is (a chunked body declares none).
The chunks come from a framework request (`request.stream()`) or, for a bare ASGI
handler, from `receive_chunks(receive, went_away)`. A compressed body is the caller's to
inflate (the OTLP decoder, within the same limit).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send", "read_body", "receive_chunks"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def read_body(
    declared: str | None,
    chunks: AsyncIterable[bytes],
    max_bytes: int,
    too_large: Callable[[int], Exception],
) -> bytes:
    """The body; `too_large(size)` (the size declared, or read so far) once over `max_bytes`."""
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(int(declared))
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise too_large(size)
        parts.append(chunk)
    return b"".join(parts)


async def receive_chunks(
    receive: Receive, went_away: Callable[[], Exception]
) -> AsyncIterator[bytes]:
    """The body chunks of a bare ASGI request; `went_away()` if the client disconnects."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise went_away()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
