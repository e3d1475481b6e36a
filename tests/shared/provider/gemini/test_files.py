"""Files API against the real emulator: chunked upload, resume from the server's offset,
get/list/delete, and the download path fallback."""

from __future__ import annotations

import tracemalloc

import httpx
import pytest
from pydantic import SecretStr

from shared.errors import NotFoundError, ProviderClientError, UploadStateError
from shared.provider.gemini import GRANULARITY, GeminiClient, UploadState

from .conftest import LocalSource, write_jsonl


def test_upload_in_chunks_matches_sha256(client, emulator, big_source: LocalSource):
    file = client.upload(big_source.open_at, big_source.size, display_name="big-input")

    assert file.size_bytes == big_source.size
    assert file.display_name == "big-input"
    fetched = client.get_file(file.name)
    assert fetched.sha256_hex == big_source.sha256
    assert fetched.mime_type == "jsonl"
    chunks = -(-big_source.size // GRANULARITY)
    assert chunks == 3
    assert emulator.stats()["requests"]["files.upload.chunk"] == chunks
    assert big_source.opened_at == [0]
    assert big_source.bytes_read == big_source.size


def test_resume_after_dropped_connection_continues_from_server_offset(
    client, emulator, big_source: LocalSource, sleeps
):
    kept = 3_000_000
    emulator.set_faults({"drops": [{"skip": 1, "after_bytes": kept, "times": 1}]})
    session = client.start_upload(big_source.size, display_name="dropped")

    file = client.upload_from(session.url, big_source.open_at, big_source.size)

    assert client.get_file(file.name).sha256_hex == big_source.sha256
    resumed_at = GRANULARITY + kept
    assert big_source.opened_at == [0, resumed_at]
    # chunk 1, chunk 2 (cut by the drop), then only what the server did not hold
    assert big_source.bytes_read == 2 * GRANULARITY + (big_source.size - resumed_at)
    stats = emulator.stats()["requests"]
    assert stats["files.upload.query"] == 1
    assert len(sleeps) == 1


def test_resume_after_server_error_on_a_chunk(client, emulator, big_source: LocalSource):
    emulator.set_faults(
        {"http": [{"endpoint": "files.upload.chunk", "code": 503, "skip": 1, "times": 2}]}
    )
    file = client.upload(big_source.open_at, big_source.size)

    assert client.get_file(file.name).sha256_hex == big_source.sha256
    assert big_source.opened_at == [0, GRANULARITY, GRANULARITY]
    assert emulator.stats()["requests"]["files.upload.query"] == 2


def test_resumes_are_bounded_and_a_recorded_session_continues_later(
    client, emulator, big_source: LocalSource
):
    emulator.set_faults({"drops": [{"skip": 1, "after_bytes": 1000, "times": 1}]})
    session = client.start_upload(big_source.size)
    with pytest.raises(UploadStateError, match="after 0 resumes"):
        client.upload_from(session.url, big_source.open_at, big_source.size, max_resumes=0)

    # A later task that only recorded the URL asks the server where to start.
    file = client.upload_from(session.url, big_source.open_at, big_source.size, start_offset=None)
    assert big_source.opened_at == [0, GRANULARITY + 1000]
    assert client.get_file(file.name).sha256_hex == big_source.sha256

    # Once final, asking again returns the file without reading the source.
    again = client.upload_from(session.url, big_source.open_at, big_source.size, start_offset=None)
    assert again.name == file.name
    assert big_source.opened_at == [0, GRANULARITY + 1000]


def test_query_reports_offset(client, small_source: LocalSource):
    session = client.start_upload(small_source.size)
    status = client.query_upload(session.url)
    assert status.status is UploadState.ACTIVE
    assert status.size_received == 0
    client.upload_from(session.url, small_source.open_at, small_source.size)
    status = client.query_upload(session.url)
    assert status.status is UploadState.FINAL
    assert status.file is not None and status.file.size_bytes == small_source.size


def test_unknown_session_is_upload_state_error(client, emulator, small_source: LocalSource):
    session = client.start_upload(small_source.size)
    gone = session.url.replace("upload_id=", "upload_id=gone")
    with pytest.raises(UploadStateError):
        client.query_upload(gone)


def test_chunk_size_must_be_whole_granules(client, small_source: LocalSource):
    session = client.start_upload(small_source.size)
    with pytest.raises(ValueError, match="multiple"):
        client.upload_from(session.url, small_source.open_at, small_source.size, chunk_size=1000)


def test_list_files_follows_pages(client, emulator, small_source: LocalSource):
    names = {
        client.upload(small_source.open_at, small_source.size, display_name=f"f{i}").name
        for i in range(5)
    }
    listed = list(client.list_files(page_size=2))
    assert {f.name for f in listed} == names
    assert len(listed) == 5
    assert emulator.stats()["requests"]["files.list"] == 3


def test_delete_then_missing(client, small_source: LocalSource):
    file = client.upload(small_source.open_at, small_source.size)
    client.delete_file(file.name)
    with pytest.raises(NotFoundError) as info:
        client.get_file(file.name)
    assert info.value.code == 404
    assert info.value.status == "NOT_FOUND"
    with pytest.raises(NotFoundError):
        client.delete_file(file.name)


def test_other_keys_file_is_not_found(client, make_client, emulator, small_source: LocalSource):
    file = client.upload(small_source.open_at, small_source.size)
    stranger = make_client(api_key=emulator.other_key)
    with pytest.raises(NotFoundError):
        stranger.get_file(file.name)
    with pytest.raises(NotFoundError):
        stranger.delete_file(file.name)
    assert client.get_file(file.name).name == file.name


def test_uploaded_files_cannot_be_downloaded(client, small_source: LocalSource):
    file = client.upload(small_source.open_at, small_source.size)
    with pytest.raises(ProviderClientError, match="generated"), client.download(file.name):
        pass


def test_names_are_validated_before_any_call(client, emulator):
    with pytest.raises(ValueError):
        client.get_file("files/../batches/x")
    assert emulator.stats()["requests"] == {}


@pytest.mark.parametrize("drop", [False, True])
def test_upload_holds_one_chunk_in_memory(client, emulator, big_source: LocalSource, drop):
    """Python heap peak (client and the in-process emulator together) stays near one chunk."""
    if drop:
        emulator.set_faults({"drops": [{"skip": 1, "after_bytes": 3_000_000, "times": 1}]})
    tracemalloc.start()
    try:
        file = client.upload(big_source.open_at, big_source.size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert file.size_bytes == big_source.size
    assert big_source.size > 2 * GRANULARITY
    assert peak < GRANULARITY + 4 * 1024 * 1024


def test_empty_file_is_one_finalize(client, emulator, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    source = LocalSource(path, 0, "")
    file = client.upload(source.open_at, 0)
    assert file.size_bytes == 0
    assert emulator.stats()["requests"]["files.upload.chunk"] == 1


def test_a_wrong_offset_resynchronises_from_the_server(client, emulator, big_source: LocalSource):
    session = client.start_upload(big_source.size)
    file = client.upload_from(
        session.url, big_source.open_at, big_source.size, start_offset=GRANULARITY
    )
    assert big_source.opened_at == [GRANULARITY, 0]
    assert client.get_file(file.name).sha256_hex == big_source.sha256


def test_chunks_follow_the_sessions_granularity(emulator_factory, tmp_path):
    small_granule = 256 * 1024
    emulator = emulator_factory(upload_chunk_granularity=small_granule)
    source = write_jsonl(tmp_path / "mid.jsonl", 1_000_000)
    with GeminiClient(
        httpx.Client(base_url=emulator.base_url), api_key=SecretStr(emulator.api_key)
    ) as client:
        session = client.start_upload(source.size)
        assert session.chunk_granularity == small_granule
        file = client.upload(source.open_at, source.size, chunk_size=300_000)
    assert file.size_bytes == source.size
    assert emulator.stats()["requests"]["files.upload.chunk"] == -(-source.size // small_granule)
