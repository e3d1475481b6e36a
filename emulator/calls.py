"""What every handler gets (:class:`Call`) and the small HTTP pieces they share."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from emulator.errors import ApiError, bad_request
from emulator.state import Emulator

T = TypeVar("T")


@dataclass
class Call:
    """One API call: the request, the emulator, path parameters and the caller's identity."""

    request: Request
    emulator: Emulator
    endpoint: str
    params: dict[str, str] = field(default_factory=dict)
    owner: str = ""

    @property
    def version(self) -> str:
        return self.params.get("ver", "v1beta")

    @property
    def base_url(self) -> str:
        """Base of the absolute URLs handed out: the configured one, else this server."""
        configured = self.emulator.config.public_base_url
        if configured:
            return configured.rstrip("/")
        host = self.request.headers.get("host")
        if not host:
            server = self.request.scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        return f"{self.request.url.scheme}://{host}"

    def query(self, name: str) -> str | None:
        """A query parameter under its camelCase or snake_case name."""
        params = self.request.query_params
        if name in params:
            return params[name]
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
        return params.get(snake)

    async def abort_connection(self) -> None:
        """Drop the TCP connection without an answer (the upload-drop fault).

        Uses uvicorn's transport when it is reachable; otherwise raises, which makes the
        server close the connection with an error instead.
        """
        send = self.request.scope.get("emulator.send")
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is None:
            raise ConnectionAbortedError("the emulator could not reach the transport to drop")
        transport.abort()
        for _ in range(3):
            await asyncio.sleep(0)


def json_response(
    body: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status_code,
        headers=headers,
        media_type="application/json; charset=UTF-8",
    )


def error_response(error: ApiError) -> Response:
    return json_response(error.body(), error.code, error.headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 400 past ``limit`` bytes (checked while it streams)."""
    message = f"Request payload size exceeds the limit: {limit} bytes."
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise bad_request(message)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise bad_request(message)
        chunks.append(chunk)
    return b"".join(chunks)


def page_size(call: Call, default: int, maximum: int) -> int:
    raw = call.query("pageSize")
    if raw is None or raw == "":
        return default
    try:
        size = int(raw)
    except ValueError:
        raise bad_request(f"Invalid value for pageSize: {raw!r}") from None
    if size < 0:
        raise bad_request("pageSize must not be negative.")
    return default if size == 0 else min(size, maximum)


def paginate(
    items: Sequence[T],
    sort_key: Callable[[T], tuple[float, str]],
    call: Call,
    *,
    default: int,
    maximum: int,
) -> tuple[list[T], str | None]:
    """Newest first; the token names the last item shown, so deletions never skip items."""
    size = page_size(call, default, maximum)
    ordered = sorted(items, key=sort_key, reverse=True)
    token = call.query("pageToken")
    if token:
        try:
            stamp, name = orjson.loads(base64.urlsafe_b64decode(token.encode() + b"=="))
            after = (float(stamp), str(name))
        except (ValueError, TypeError, orjson.JSONDecodeError):
            raise bad_request("Invalid page token.") from None
        ordered = [item for item in ordered if sort_key(item) < after]
    shown = ordered[:size]
    next_token = None
    if len(ordered) > size:
        last = sort_key(shown[-1])
        next_token = base64.urlsafe_b64encode(orjson.dumps(list(last))).decode().rstrip("=")
    return shown, next_token
