"""Files API methods other than upload: get, list, delete, download."""

from __future__ import annotations

from starlette.responses import FileResponse, Response

from emulator.calls import Call, json_response, paginate
from emulator.errors import ApiError, not_found
from emulator.records import FileRecord
from emulator.render import file_json

FILES_PAGE_DEFAULT = 10
FILES_PAGE_MAX = 100


def _file(call: Call) -> FileRecord:
    file_id = call.params["id"]
    record = call.emulator.live_file(file_id, call.owner)
    if record is None:
        raise not_found(f"File files/{file_id} not found.")
    return record


async def get_file(call: Call) -> Response:
    return json_response(file_json(_file(call), call.base_url, call.version))


async def list_files(call: Call) -> Response:
    emulator = call.emulator
    now = emulator.clock.now()
    mine = [
        f
        for f in list(emulator.store.files.values())
        if f.owner == call.owner and f.expiration_time > now and emulator.visible(f)
    ]
    shown, token = paginate(
        mine,
        lambda f: (f.create_time, f.id),
        call,
        default=FILES_PAGE_DEFAULT,
        maximum=FILES_PAGE_MAX,
    )
    body: dict[str, object] = {}
    if shown:
        body["files"] = [file_json(f, call.base_url, call.version) for f in shown]
    if token:
        body["nextPageToken"] = token
    return json_response(body)


async def delete_file(call: Call) -> Response:
    record = _file(call)
    call.emulator.store.delete_file(record.id)
    return json_response({})


async def download(call: Call) -> Response:
    """Stream a GENERATED file's bytes; uploaded files only when the config allows it."""
    if call.query("alt") != "media":
        raise ApiError(400, "Download requires alt=media.")
    record = _file(call)
    if record.source != "GENERATED" and not call.emulator.config.allow_download_uploaded:
        raise ApiError(
            400,
            f"Only generated files can be downloaded; files/{record.id} was uploaded.",
            status="INVALID_ARGUMENT",
        )
    return FileResponse(
        call.emulator.store.blob(record.id),
        media_type=record.mime_type,
        headers={"X-Goog-Hash": f"sha256={record.sha256_hex}"},
    )
