"""GeminiClient against the real emulator: auth errors, retries and their limits, create's
no-retry rule, the key kept secret, and the settings factory."""

from __future__ import annotations

import logging
import socket
import traceback

import httpx
import pytest
from pydantic import SecretStr

from shared.errors import (
    AuthError,
    NotFoundError,
    ProviderConnectionError,
    ProviderServerError,
    RateLimitError,
)
from shared.provider.gemini import GeminiClient, build_client, build_http_client
from shared.provider.retry import RetryPolicy
from shared.settings import Settings

from .conftest import FAST_RETRY

MODEL = "gemini-2.5-flash"
REQUESTS = [{"request": {"contents": [{"parts": [{"text": "x"}]}]}}]


def requests_to(emulator, endpoint: str) -> int:
    return emulator.stats()["requests"].get(endpoint, 0)


def test_wrong_key_is_auth_error_with_provider_fields(make_client, emulator):
    client = make_client(api_key="not-a-valid-key")
    with pytest.raises(AuthError) as info:
        client.list_batches().__next__()
    error = info.value
    assert error.code == 400
    assert error.status == "INVALID_ARGUMENT"
    assert error.message == "API key not valid. Please pass a valid API key."
    assert error.details[0]["reason"] == "API_KEY_INVALID"
    assert requests_to(emulator, "batches.list") == 1  # not retried


def test_missing_key_is_auth_error(make_client):
    with pytest.raises(AuthError) as info:
        make_client(api_key="").get_batch("abc")
    assert info.value.code == 403
    assert info.value.status == "PERMISSION_DENIED"


def test_429_is_retried_after_the_retry_info_delay(client, emulator, sleeps):
    emulator.set_faults(
        {"http": [{"endpoint": "batches.list", "code": 429, "retry_delay_seconds": 3, "times": 1}]}
    )
    assert list(client.list_batches()) == []
    assert sleeps == [3.0]
    assert requests_to(emulator, "batches.list") == 2


def test_429_above_max_sleep_is_raised_with_its_delay(client, emulator, sleeps):
    emulator.set_faults(
        {"http": [{"endpoint": "batches.get", "code": 429, "retry_delay_seconds": 47}]}
    )
    with pytest.raises(RateLimitError) as info:
        client.get_batch("abc")
    assert info.value.retry_delay == 47.0
    assert info.value.status == "RESOURCE_EXHAUSTED"
    assert "Please retry in" in info.value.message
    assert sleeps == []
    assert requests_to(emulator, "batches.get") == 1


def test_5xx_bursts_are_retried_with_backoff(client, emulator, sleeps):
    request = [{"request": {"contents": [{"parts": [{"text": "x"}]}]}}]
    job = client.create_batch(MODEL, display_name="burst", inline_requests=request)
    emulator.set_faults(
        {
            "http": [
                {"endpoint": "batches.get", "code": 503, "times": 2},
                {"endpoint": "batches.get", "code": 500, "times": 1},
            ]
        }
    )
    assert client.get_batch(job.name).name == job.name
    assert sleeps == [0.5, 1.0, 2.0]
    assert requests_to(emulator, "batches.get") == 4


def test_retries_run_out(client, emulator, sleeps):
    emulator.set_faults({"http": [{"endpoint": "files.get", "code": 503}]})
    with pytest.raises(ProviderServerError) as info:
        client.get_file("abc")
    assert info.value.status == "UNAVAILABLE"
    assert requests_to(emulator, "files.get") == FAST_RETRY.max_attempts
    assert len(sleeps) == FAST_RETRY.max_attempts - 1


def test_create_is_not_retried_on_500(client, emulator, sleeps):
    emulator.set_faults({"http": [{"endpoint": "batches.create", "code": 500, "times": 1}]})
    with pytest.raises(ProviderServerError):
        client.create_batch(MODEL, display_name="once", inline_requests=REQUESTS)
    assert requests_to(emulator, "batches.create") == 1
    assert sleeps == []
    assert emulator.jobs() == []


def test_lost_create_answer_is_found_by_display_name(client, emulator):
    emulator.set_faults(
        {"http": [{"endpoint": "batches.create", "code": 503, "apply_after": True, "times": 1}]}
    )
    with pytest.raises(ProviderServerError):
        client.create_batch(MODEL, display_name="run-7-s00001-a01", inline_requests=REQUESTS)
    found = client.find_batches_by_display_name("run-7-s00001-a01")
    assert len(found) == 1
    assert requests_to(emulator, "batches.create") == 1


def test_create_is_retried_on_429(client, emulator, sleeps):
    emulator.set_faults(
        {
            "http": [
                {"endpoint": "batches.create", "code": 429, "retry_delay_seconds": 2, "times": 1}
            ]
        }
    )
    job = client.create_batch(MODEL, display_name="quota", inline_requests=REQUESTS)
    assert sleeps == [2.0]
    assert [row["name"] for row in emulator.jobs()] == [job.name]


def test_create_is_not_retried_after_a_read_timeout(make_client, emulator, sleeps):
    emulator.set_faults({"latency": [{"endpoint": "batches.create", "seconds": 0.5, "times": 1}]})
    client = make_client()
    client._http.timeout = httpx.Timeout(0.1)
    with pytest.raises(ProviderConnectionError, match="ReadTimeout"):
        client.create_batch(MODEL, display_name="slow-answer", inline_requests=REQUESTS)
    assert sleeps == []
    assert requests_to(emulator, "batches.create") == 1


def test_reads_are_retried_after_a_read_timeout(make_client, emulator, sleeps):
    emulator.set_faults({"latency": [{"endpoint": "batches.list", "seconds": 0.5, "times": 1}]})
    client = make_client()
    client._http.timeout = httpx.Timeout(0.1)
    assert list(client.list_batches()) == []
    assert len(sleeps) == 1


def test_create_is_retried_when_the_connection_never_opened(sleeps):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0)
    client = GeminiClient(http, api_key=SecretStr("k"), retry=FAST_RETRY, sleep=sleeps.append)
    with pytest.raises(ProviderConnectionError, match="ConnectError"):
        client.create_batch(MODEL, display_name="x", inline_requests=REQUESTS)
    assert len(sleeps) == FAST_RETRY.max_attempts - 1
    client.close()


def test_a_retried_delete_whose_first_answer_was_lost_reports_not_found(client, emulator):
    job = client.create_batch(MODEL, display_name="gone", inline_requests=REQUESTS)
    emulator.set_faults(
        {"http": [{"endpoint": "batches.delete", "code": 503, "apply_after": True, "times": 1}]}
    )
    with pytest.raises(NotFoundError):
        client.delete_batch(job.name)
    assert requests_to(emulator, "batches.delete") == 2


def test_the_key_never_leaks(emulator_factory, sleeps, caplog):
    secret = "sk-THIS-IS-THE-SECRET-KEY"
    wrong = "sk-THIS-IS-A-WRONG-KEY"
    emulator = emulator_factory(api_keys=[secret, "other"])
    urls: list[str] = []

    def make(key: str) -> GeminiClient:
        http = httpx.Client(
            base_url=emulator.base_url,
            timeout=0.2,
            event_hooks={"request": [lambda request: urls.append(str(request.url))]},
        )
        return GeminiClient(http, api_key=SecretStr(key), retry=FAST_RETRY, sleep=sleeps.append)

    client, wrong_client = make(secret), make(wrong)
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []

    with pytest.raises(AuthError) as auth:
        wrong_client.get_batch("abc")
    errors.append(auth.value)

    emulator.set_faults(
        {
            "http": [{"endpoint": "files.get", "code": 503}],
            "latency": [{"endpoint": "batches.list", "seconds": 1.0}],
        }
    )
    with pytest.raises(ProviderServerError) as server:
        client.get_file("abc")
    errors.append(server.value)
    with pytest.raises(ProviderConnectionError) as timeout:
        list(client.list_batches())
    errors.append(timeout.value)

    for key, owner in ((secret, client), (wrong, wrong_client)):
        assert key not in repr(owner)
        assert key not in str(owner)
        assert urls and not any(key in url for url in urls)
        for error in errors:
            text = "".join(traceback.format_exception(error))
            assert key not in text
            assert key not in repr(error)
            cause = error.__cause__
            if isinstance(cause, httpx.RequestError):
                assert key not in repr(cause.request.headers)
                assert key not in str(cause.request.headers.raw)
        assert key not in caplog.text
        for record in caplog.records:
            assert key not in record.getMessage()
            assert key not in repr(record.args)
    assert any("retry" in record.getMessage() for record in caplog.records)
    client.close()
    wrong_client.close()


def test_build_client_from_settings(emulator):
    settings = Settings(
        api_base_url=emulator.base_url, http_timeout_seconds=7.0, http_max_retries=2
    )
    http = build_http_client(settings)
    assert str(http.base_url).rstrip("/") == emulator.base_url
    assert http.timeout.read == 7.0
    http.close()

    with build_client(settings, SecretStr(emulator.api_key)) as client:
        assert client.retry.max_attempts == 3
        assert client.api_version == "v1beta"
        assert list(client.list_files()) == []

    retry = RetryPolicy(max_attempts=1)
    with build_client(settings, SecretStr(emulator.api_key), retry=retry) as client:
        assert client.retry is retry


def test_v1_api_version(make_client, small_source):
    client = make_client(api_version="v1")
    file = client.upload(small_source.open_at, small_source.size)
    assert "/v1/" in (file.uri or "")
    assert client.get_file(file.name).name == file.name
