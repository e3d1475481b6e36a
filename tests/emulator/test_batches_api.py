"""Batch API on the wire (emulator/batches_api.py, render.py, jobs.py, processing.py)."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
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

TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."


@pytest.fixture
def frozen(emulator_factory) -> EmulatorHandle:
    """An emulator whose clock barely moves on its own: tests step it with advance()."""
    return emulator_factory(time_scale=0.001)


def test_created_operation_matches_the_live_capture(emulator: EmulatorHandle):
    with emulator.http() as client:
        response = create_inline_batch(client, ["a", "b", "c"], display_name="test-batch-job")
    assert response.status_code == 200
    operation = response.json()
    assert re.fullmatch(r"batches/[a-z0-9]{36}", operation["name"])
    assert set(operation) == {"name", "metadata"}  # `done` omitted while live
    metadata = operation["metadata"]
    assert metadata["@type"] == TYPE + "GenerateContentBatch"
    assert metadata["model"] == "models/gemini-2.5-flash"
    assert metadata["displayName"] == "test-batch-job"
    assert metadata["state"] == "BATCH_STATE_PENDING"
    assert metadata["name"] == operation["name"]
    assert metadata["batchStats"] == {"requestCount": "3", "pendingRequestCount": "3"}
    assert metadata["createTime"] == metadata["updateTime"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", metadata["createTime"])


def test_job_moves_on_the_emulated_clock(frozen: EmulatorHandle):
    texts = [f"t{i}" for i in range(10)]
    with frozen.http() as client:
        name = create_inline_batch(client, texts).json()["name"]
        assert client.get(f"/v1beta/{name}").json()["metadata"]["state"] == "BATCH_STATE_PENDING"
        frozen.advance(31)
        running = client.get(f"/v1beta/{name}").json()
        assert running["metadata"]["state"] == "BATCH_STATE_RUNNING"
        assert "done" not in running
        frozen.advance(45)  # half of the 90 s running window
        for _ in range(500):  # the worker thread may still be answering
            if frozen.job(name)["processedRequestCount"] == 10:
                break
            time.sleep(0.01)
        stats = client.get(f"/v1beta/{name}").json()["metadata"]["batchStats"]
        assert stats == {
            "requestCount": "10",
            "successfulRequestCount": "5",
            "pendingRequestCount": "5",
        }
        frozen.advance(46)
        done = client.get(f"/v1beta/{name}").json()
    metadata = done["metadata"]
    assert done["done"] is True
    assert metadata["state"] == "BATCH_STATE_SUCCEEDED"
    assert metadata["batchStats"] == {"requestCount": "10", "successfulRequestCount": "10"}
    assert "endTime" in metadata
    assert metadata["updateTime"] == metadata["endTime"]
    answers = done["response"]["inlinedResponses"]["inlinedResponses"]
    assert done["response"]["@type"] == TYPE + "GenerateContentBatchOutput"
    assert metadata["output"] == {"inlinedResponses": {"inlinedResponses": answers}}
    assert [a["metadata"]["key"] for a in answers] == [f"k{i}" for i in range(10)]
    first = answers[0]["response"]
    assert first["candidates"][0]["finishReason"] == "STOP"
    assert first["candidates"][0]["content"]["role"] == "model"
    usage = first["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert first["modelVersion"] == "gemini-2.5-flash"
    assert first["responseId"]


def test_file_batch_output(emulator: EmulatorHandle):
    rows = [
        {"key": f"r{i}", "doc_id": i, "tags": ["x", i], "request": request(f"prompt {i}")}
        for i in range(20)
    ]
    with emulator.http() as client:
        file = upload(client, jsonl(rows))
        created = create_file_batch(client, file["name"]).json()
        assert created["metadata"]["inputConfig"] == {"fileName": file["name"]}
        assert created["metadata"]["batchStats"]["requestCount"] == "20"
        done = wait_done(client, created["name"])
        job_id = created["name"].split("/")[1]
        assert done["response"] == {
            "@type": TYPE + "GenerateContentBatchOutput",
            "responsesFile": f"files/batch-{job_id}",
        }
        assert done["metadata"]["output"] == {"responsesFile": f"files/batch-{job_id}"}
        assert done["metadata"]["inputConfig"] == {"fileName": file["name"]}
        output_file = client.get(f"/v1beta/files/batch-{job_id}").json()
        lines = download(client, f"files/batch-{job_id}")
    assert output_file["source"] == "GENERATED"
    assert output_file["downloadUri"].endswith(
        f"/download/v1beta/files/batch-{job_id}:download?alt=media"
    )
    keys = [line["key"] for line in lines]
    assert sorted(keys) == sorted(r["key"] for r in rows)
    assert keys != [r["key"] for r in rows]  # scrambled by default
    for line in lines:
        i = int(line["key"][1:])
        assert line["doc_id"] == i and line["tags"] == ["x", i]  # echoed top-level fields
        assert f"prompt {i}" in line["response"]["candidates"][0]["content"]["parts"][0]["text"]


def test_keep_order(emulator_factory):
    emulator = emulator_factory(keep_order=True)
    rows = [{"key": f"r{i}", "request": request(str(i))} for i in range(30)]
    with emulator.http() as client:
        file = upload(client, jsonl(rows))
        done = wait_done(client, create_file_batch(client, file["name"]).json()["name"])
        lines = download(client, done["response"]["responsesFile"])
    assert [line["key"] for line in lines] == [r["key"] for r in rows]


def test_bare_and_bad_lines(emulator: EmulatorHandle):
    data = (
        jsonl([request("bare request"), {"key": "ok", "request": request("fine")}])
        + b"this is not json\n"
        + jsonl([{"key": "norequest", "other": 1}])
    )
    with emulator.http() as client:
        file = upload(client, data)
        done = wait_done(client, create_file_batch(client, file["name"]).json()["name"])
        lines = download(client, done["response"]["responsesFile"])
    assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert done["metadata"]["batchStats"] == {
        "requestCount": "4",
        "successfulRequestCount": "2",
        "failedRequestCount": "2",
    }
    assert len(lines) == 4
    bare = [line for line in lines if "key" not in line and "response" in line]
    assert len(bare) == 1
    errors = [line for line in lines if "error" in line]
    assert {e["error"]["status"] for e in errors} == {"INVALID_ARGUMENT"}
    assert {e.get("key") for e in errors} == {None, "norequest"}


def test_snake_case_create_with_single_quotes(emulator: EmulatorHandle):
    """The REST page's curl body, single quotes and all, with snake_case keys."""
    with emulator.http() as client:
        file = upload(client, jsonl([{"key": "a", "request": request("hi")}]))
        body = (
            "{'batch': {'display_name': 'my-batch-requests', 'input_config': {'file_name': '%s'}}}"
        )
        response = client.post(
            "/v1beta/models/gemini-2.5-flash:batchGenerateContent",
            content=body % file["name"],
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["metadata"]["displayName"] == "my-batch-requests"


def test_inline_body_over_20_mb_is_refused(emulator: EmulatorHandle):
    big = "x" * 20_000_000
    with emulator.http() as client:
        response = create_inline_batch(client, [big])
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "20000000" in response.json()["error"]["message"]


def test_create_errors(emulator: EmulatorHandle):
    with emulator.http() as client:
        no_batch = client.post("/v1beta/models/m:batchGenerateContent", json={})
        no_input = client.post("/v1beta/models/m:batchGenerateContent", json={"batch": {}})
        missing = create_file_batch(client, "files/doesnotexist")
    assert no_batch.status_code == no_input.status_code == 400
    assert missing.status_code == 404


def test_embed_batches(emulator: EmulatorHandle):
    rows = [
        {
            "key": "e1",
            "request": {"output_dimensionality": 4, "content": {"parts": [{"text": "a"}]}},
        },
        {"key": "e2", "request": {"content": {"parts": [{"text": "b"}]}}},
    ]
    with emulator.http() as client:
        file = upload(client, jsonl(rows))
        created = create_file_batch(
            client, file["name"], kind="embed", model="gemini-embedding-001"
        )
        assert created.json()["metadata"]["@type"] == TYPE + "EmbedContentBatch"
        done = wait_done(client, created.json()["name"])
        assert done["response"]["@type"] == TYPE + "EmbedContentBatchOutput"
        lines = {line["key"]: line for line in download(client, done["response"]["responsesFile"])}
        inline = client.post(
            "/v1beta/models/gemini-embedding-001:asyncBatchEmbedContent",
            json={
                "batch": {
                    "inputConfig": {
                        "requests": {
                            "requests": [
                                {
                                    "request": {
                                        "content": {"parts": [{"text": "a"}]},
                                        "outputDimensionality": 4,
                                    }
                                }
                            ]
                        }
                    }
                }
            },
        ).json()
        inline_done = wait_done(client, inline["name"])
    assert len(lines["e1"]["response"]["embedding"]["values"]) == 4
    assert len(lines["e2"]["response"]["embedding"]["values"]) == 768
    answer = inline_done["response"]["inlinedResponses"]["inlinedResponses"][0]
    assert (
        answer["response"]["embedding"]["values"] == lines["e1"]["response"]["embedding"]["values"]
    )


def test_structured_output_from_an_openapi_schema(emulator: EmulatorHandle):
    schema = {
        "type": "ARRAY",
        "items": {
            "type": "OBJECT",
            "properties": {
                "recipeName": {"type": "STRING"},
                "servings": {"type": "INTEGER"},
                "vegan": {"type": "BOOLEAN"},
                "kind": {"type": "STRING", "enum": ["cookie", "cake"]},
            },
            "required": ["recipeName"],
        },
    }
    line = {
        "key": "s",
        "request": {
            **request("cookies"),
            "generation_config": {
                "response_mime_type": "application/json",
                "response_schema": schema,
            },
        },
    }
    with emulator.http() as client:
        file = upload(client, jsonl([line]))
        done = wait_done(client, create_file_batch(client, file["name"]).json()["name"])
        (out,) = download(client, done["response"]["responsesFile"])
    value = orjson.loads(out["response"]["candidates"][0]["content"]["parts"][0]["text"])
    assert isinstance(value, list) and value
    for item in value:
        assert isinstance(item["recipeName"], str)
        assert isinstance(item["servings"], int)
        assert isinstance(item["vegan"], bool)
        assert item["kind"] in {"cookie", "cake"}


def test_cancel_delete_and_list_paging(frozen: EmulatorHandle):
    with frozen.http() as client:
        names = [create_inline_batch(client, [str(i)]).json()["name"] for i in range(5)]
        assert client.post(f"/v1beta/{names[0]}:cancel").json() == {}
        cancelled = client.get(f"/v1beta/{names[0]}").json()
        assert cancelled["done"] is True
        assert cancelled["metadata"]["state"] == "BATCH_STATE_CANCELLED"
        assert cancelled["error"]["code"] == 1
        assert "response" not in cancelled
        assert client.delete(f"/v1beta/{names[1]}").json() == {}
        assert client.get(f"/v1beta/{names[1]}").status_code == 404
        seen: list[str] = []
        token = None
        pages = 0
        while True:
            params = {"pageSize": 2, **({"pageToken": token} if token else {})}
            page = client.get("/v1beta/batches", params=params).json()
            seen += [op["name"] for op in page["operations"]]
            pages += 1
            token = page.get("nextPageToken")
            if not token:
                break
    assert pages == 2
    assert sorted(seen) == sorted(n for n in names if n != names[1])
    assert seen[0] == names[-1]  # newest first


def test_hundreds_of_concurrent_jobs(emulator_factory):
    """300 jobs created from 6 threads at once all finish, and the server keeps answering."""
    emulator = emulator_factory(max_live_jobs_per_key=1000)

    def create(start: int) -> list[str]:
        with emulator.http() as client:
            return [
                create_inline_batch(client, [f"job {i}"]).json()["name"]
                for i in range(start, start + 50)
            ]

    with ThreadPoolExecutor(6) as pool:
        names = [name for batch in pool.map(create, range(0, 300, 50)) for name in batch]
    assert len(set(names)) == 300
    with emulator.http() as client:
        states = {wait_done(client, name)["metadata"]["state"] for name in names}
    assert states == {"BATCH_STATE_SUCCEEDED"}
