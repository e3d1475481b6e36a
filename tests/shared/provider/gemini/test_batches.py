"""Batch API against the real emulator: file and inline creates, generate and embed, poll to
the end, stream the responses file, list pages, cancel, delete, ownership."""

from __future__ import annotations

import contextlib
import io
import json
import time

import pytest

from shared.errors import NotFoundError
from shared.provider.gemini import BatchJob, GeminiClient
from shared.run.states import BatchState

from .conftest import LocalSource

GENERATE = "gemini-2.5-flash"
EMBED = "gemini-embedding-001"


def poll(client: GeminiClient, name: str, timeout: float = 30.0) -> BatchJob:
    """Poll with the client until the job is terminal (the timeout only guards a hang)."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get_batch(name)
        if job.is_terminal:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} still {job.state}")
        time.sleep(0.02)


def test_file_batch_runs_to_success_and_streams_results(client, small_source: LocalSource):
    keys = [json.loads(line)["key"] for line in small_source.path.read_bytes().splitlines()]
    file = client.upload(small_source.open_at, small_source.size, display_name="input")

    created = client.create_batch(GENERATE, display_name="run-1-s00000", file_name=file.name)
    assert created.name.startswith("batches/")
    assert created.display_name == "run-1-s00000"
    assert created.model == f"models/{GENERATE}"
    assert created.state in {BatchState.PENDING, BatchState.RUNNING}
    assert created.is_live
    assert created.batch_stats.request_count == len(keys)

    job = poll(client, created.name)
    assert job.state is BatchState.SUCCEEDED
    assert job.done
    assert job.responses_file is not None
    assert job.batch_stats.successful_request_count == len(keys)
    assert job.end_time is not None

    seen = []
    pieces = 0
    buffer = b""
    with client.download(job.responses_file, chunk_size=1024) as chunks:
        for chunk in chunks:
            pieces += 1
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line:
                    record = json.loads(line)
                    assert "candidates" in record["response"]
                    seen.append(record["key"])
    assert buffer == b""
    assert pieces > 1  # it streamed
    assert sorted(seen) == sorted(keys)


def test_succeeded_without_output_stays_live(client, emulator, small_source: LocalSource):
    emulator.set_faults({"jobs": [{"late_output_seconds": 1_000_000}]})
    file = client.upload(small_source.open_at, small_source.size)
    created = client.create_batch(GENERATE, display_name="late", file_name=file.name)
    emulator.wait_job(created.name)

    job = client.get_batch(created.name)
    assert job.state is BatchState.SUCCEEDED
    assert job.responses_file is None
    assert job.is_live

    emulator.advance(2_000_000)
    job = client.get_batch(created.name)
    assert job.is_terminal
    assert job.responses_file is not None


def test_inline_generate(client):
    created = client.create_batch(
        f"models/{GENERATE}",
        display_name="inline",
        inline_requests=[
            {"request": {"contents": [{"parts": [{"text": "hi"}]}]}, "metadata": {"key": "r1"}},
            {"contents": [{"parts": [{"text": "bare request"}]}]},
        ],
    )
    job = poll(client, created.name)
    assert job.state is BatchState.SUCCEEDED
    assert job.inlined_responses is not None
    assert len(job.inlined_responses) == 2
    assert job.inlined_responses[0]["metadata"] == {"key": "r1"}
    assert "candidates" in job.inlined_responses[0]["response"]


def test_embed_inline_and_from_file(client, tmp_path):
    created = client.create_batch(
        EMBED,
        display_name="embed-inline",
        kind="embed",
        inline_requests=[{"request": {"content": {"parts": [{"text": "a"}]}}}],
    )
    job = poll(client, created.name)
    assert job.state is BatchState.SUCCEEDED
    assert job.inlined_responses is not None
    assert "embedding" in job.inlined_responses[0]["response"]

    path = tmp_path / "embed.jsonl"
    path.write_bytes(
        b"".join(
            b'{"key":"e%d","request":{"content":{"parts":[{"text":"t%d"}]}}}\n' % (i, i)
            for i in range(3)
        )
    )
    source = LocalSource(path, path.stat().st_size, "")
    file = client.upload(source.open_at, source.size)
    job = poll(
        client, client.create_batch(EMBED, display_name="e", kind="embed", file_name=file.name).name
    )
    assert job.responses_file is not None
    with client.download(job.responses_file) as chunks:
        lines = b"".join(chunks).splitlines()
    assert sorted(json.loads(line)["key"] for line in lines) == ["e0", "e1", "e2"]
    assert all("values" in json.loads(line)["response"]["embedding"] for line in lines)


def test_list_pages_and_find_by_display_name(client, emulator):
    request = [{"request": {"contents": [{"parts": [{"text": "x"}]}]}}]
    names = [
        client.create_batch(GENERATE, display_name=f"job-{i % 2}", inline_requests=request).name
        for i in range(3)
    ]
    listed = list(client.list_batches(page_size=2))
    assert sorted(j.name for j in listed) == sorted(names)
    assert emulator.stats()["requests"]["batches.list"] == 2

    found = client.find_batches_by_display_name("job-0")
    assert sorted(j.name for j in found) == sorted([names[0], names[2]])
    assert client.find_batches_by_display_name("nothing") == []


def test_cancel(client, emulator):
    emulator.set_faults({"jobs": [{"display_name_contains": "slow", "pending_seconds": 1e6}]})
    request = [{"request": {"contents": [{"parts": [{"text": "x"}]}]}}]
    created = client.create_batch(GENERATE, display_name="slow-job", inline_requests=request)
    assert client.get_batch(created.name).state is BatchState.PENDING

    client.cancel_batch(created.name)
    job = client.get_batch(created.name)
    assert job.state is BatchState.CANCELLED
    assert job.is_terminal
    assert job.inlined_responses is None


def test_delete(client):
    request = [{"request": {"contents": [{"parts": [{"text": "x"}]}]}}]
    created = client.create_batch(GENERATE, display_name="doomed", inline_requests=request)
    client.delete_batch(created.name)
    with pytest.raises(NotFoundError):
        client.get_batch(created.name)
    with pytest.raises(NotFoundError):
        client.delete_batch(created.name)


def test_other_keys_job_is_not_found(client, make_client, emulator):
    request = [{"request": {"contents": [{"parts": [{"text": "x"}]}]}}]
    created = client.create_batch(GENERATE, display_name="mine", inline_requests=request)
    stranger = make_client(api_key=emulator.other_key)
    for call in (stranger.get_batch, stranger.cancel_batch, stranger.delete_batch):
        with pytest.raises(NotFoundError) as info:
            call(created.name)
        assert info.value.code == 404
    assert stranger.find_batches_by_display_name("mine") == []
    assert client.get_batch(created.name).name == created.name


def test_missing_input_file_is_not_found(client):
    with pytest.raises(NotFoundError):
        client.create_batch(GENERATE, display_name="x", file_name="files/doesnotexist")


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"file_name": "files/a", "inline_requests": [{}]}, {"file_name": "a", "kind": "chat"}],
)
def test_create_arguments_checked_locally(client, emulator, kwargs):
    with pytest.raises(ValueError):
        client.create_batch(GENERATE, display_name="x", **kwargs)
    assert emulator.stats()["requests"] == {}


def test_download_falls_back_to_the_next_path_on_404(client, emulator):
    created = client.create_batch(GENERATE, display_name="dl", file_name=_upload_one(client).name)
    job = poll(client, created.name)
    assert job.responses_file is not None

    client.download_paths = ("/nowhere/{version}/{name}:download", "/{version}/{name}:download")
    with client.download(job.responses_file) as chunks:
        assert json.loads(b"".join(chunks).splitlines()[0])["key"] == "only"
    assert emulator.stats()["requests"]["files.download"] == 1

    client.download_paths = ("/nowhere/{version}/{name}:download",)
    with pytest.raises(NotFoundError), client.download(job.responses_file):
        pass


def _upload_one(client: GeminiClient):
    data = b'{"key":"only","request":{"contents":[{"parts":[{"text":"hi"}]}]}}\n'

    @contextlib.contextmanager
    def reader(offset: int):
        yield io.BytesIO(data[offset:])

    return client.upload(reader, len(data))
