"""The provider page's Python examples, run unchanged (but for base_url and poll sleeps)
with the google-genai SDK against the emulator, on API versions v1 (SDK 3.x default) and v1beta.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from google.genai import errors, types
from pydantic import BaseModel, TypeAdapter

from tests.fixtures.emulator import EmulatorHandle

COMPLETED = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


@pytest.fixture(params=["v1", "v1beta"])
def api_version(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def client(api_version: str, emulator: EmulatorHandle):
    """SDK 3.x talks v1 by default; ``api_version='v1beta'`` switches it back."""
    return emulator.genai(api_version=None if api_version == "v1" else api_version)


def wait(client, name: str):
    batch_job = client.batches.get(name=name)
    deadline = time.monotonic() + 30
    while batch_job.state.name not in COMPLETED:
        assert time.monotonic() < deadline, f"{name} hangs in {batch_job.state.name}"
        time.sleep(0.05)
        batch_job = client.batches.get(name=name)
    return batch_job


def test_inline_requests(client):
    inline_requests = [
        {"contents": [{"parts": [{"text": "Tell me a one-sentence joke."}], "role": "user"}]},
        {"contents": [{"parts": [{"text": "Why is the sky blue?"}], "role": "user"}]},
    ]
    inline_batch_job = client.batches.create(
        model="models/gemini-2.5-flash",
        src=inline_requests,
        config={"display_name": "inlined-requests-job-1"},
    )
    assert inline_batch_job.name.startswith("batches/")
    assert inline_batch_job.state.name == "JOB_STATE_PENDING"
    assert inline_batch_job.display_name == "inlined-requests-job-1"
    batch_job = wait(client, inline_batch_job.name)
    assert batch_job.state.name == "JOB_STATE_SUCCEEDED"
    texts = [r.response.text for r in batch_job.dest.inlined_responses]
    assert "Tell me a one-sentence joke." in texts[0]
    assert "Why is the sky blue?" in texts[1]
    assert batch_job.dest.inlined_responses[0].response.usage_metadata.total_token_count > 0


def test_file_upload_batch_and_download(client, api_version: str, tmp_path: Path):
    path = tmp_path / "my-batch-requests.jsonl"
    with open(path, "w") as f:
        requests = [
            {
                "key": "request-1",
                "request": {
                    "contents": [{"parts": [{"text": "Describe the process of photosynthesis."}]}]
                },
            },
            {
                "key": "request-2",
                "request": {
                    "contents": [
                        {
                            "parts": [
                                {"text": "What are the main ingredients in a Margherita pizza?"}
                            ]
                        }
                    ]
                },
            },
        ]
        for req in requests:
            f.write(json.dumps(req) + "\n")
    uploaded_file = client.files.upload(
        file=str(path),
        config=types.UploadFileConfig(display_name="my-batch-requests", mime_type="jsonl"),
    )
    assert uploaded_file.name.startswith("files/")
    assert uploaded_file.size_bytes == path.stat().st_size
    assert uploaded_file.state.name == "ACTIVE"
    assert f"/{api_version}/files/" in uploaded_file.uri
    file_batch_job = client.batches.create(
        model="gemini-2.5-flash",
        src=uploaded_file.name,
        config={"display_name": "file-upload-job-1"},
    )
    batch_job = wait(client, file_batch_job.name)
    assert batch_job.state.name == "JOB_STATE_SUCCEEDED"
    assert batch_job.dest.file_name == "files/batch-" + batch_job.name.split("/")[1]
    file_content = client.files.download(file=batch_job.dest.file_name)
    lines = [json.loads(line) for line in file_content.decode("utf-8").splitlines()]
    assert [line["key"] for line in lines] == ["request-2", "request-1"]  # scrambled
    by_key = {line["key"]: line for line in lines}
    text = by_key["request-1"]["response"]["candidates"][0]["content"]["parts"][0]["text"]
    assert "photosynthesis" in text


def test_structured_output(client):
    class Recipe(BaseModel):
        recipe_name: str
        ingredients: list[str]

    inline_requests = [
        {
            "contents": [{"parts": [{"text": "List popular cookie recipes."}], "role": "user"}],
            "config": {"response_mime_type": "application/json", "response_schema": list[Recipe]},
        },
        {
            "contents": [{"parts": [{"text": "List gluten free cookie recipes."}], "role": "user"}],
            "config": {"response_mime_type": "application/json", "response_schema": list[Recipe]},
        },
    ]
    inline_batch_job = client.batches.create(
        model="models/gemini-2.5-flash",
        src=inline_requests,
        config={"display_name": "structured-output-job-1"},
    )
    batch_job_inline = wait(client, inline_batch_job.name)
    assert batch_job_inline.state.name == "JOB_STATE_SUCCEEDED"
    for inline_response in batch_job_inline.dest.inlined_responses:
        recipes = TypeAdapter(list[Recipe]).validate_json(inline_response.response.text)
        assert recipes and all(r.recipe_name for r in recipes)


def test_system_instruction(client):
    inline_requests_list = [
        {"contents": [{"parts": [{"text": "Write a short poem about a cloud."}]}]},
        {
            "contents": [{"parts": [{"text": "Write a short poem about a cat."}]}],
            "config": {"system_instruction": {"parts": [{"text": "You are a cat named Neko."}]}},
        },
    ]
    job = client.batches.create(
        model="models/gemini-2.5-flash", src=inline_requests_list, config={"display_name": "si"}
    )
    done = wait(client, job.name)
    plain, instructed = (r.response.text for r in done.dest.inlined_responses)
    assert "Neko" in instructed
    assert "Neko" not in plain


def test_embeddings_from_file_and_inline(client, tmp_path: Path):
    path = tmp_path / "embed.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "key": f"e{i}",
                    "request": {
                        "output_dimensionality": 8,
                        "content": {"parts": [{"text": f"text {i}"}]},
                    },
                }
            )
            + "\n"
            for i in range(3)
        )
    )
    uploaded_batch_requests = client.files.upload(
        file=str(path), config=types.UploadFileConfig(mime_type="jsonl")
    )
    file_job = client.batches.create_embeddings(
        model="gemini-embedding-001",
        src={"file_name": uploaded_batch_requests.name},
        config={"display_name": "Input embeddings batch"},
    )
    inlined_requests = types.EmbedContentBatch(
        contents=["first text", "second text"], config={"output_dimensionality": 16}
    )
    batch_job = client.batches.create_embeddings(
        model="gemini-embedding-001",
        src={"inlined_requests": inlined_requests},
        config={"display_name": "Inlined embeddings batch"},
    )
    done_file = wait(client, file_job.name)
    assert done_file.state.name == "JOB_STATE_SUCCEEDED"
    content = client.files.download(file=done_file.dest.file_name)
    lines = [json.loads(x) for x in content.splitlines()]
    assert sorted(line["key"] for line in lines) == ["e0", "e1", "e2"]
    assert all(len(line["response"]["embedding"]["values"]) == 8 for line in lines)
    done_inline = wait(client, batch_job.name)
    embeddings = done_inline.dest.inlined_embed_content_responses
    assert len(embeddings) == 2
    assert len(embeddings[0].response.embedding.values) == 16


def test_cancel(client, emulator: EmulatorHandle):
    emulator.set_faults({"jobs": [{"display_name_contains": "slow", "pending_seconds": 1e6}]})
    batch_job_to_cancel = client.batches.create(
        model="gemini-2.5-flash",
        src=[{"contents": [{"parts": [{"text": "x"}]}]}],
        config={"display_name": "slow-job"},
    )
    client.batches.cancel(name=batch_job_to_cancel.name)
    assert client.batches.get(name=batch_job_to_cancel.name).state.name == "JOB_STATE_CANCELLED"


def test_delete(client):
    batch_job_to_delete = client.batches.create(
        model="gemini-2.5-flash", src=[{"contents": [{"parts": [{"text": "x"}]}]}]
    )
    client.batches.delete(name=batch_job_to_delete.name)
    with pytest.raises(errors.ClientError) as caught:
        client.batches.get(name=batch_job_to_delete.name)
    assert caught.value.code == 404
    assert batch_job_to_delete.name not in [b.name for b in client.batches.list()]


def test_list_batches_with_paging(client):
    names = {
        client.batches.create(
            model="gemini-2.5-flash", src=[{"contents": [{"parts": [{"text": str(i)}]}]}]
        ).name
        for i in range(5)
    }
    pager = client.batches.list(config={"page_size": 2})
    assert len(pager.page) == 2
    assert {job.name for job in pager} == names


def test_files_list_and_delete(client, tmp_path: Path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"key": "a", "request": {"contents": [{"parts": [{"text": "a"}]}]}}\n')
    names = {
        client.files.upload(file=str(path), config={"mime_type": "jsonl"}).name for _ in range(3)
    }
    pager = client.files.list(config={"page_size": 2})
    assert len(pager.page) == 2
    assert {f.name for f in pager} == names
    victim = names.pop()
    client.files.delete(name=victim)
    assert {f.name for f in client.files.list()} == names
    with pytest.raises(errors.ClientError) as caught:
        client.files.get(name=victim)
    assert caught.value.code == 404
