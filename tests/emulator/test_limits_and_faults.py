"""Every limit and fault the emulator can impose, provoked and checked on the wire."""

from __future__ import annotations

import httpx
import pytest

from tests.emulator.raw_api import (
    create_file_batch,
    create_inline_batch,
    download,
    jsonl,
    request,
    upload,
    wait_done,
)
from tests.fixtures.emulator import EmulatorHandle

RPC = "type.googleapis.com/google.rpc."
SLOW = {"jobs": [{"pending_seconds": 1e6}]}


def detail(error: dict, name: str) -> dict:
    (found,) = [d for d in error["details"] if d["@type"] == RPC + name]
    return found


def assert_quota_429(response: httpx.Response, retry_delay: str) -> dict:
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == 429
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert detail(error, "RetryInfo") == {"@type": RPC + "RetryInfo", "retryDelay": retry_delay}
    assert detail(error, "QuotaFailure")["violations"][0]["quotaMetric"]
    assert detail(error, "Help")["links"]
    assert "retry-after" not in response.headers  # the live API sends none
    return error


# ---- limits checked at create -----------------------------------------------------------
def test_concurrent_live_jobs_per_key(emulator_factory):
    emulator = emulator_factory(max_live_jobs_per_key=2, faults=SLOW)
    with emulator.http() as client:
        first = create_inline_batch(client, ["a"]).json()["name"]
        create_inline_batch(client, ["b"])
        error = assert_quota_429(create_inline_batch(client, ["c"]), "60s")
        assert "concurrent" in error["message"]
        client.post(f"/v1beta/{first}:cancel")  # a finished job frees its slot
        assert create_inline_batch(client, ["d"]).status_code == 200
    with emulator.http(emulator.other_key) as other:
        assert create_inline_batch(other, ["e"]).status_code == 200


def test_enqueued_token_budget_per_model(emulator_factory):
    emulator = emulator_factory(
        enqueued_token_budget=100, enqueued_token_budgets={"big-model": 10_000}, faults=SLOW
    )
    text = "x" * 240  # 60 tokens at 4 chars a token
    with emulator.http() as client:
        assert create_inline_batch(client, [text]).status_code == 200
        error = assert_quota_429(create_inline_batch(client, [text]), "60s")
        violation = detail(error, "QuotaFailure")["violations"][0]
        assert violation["quotaMetric"].endswith("batch_enqueued_tokens")
        assert violation["quotaDimensions"]["model"] == "gemini-2.5-flash"
        assert create_inline_batch(client, [text], model="other-model").status_code == 200
        assert create_inline_batch(client, [text] * 50, model="big-model").status_code == 200


def test_file_batch_tokens_estimated_from_size(emulator_factory):
    emulator = emulator_factory(enqueued_token_budget=100, faults=SLOW)
    with emulator.http() as client:
        file = upload(client, jsonl([{"key": "a", "request": request("y" * 500)}]))
        assert_quota_429(create_file_batch(client, file["name"]), "60s")


def test_retry_after_header_switch(emulator_factory):
    emulator = emulator_factory(
        max_live_jobs_per_key=1,
        quota_retry_after_header=True,
        quota_retry_delay_seconds=7,
        faults=SLOW,
    )
    with emulator.http() as client:
        create_inline_batch(client, ["a"])
        refused = create_inline_batch(client, ["b"])
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "7"


# ---- HTTP faults ------------------------------------------------------------------------
def test_429_fault_carries_retry_info(emulator: EmulatorHandle):
    emulator.set_faults(
        {
            "http": [
                {"endpoint": "batches.create", "code": 429, "times": 1, "retry_delay_seconds": 47.2}
            ]
        }
    )
    with emulator.http() as client:
        error = assert_quota_429(create_inline_batch(client, ["a"]), "48s")
        assert error["message"].endswith("Please retry in 47.20s.")
        assert create_inline_batch(client, ["a"]).status_code == 200  # only the next call
    assert len(emulator.jobs()) == 1


def test_5xx_scoped_to_one_endpoint_for_the_next_n_calls(emulator: EmulatorHandle):
    emulator.set_faults({"http": [{"endpoint": "batches.get", "code": 503, "times": 2}]})
    with emulator.http() as client:
        name = create_inline_batch(client, ["a"]).json()["name"]  # not hit
        codes = [client.get(f"/v1beta/{name}").status_code for _ in range(3)]
        first = client.get("/v1beta/batches")
    assert codes == [503, 503, 200]
    assert first.status_code == 200


def test_500_envelope_and_method_scope(emulator: EmulatorHandle):
    emulator.set_faults({"http": [{"endpoint": "files.*", "method": "DELETE", "code": 500}]})
    with emulator.http() as client:
        file = upload(client, b"x")
        response = client.delete(f"/v1beta/{file['name']}")
        assert client.get(f"/v1beta/{file['name']}").status_code == 200
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": 500, "status": "INTERNAL", "message": response.json()["error"]["message"]}
    }


def test_rate_is_deterministic_by_seed(emulator: EmulatorHandle):
    def pattern(seed: int) -> list[int]:
        emulator.set_faults({"seed": seed, "http": [{"endpoint": "files.list", "rate": 0.5}]})
        with emulator.http() as client:
            return [client.get("/v1beta/files").status_code for _ in range(40)]

    first, again, other = pattern(1), pattern(1), pattern(2)
    assert first == again
    assert first != other
    assert 5 < first.count(503) < 35


def test_skip_lets_the_first_calls_through(emulator: EmulatorHandle):
    emulator.set_faults({"http": [{"endpoint": "files.list", "skip": 2, "times": 1}]})
    with emulator.http() as client:
        codes = [client.get("/v1beta/files").status_code for _ in range(4)]
    assert codes == [200, 200, 503, 200]


def test_apply_after_creates_the_job_then_fails_the_answer(emulator: EmulatorHandle):
    emulator.set_faults(
        {"http": [{"endpoint": "batches.create", "code": 500, "times": 1, "apply_after": True}]}
    )
    with emulator.http() as client:
        response = create_inline_batch(client, ["a"], display_name="lost-answer")
    assert response.status_code == 500
    assert [job["displayName"] for job in emulator.jobs()] == ["lost-answer"]


def test_upload_chunk_fault_sets_the_upload_status(emulator: EmulatorHandle):
    emulator.set_faults(
        {
            "http": [
                {"endpoint": "files.upload.chunk", "code": 503, "times": 1},
                {"endpoint": "files.upload.chunk", "code": 500, "times": 1, "upload_status": None},
            ]
        }
    )
    with emulator.http() as client:
        started = client.post(
            "/upload/v1beta/files",
            json={},
            headers={"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start"},
        )
    url = started.headers["x-goog-upload-url"]
    headers = {"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"}
    first = httpx.post(url, content=b"abc", headers=headers)
    second = httpx.post(url, content=b"abc", headers=headers)
    third = httpx.post(url, content=b"abc", headers=headers)
    assert first.status_code == 503
    assert first.headers["x-goog-upload-status"] == "final"
    assert second.status_code == 500
    assert "x-goog-upload-status" not in second.headers  # the SDK would re-send this chunk
    assert third.status_code == 200


def test_latency(emulator: EmulatorHandle):
    emulator.set_faults({"latency": [{"endpoint": "files.list", "seconds": 3}]})
    with emulator.http() as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get("/v1beta/files", timeout=0.3)
        assert client.get("/v1beta/batches", timeout=5).status_code == 200


# ---- job faults -------------------------------------------------------------------------
def test_one_shard_job_fails(emulator: EmulatorHandle):
    emulator.set_faults(
        {
            "jobs": [
                {
                    "display_name_contains": "-s00002-",
                    "fail": {"code": 13, "message": "shard 2 broke"},
                }
            ]
        }
    )
    with emulator.http() as client:
        ok = create_inline_batch(client, ["a"], display_name="run-s00001-a01").json()["name"]
        bad = create_inline_batch(client, ["a"], display_name="run-s00002-a01").json()["name"]
        failed = wait_done(client, bad)
        succeeded = wait_done(client, ok)
    assert failed["done"] is True
    assert failed["metadata"]["state"] == "BATCH_STATE_FAILED"
    assert failed["error"] == {"code": 13, "message": "shard 2 broke"}
    assert "response" not in failed and "output" not in failed["metadata"]
    assert succeeded["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"


def test_job_rate_and_times_select_jobs(emulator: EmulatorHandle):
    emulator.set_faults({"jobs": [{"times": 1, "fail": {}}]})
    with emulator.http() as client:
        names = [create_inline_batch(client, ["a"]).json()["name"] for _ in range(3)]
        states = [wait_done(client, n)["metadata"]["state"] for n in names]
    assert states == ["BATCH_STATE_FAILED", "BATCH_STATE_SUCCEEDED", "BATCH_STATE_SUCCEEDED"]


def test_job_expires_after_48_hours_pending(emulator_factory):
    emulator = emulator_factory(time_scale=0.001)
    emulator.set_faults({"jobs": [{"expire": True}]})
    with emulator.http() as client:
        name = create_inline_batch(client, ["a"]).json()["name"]
        emulator.advance(47 * 3600)
        assert client.get(f"/v1beta/{name}").json()["metadata"]["state"] == "BATCH_STATE_PENDING"
        emulator.advance(3600)
        expired = client.get(f"/v1beta/{name}").json()
    assert expired["done"] is True
    assert expired["metadata"]["state"] == "BATCH_STATE_EXPIRED"
    assert "response" not in expired and "output" not in expired["metadata"]
    assert expired["error"]["code"] == 4


def test_per_request_errors_spelled_status(emulator: EmulatorHandle):
    faults = {
        "seed": 3,
        "jobs": [
            {
                "request_errors": {
                    "rate": 0.3,
                    "code": 429,
                    "spelling": "status",
                    "message": "slow down",
                }
            }
        ],
    }
    emulator.set_faults(faults)
    rows = [{"key": f"k{i}", "request": request(str(i))} for i in range(40)]

    def run() -> tuple[set[str], dict]:
        with emulator.http() as client:
            file = upload(client, jsonl(rows))
            done = wait_done(client, create_file_batch(client, file["name"], "same").json()["name"])
            lines = download(client, done["response"]["responsesFile"])
        failed = {line["key"] for line in lines if "status" in line}
        for line in lines:
            if "status" in line:
                assert line["status"] == {
                    "code": 429,
                    "message": "slow down",
                    "status": "RESOURCE_EXHAUSTED",
                }
                assert "response" not in line
        return failed, done["metadata"]["batchStats"]

    failed, stats = run()
    assert 0 < len(failed) < 40
    assert stats["failedRequestCount"] == str(len(failed))
    assert stats["successfulRequestCount"] == str(40 - len(failed))
    emulator.set_faults(faults)
    assert run()[0] == failed  # same seed, display name and keys: same failures


def test_inline_request_errors_have_no_details(emulator: EmulatorHandle):
    emulator.set_faults({"jobs": [{"request_errors": {"rate": 1.0, "code": 503}}]})
    with emulator.http() as client:
        done = wait_done(client, create_inline_batch(client, ["a", "b"]).json()["name"])
    answers = done["response"]["inlinedResponses"]["inlinedResponses"]
    assert [a["error"]["code"] for a in answers] == [503, 503]
    assert all("details" not in a["error"] for a in answers)
    assert done["metadata"]["batchStats"] == {"requestCount": "2", "failedRequestCount": "2"}


def test_succeeded_before_output_is_attached(emulator: EmulatorHandle):
    emulator.set_faults({"jobs": [{"late_output_seconds": 1e6}]})
    with emulator.http() as client:
        file = upload(client, jsonl([{"key": "a", "request": request("a")}]))
        name = create_file_batch(client, file["name"]).json()["name"]
        early = wait_done(client, name)
        emulator.advance(1e6 + 1)
        late = client.get(f"/v1beta/{name}").json()
    assert early["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert "output" not in early["metadata"] and "response" not in early
    assert late["response"]["responsesFile"].startswith("files/batch-")


def test_echo_arrays_emptied(emulator: EmulatorHandle):
    emulator.set_faults({"jobs": [{"echo_arrays_emptied": True}]})
    row = {"key": "a", "tags": [1, 2], "meta": {"ids": [3], "n": 1}, "request": request("a")}
    with emulator.http() as client:
        file = upload(client, jsonl([row]))
        done = wait_done(client, create_file_batch(client, file["name"]).json()["name"])
        (line,) = download(client, done["response"]["responsesFile"])
    assert line["key"] == "a"
    assert line["tags"] == []
    assert line["meta"] == {"ids": [], "n": 1}


def test_files_expire_after_48_hours(emulator_factory):
    emulator = emulator_factory(time_scale=0.001)
    with emulator.http() as client:
        file = upload(client, b"x")
        emulator.advance(48 * 3600 - 60)
        assert client.get(f"/v1beta/{file['name']}").status_code == 200
        emulator.advance(120)
        assert client.get(f"/v1beta/{file['name']}").status_code == 404
        assert client.get("/v1beta/files").json() == {}
    assert emulator.files() == []


def test_uploaded_files_cannot_be_downloaded_by_default(emulator: EmulatorHandle):
    with emulator.http() as client:
        file = upload(client, b"x")
        response = client.get(f"/v1beta/{file['name']}:download", params={"alt": "media"})
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_faults_can_be_read_back_and_reset(emulator: EmulatorHandle):
    emulator.set_faults({"http": [{"endpoint": "files.list"}]})
    assert emulator._call("GET", "faults")["http"][0]["endpoint"] == "files.list"
    emulator.reset()
    assert emulator._call("GET", "faults")["http"] == []
    bad = httpx.put(f"{emulator.base_url}/_emulator/faults", json={"http": [{"nope": 1}]})
    assert bad.status_code == 400


def test_sdk_upload_stops_at_a_rejected_chunk(emulator: EmulatorHandle, tmp_path):
    """The SDK re-sends a chunk only when X-Goog-Upload-Status is missing: ours stops it."""
    from google.genai import errors

    emulator.set_faults({"http": [{"endpoint": "files.upload.chunk", "code": 503, "times": 1}]})
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl([{"key": "a", "request": request("a")}]))
    client = emulator.genai()
    with pytest.raises(errors.ServerError) as caught:
        client.files.upload(file=str(path), config={"mime_type": "jsonl"})
    assert caught.value.code == 503
    assert emulator.stats()["requests"]["files.upload.chunk"] == 1


def test_a_malformed_request_fails_alone(emulator: EmulatorHandle):
    rows = [
        {
            "key": "bad",
            "request": {"content": {"parts": [{"text": "x"}]}, "outputDimensionality": "many"},
        },
        {"key": "good", "request": {"content": {"parts": [{"text": "x"}]}}},
    ]
    with emulator.http() as client:
        file = upload(client, jsonl(rows))
        created = create_file_batch(
            client, file["name"], kind="embed", model="gemini-embedding-001"
        )
        done = wait_done(client, created.json()["name"])
        lines = {line["key"]: line for line in download(client, done["response"]["responsesFile"])}
    assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert lines["bad"]["error"]["code"] == 400
    assert "embedding" in lines["good"]["response"]
