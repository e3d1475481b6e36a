"""Routing, auth and ownership (emulator/app.py)."""

from __future__ import annotations

import httpx

from tests.emulator.raw_api import create_file_batch, jsonl, request, upload, wait_done
from tests.fixtures.emulator import EmulatorHandle


def test_bad_key_gets_the_live_400(emulator: EmulatorHandle):
    with emulator.http("wrong-key") as client:
        response = client.get("/v1beta/files")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 400
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == "API key not valid. Please pass a valid API key."
    info = error["details"][0]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert info["reason"] == "API_KEY_INVALID"
    assert info["metadata"] == {"service": "generativelanguage.googleapis.com"}


def test_missing_key_gets_403(emulator: EmulatorHandle):
    response = httpx.get(f"{emulator.base_url}/v1beta/batches")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["status"] == "PERMISSION_DENIED"
    assert error["message"].startswith("Method doesn't allow unregistered callers")


def test_key_as_query_parameter(emulator: EmulatorHandle):
    response = httpx.get(f"{emulator.base_url}/v1/files", params={"key": emulator.api_key})
    assert response.status_code == 200
    assert response.json() == {}


def test_any_key_accepted_when_none_configured(emulator_factory):
    emulator = emulator_factory(api_keys=[])
    with emulator.http("whatever") as client:
        assert client.get("/v1beta/files").status_code == 200
    assert httpx.get(f"{emulator.base_url}/v1beta/files").status_code == 403


def test_unknown_route_uses_the_envelope(emulator: EmulatorHandle):
    with emulator.http() as client:
        response = client.get("/v1beta/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"


def test_files_and_jobs_belong_to_their_key(emulator: EmulatorHandle):
    with emulator.http() as mine:
        file = upload(mine, jsonl([{"key": "a", "request": request("hi")}]))
        job = create_file_batch(mine, file["name"]).json()
        output = wait_done(mine, job["name"])["response"]["responsesFile"]
    with emulator.http(emulator.other_key) as other:
        assert other.get("/v1beta/files").json() == {}
        assert other.get("/v1beta/batches").json() == {}
        for call in (
            other.get(f"/v1beta/{file['name']}"),
            other.delete(f"/v1beta/{file['name']}"),
            other.get(f"/v1beta/{output}:download", params={"alt": "media"}),
            other.get(f"/v1beta/{job['name']}"),
            other.post(f"/v1beta/{job['name']}:cancel"),
            other.delete(f"/v1beta/{job['name']}"),
            create_file_batch(other, file["name"]),
        ):
            assert call.status_code == 404, call.request.url
            assert call.json()["error"]["status"] == "NOT_FOUND"
    with emulator.http() as mine:
        assert mine.get(f"/v1beta/{file['name']}").status_code == 200
        assert mine.get(f"/v1beta/{job['name']}").status_code == 200


def test_both_api_versions_and_both_download_paths(emulator: EmulatorHandle):
    with emulator.http() as client:
        file = upload(client, jsonl([{"key": "a", "request": request("hi")}]), version="v1")
        assert file["uri"].endswith(f"/v1/{file['name']}")
        assert (
            client.get(f"/v1beta/{file['name']}").json()["uri"].endswith(f"/v1beta/{file['name']}")
        )
        job = create_file_batch(client, file["name"]).json()
        output = wait_done(client, job["name"])["response"]["responsesFile"]
        plain = client.get(f"/v1/{output}:download", params={"alt": "media"})
        prefixed = client.get(f"/download/v1beta/{output}:download", params={"alt": "media"})
    assert plain.status_code == prefixed.status_code == 200
    assert plain.content == prefixed.content
    assert plain.content.count(b"\n") == 1


def test_stats_count_requests_per_endpoint(emulator: EmulatorHandle):
    with emulator.http() as client:
        client.get("/v1beta/files")
        client.get("/v1beta/files")
        client.get("/v1beta/batches/nope")
    stats = emulator.stats()
    assert stats["requests"]["files.list"] == 2
    assert stats["responses"]["files.list 200"] == 2
    assert stats["responses"]["batches.get 404"] == 1
