"""Error mapping at the edge (shared/provider/_errors.py): envelope kept, classes, retry delay.

These feed byte-exact provider bodies (live captures from the reference) to the mapper; the
emulator cannot produce every one of them (a non-JSON 502 from a proxy, a Retry-After date).
"""

from __future__ import annotations

import email.utils

import httpx
import pytest
from pydantic import SecretStr

from shared.errors import (
    AuthError,
    NotFoundError,
    ProviderClientError,
    ProviderConnectionError,
    ProviderServerError,
    RateLimitError,
)
from shared.provider.gemini import GeminiClient
from shared.provider.gemini._errors import (
    error_from_exception,
    error_from_response,
    parse_duration,
    parse_retry_after,
)
from shared.provider.retry import RetryPolicy, was_not_sent

REQUEST = httpx.Request("GET", "https://generativelanguage.googleapis.com/v1beta/batches/x")

INVALID_KEY = (
    b'{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.",'
    b'"status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo",'
    b'"reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":'
    b'"generativelanguage.googleapis.com"}},{"@type":"type.googleapis.com/google.rpc.'
    b'LocalizedMessage","locale":"en-US","message":'
    b'"API key not valid. Please pass a valid API key."}]}}'
)
QUOTA = (
    b'{"error":{"code":429,"message":"You exceeded your current quota. Please retry in 47.88s.",'
    b'"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.Help",'
    b'"links":[{"description":"Learn more","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},'
    b'{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":'
    b'"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"x",'
    b'"quotaDimensions":{"location":"global","model":"gemini-2.5-flash"}}]},'
    b'{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"47s"}]}}'
)


def response(status: int, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers, request=REQUEST)


def test_invalid_key_is_auth_error_with_envelope_verbatim():
    error = error_from_response(response(400, INVALID_KEY))
    assert type(error) is AuthError
    assert error.code == 400
    assert error.status == "INVALID_ARGUMENT"
    assert error.message == "API key not valid. Please pass a valid API key."
    assert error.details[0]["reason"] == "API_KEY_INVALID"
    assert len(error.details) == 2


def test_plain_400_is_client_error_not_auth():
    body = (
        b'{"error":{"code":400,"message":"Request contains an invalid argument.",'
        b'"status":"INVALID_ARGUMENT"}}'
    )
    error = error_from_response(response(400, body))
    assert type(error) is ProviderClientError
    assert not error.retryable


def test_missing_key_403_is_auth_error():
    body = (
        b'{"error":{"code":403,"message":"Method doesn\'t allow unregistered callers",'
        b'"status":"PERMISSION_DENIED"}}'
    )
    assert type(error_from_response(response(403, body))) is AuthError


def test_403_may_not_exist_reads_as_not_found():
    body = (
        b'{"error":{"code":403,"message":"You do not have permission to access the File abc '
        b'or it may not exist.","status":"PERMISSION_DENIED"}}'
    )
    error = error_from_response(response(403, body))
    assert type(error) is NotFoundError
    assert error.status == "PERMISSION_DENIED"


def test_404_is_not_found():
    body = (
        b'{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}}'
    )
    error = error_from_response(response(404, body))
    assert type(error) is NotFoundError
    assert (error.code, error.status) == (404, "NOT_FOUND")


def test_429_takes_retry_info_first():
    error = error_from_response(response(429, QUOTA))
    assert type(error) is RateLimitError
    assert error.retry_delay == 47.0
    assert error.status == "RESOURCE_EXHAUSTED"
    assert error.retryable


def test_429_falls_back_to_retry_after_seconds_then_date_then_message():
    bare = (
        b'{"error":{"code":429,"message":"Quota. Please retry in 12.5s.",'
        b'"status":"RESOURCE_EXHAUSTED"}}'
    )
    assert error_from_response(response(429, bare, {"Retry-After": "3"})).retry_delay == 3.0
    assert error_from_response(response(429, bare)).retry_delay == 12.5
    when = email.utils.formatdate(1_000_100.0, usegmt=True)
    assert parse_retry_after(when, now=1_000_000.0) == pytest.approx(100.0)
    assert parse_retry_after("garbage") is None
    nothing = b'{"error":{"code":429,"message":"Slow down.","status":"RESOURCE_EXHAUSTED"}}'
    assert error_from_response(response(429, nothing)).retry_delay is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("47s", 47.0), ("1.5s", 1.5), ("250ms", 0.25), ({"seconds": 2, "nanos": 500_000_000}, 2.5)],
)
def test_duration_forms(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_server_error(status):
    body = (
        b'{"error":{"code":%d,"message":"The model is overloaded.","status":"UNAVAILABLE"}}'
        % status
    )
    error = error_from_response(response(status, body))
    assert type(error) is ProviderServerError
    assert error.retryable
    assert error.message == "The model is overloaded."


def test_non_json_body_keeps_text_and_reason_phrase():
    error = error_from_response(response(502, b"<html>Bad Gateway</html>"))
    assert type(error) is ProviderServerError
    assert error.message == "<html>Bad Gateway</html>"
    assert error.status == "Bad Gateway"
    assert error.code == 502


def test_key_in_a_message_is_redacted():
    body = b'{"error":{"code":400,"message":"bad key sk-SECRET-1","status":"INVALID_ARGUMENT"}}'
    error = error_from_response(response(400, body), secret="sk-SECRET-1")
    assert "sk-SECRET-1" not in str(error)


@pytest.mark.parametrize(
    ("exc_type", "not_sent"),
    [
        (httpx.ConnectError, True),
        (httpx.ConnectTimeout, True),
        (httpx.PoolTimeout, True),
        (httpx.ReadTimeout, False),
        (httpx.ReadError, False),
        (httpx.WriteError, False),
        (httpx.RemoteProtocolError, False),
    ],
)
def test_transport_errors_map_to_connection_error(exc_type, not_sent):
    request = httpx.Request(
        "POST", "http://127.0.0.1:1/v1beta/x", headers={"x-goog-api-key": "sk-SECRET-2"}
    )
    exc = exc_type("boom", request=request)
    try:
        raise error_from_exception(exc) from exc
    except ProviderConnectionError as error:
        assert error.retryable
        assert was_not_sent(error) is not_sent
        assert "sk-SECRET-2" not in str(error)
        assert "sk-SECRET-2" not in repr(request.headers)


def test_non_json_error_through_the_client():
    """Byte-exact: a proxy's HTML 503 reaches the caller as ProviderServerError after retries."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            503, content=b"upstream connect error", headers={"content-type": "text/plain"}
        )

    http = httpx.Client(base_url="http://provider.test", transport=httpx.MockTransport(handler))
    sleeps: list[float] = []
    client = GeminiClient(
        http,
        api_key=SecretStr("sk-SECRET-3"),
        retry=RetryPolicy(max_attempts=3),
        sleep=sleeps.append,
    )
    with pytest.raises(ProviderServerError) as info:
        client.get_batch("abc")
    assert info.value.message == "upstream connect error"
    assert info.value.status == "Service Unavailable"
    assert len(calls) == 3
    assert len(sleeps) == 2
    assert all(r.headers["x-goog-api-key"] == "sk-SECRET-3" for r in calls)


def test_unreadable_success_body_is_server_error():
    http = httpx.Client(
        base_url="http://provider.test",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=b"not json")),
    )
    client = GeminiClient(http, api_key=SecretStr("k"), retry=RetryPolicy(max_attempts=1))
    with pytest.raises(ProviderServerError, match="not JSON"):
        client.get_file("abc")
