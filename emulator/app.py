"""The ASGI app: routing, auth, fault injection and counters around the API handlers.

Routes (``{ver}`` is ``v1beta`` or ``v1``; ``v1alpha`` is accepted too)::

    POST   /upload/{ver}/files                         upload start, or a chunk with ?upload_id=
    POST   /resumable/upload/{ver}/files               the same (discovery doc path)
    GET    /{ver}/files                                files.list
    GET    /{ver}/files/{id}                           files.get
    DELETE /{ver}/files/{id}                           files.delete
    GET    /{ver}/files/{id}:download?alt=media        files.download (SDK form)
    GET    /download/{ver}/files/{id}:download?alt=media   files.download (REST docs form)
    POST   /{ver}/models/{model}:batchGenerateContent  batches.create
    POST   /{ver}/models/{model}:asyncBatchEmbedContent    batches.create_embeddings
    GET    /{ver}/batches                              batches.list
    GET    /{ver}/batches/{id}                         batches.get
    POST   /{ver}/batches/{id}:cancel                  batches.cancel
    DELETE /{ver}/batches/{id}                         batches.delete (also ``{id}:delete``)
    *      /_emulator/...                              admin API (see emulator.admin)
    *      /openai/v1/...                              OpenAI-style files + batches
                                                       (see emulator.openai_api)
    *      /anthropic/v1/messages/batches...           Anthropic message batches
                                                       (see emulator.anthropic_api)

Auth: ``x-goog-api-key`` or ``?key=``; upload chunk calls need none (the upload id is the
credential). Everything a key creates is visible to that key only.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from emulator import admin, anthropic_api, batches_api, files_api, openai_api, uploads
from emulator.calls import Call, error_response
from emulator.config import EmulatorConfig
from emulator.errors import ApiError, invalid_key, missing_key, quota_exhausted
from emulator.faults import HttpFault
from emulator.state import Emulator, owner_of

Handler = Callable[[Call], Awaitable[Response]]
_VER = r"(?P<ver>v1beta|v1alpha|v1)"
_ID = r"(?P<id>[^/:]+)"
_SWEEP_SECONDS = 0.2
_CLOCK_SAVE_EVERY = 10


@dataclass(frozen=True)
class _Route:
    methods: frozenset[str]
    pattern: re.Pattern[str]
    endpoint: str
    handler: Handler | None  # None: the upload family, dispatched by command


def _route(methods: str, pattern: str, endpoint: str, handler: Handler | None) -> _Route:
    return _Route(frozenset(methods.split("|")), re.compile(pattern), endpoint, handler)


_ROUTES = (
    _route("POST", rf"^/(?:resumable/)?upload/{_VER}/files$", "files.upload", None),
    _route("GET", rf"^/{_VER}/files$", "files.list", files_api.list_files),
    _route(
        "GET",
        rf"^/(?:download/)?{_VER}/files/{_ID}:download$",
        "files.download",
        files_api.download,
    ),
    _route("GET", rf"^/{_VER}/files/{_ID}$", "files.get", files_api.get_file),
    _route("DELETE", rf"^/{_VER}/files/{_ID}$", "files.delete", files_api.delete_file),
    _route(
        "POST",
        rf"^/{_VER}/(?P<model>(?:models|tunedModels)/[^/:]+):batchGenerateContent$",
        "batches.create",
        batches_api.create_generate,
    ),
    _route(
        "POST",
        rf"^/{_VER}/(?P<model>(?:models|tunedModels)/[^/:]+):asyncBatchEmbedContent$",
        "batches.create_embeddings",
        batches_api.create_embed,
    ),
    _route("GET", rf"^/{_VER}/batches$", "batches.list", batches_api.list_batches),
    _route("GET", rf"^/{_VER}/batches/{_ID}$", "batches.get", batches_api.get_batch),
    _route("POST", rf"^/{_VER}/batches/{_ID}:cancel$", "batches.cancel", batches_api.cancel_batch),
    _route("DELETE", rf"^/{_VER}/batches/{_ID}$", "batches.delete", batches_api.delete_batch),
    _route(
        "GET|POST|DELETE",
        rf"^/{_VER}/batches/{_ID}:delete$",
        "batches.delete",
        batches_api.delete_batch,
    ),
)

_UPLOAD_HANDLERS: dict[str, Handler] = {
    "files.upload.start": uploads.start,
    "files.upload.chunk": uploads.chunk,
    "files.upload.query": uploads.query,
    "files.upload.cancel": uploads.cancel,
}


def _match(method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
    for route in _ROUTES:
        found = route.pattern.match(path)
        if found and method in route.methods:
            return route, {k: v for k, v in found.groupdict().items() if v is not None}
    return None


def _authenticate(request: Request, emulator: Emulator) -> str:
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key") or ""
    if not key:
        raise missing_key()
    if not emulator.config.accepts(key):
        raise invalid_key()
    return owner_of(key, emulator.config)


def _fault_error(fault: HttpFault, endpoint: str) -> ApiError:
    if fault.code == 429:
        error = quota_exhausted(
            fault.message or "Resource has been exhausted (e.g. check quota).",
            retry_delay_seconds=fault.retry_delay_seconds,
            quota_metric="generativelanguage.googleapis.com/generate_requests_per_model",
            quota_id="GenerateRequestsPerMinutePerProjectPerModel",
            retry_after_header=fault.retry_after_header,
        )
    else:
        error = ApiError(fault.code, fault.message, status=fault.resolved_status())
    chunk_call = endpoint.startswith("files.upload.") and endpoint != "files.upload.start"
    if chunk_call and fault.upload_status is not None:
        error.headers["X-Goog-Upload-Status"] = fault.upload_status
    return error


async def _dispatch(request: Request) -> Response:
    emulator: Emulator = request.app.state.emulator
    path, method = request.url.path, request.method
    if path.startswith("/_emulator/"):
        return await admin.handle(request, emulator)
    if path.startswith(openai_api.PREFIX + "/"):
        return await openai_api.handle(request, emulator)
    if path.startswith("/anthropic/"):
        return await anthropic_api.handle(request, emulator)
    matched = _match(method, path)
    if matched is None:
        emulator.requests["unknown"] += 1
        return error_response(ApiError(404, f"Method not found: {method} {path}."))
    route, params = matched
    endpoint = route.endpoint
    handler = route.handler
    if handler is None:
        command = request.headers.get("x-goog-upload-command", "")
        endpoint = uploads.classify(dict(request.query_params), command)
        handler = _UPLOAD_HANDLERS[endpoint]
    emulator.requests[endpoint] += 1
    call = Call(request, emulator, endpoint, params)
    try:
        if endpoint == "files.upload.start" or not endpoint.startswith("files.upload."):
            call.owner = _authenticate(request, emulator)
        delay = emulator.faults.latency(endpoint, method)
        if delay:
            await asyncio.sleep(delay)
        fault = emulator.faults.http_fault(endpoint, method)
        if fault is not None and not fault.apply_after:
            raise _fault_error(fault, endpoint)
        response = await handler(call)
        if fault is not None:
            raise _fault_error(fault, endpoint)
    except ApiError as error:
        response = error_response(error)
    except ClientDisconnect:
        response = Response(b"", status_code=499)  # nobody is listening any more
    emulator.responses[f"{endpoint} {response.status_code}"] += 1
    return response


class EmulatorApp(Starlette):
    """Starlette, plus the server's own ``send`` kept in the scope for the drop fault."""

    emulator: Emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["emulator.send"] = send
        await super().__call__(scope, receive, send)


async def _sweeper(emulator: Emulator) -> None:
    """Advance jobs and expire files even when nobody asks; save the clock now and then."""
    rounds = 0
    while True:
        await asyncio.sleep(_SWEEP_SECONDS)
        emulator.sweep()
        rounds += 1
        if emulator.config.data_dir is not None and rounds % _CLOCK_SAVE_EVERY == 0:
            emulator.save_clock()


def create_app(config: EmulatorConfig | None = None) -> EmulatorApp:
    """A new emulator app with its own state (temp data dir unless ``config.data_dir``)."""
    emulator = Emulator(config or EmulatorConfig())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        emulator.start()
        sweeper = asyncio.create_task(_sweeper(emulator))
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            emulator.close()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = EmulatorApp(routes=[Route("/{path:path}", _dispatch, methods=methods)], lifespan=lifespan)
    app.state.emulator = emulator
    app.emulator = emulator
    return app
