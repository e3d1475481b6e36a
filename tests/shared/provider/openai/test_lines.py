"""Staged lines into OpenAI input lines, and output/error file lines back into ours."""

from __future__ import annotations

import io

import orjson
import pytest

from shared.errors import RunError
from shared.jsonl import classify_output, is_retryable
from shared.jsonl.records import staged_line
from shared.provider.openai.lines import translate_output_line, upload_line

CHAT = "/v1/chat/completions"


def test_upload_line_keeps_the_body_and_adds_a_missing_model() -> None:
    body = b'{"messages":[{"role":"user","content":"hi \\"there\\" }"}]}'
    line = orjson.loads(upload_line(staged_line(7, body), url=CHAT, model="gpt-4o-mini"))
    assert line == {
        "custom_id": "7", "method": "POST", "url": CHAT,
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 'hi "there" }'}]},
    }
    named = b'{"model":"gpt-4.1","messages":[]}'
    out = upload_line(staged_line(8, named), url=CHAT, model="gpt-4o-mini")
    head = b'{"custom_id":"8","method":"POST","url":"/v1/chat/completions","body":'
    assert out == head + named + b"}\n"


def test_upload_line_refuses_a_line_that_is_not_staged() -> None:
    with pytest.raises(RunError, match="malformed staged line"):
        upload_line(b'{"custom_id":"1"}\n', url=CHAT, model=None)


def _translated(line: dict[str, object]) -> dict[str, object]:
    result: dict[str, object] = orjson.loads(translate_output_line(orjson.dumps(line)))
    return result


def test_a_200_becomes_the_body_untouched() -> None:
    body = {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 3}}
    response = {"status_code": 200, "body": body}
    line = {"id": "r", "custom_id": "4", "response": response, "error": None}
    assert _translated(line) == {"key": "4", "response": body}


def test_a_failed_request_keeps_code_and_message() -> None:
    error = {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}
    response = {"status_code": 429, "body": {"error": error}}
    line = {"custom_id": "5", "response": response, "error": None}
    translated = _translated(line)["error"]
    assert translated == {"code": 429, "status": "rate_limit_exceeded", "message": "slow down"}
    assert is_retryable(translated)  # type: ignore[arg-type]
    bad = {"custom_id": "6", "response": {"status_code": 400, "body": {"error": {
        "message": "bad", "type": "invalid_request_error", "code": None}}}, "error": None}
    assert not is_retryable(_translated(bad)["error"])  # type: ignore[arg-type]


def test_an_expired_request_is_retryable_and_keeps_the_provider_code() -> None:
    line = {"custom_id": "9", "response": None,
            "error": {"code": "batch_expired", "message": "window ran out"}}
    error = _translated(line)["error"]
    assert error == {"code": None, "status": "DEADLINE_EXCEEDED",
                     "message": "batch_expired: window ran out"}
    assert is_retryable(error)  # type: ignore[arg-type]


def test_an_unreadable_line_passes_through_as_a_stray() -> None:
    assert translate_output_line(b"not json") == b"not json\n"


def test_classify_reads_openai_usage_and_errors() -> None:
    answers = [
        {"custom_id": "1", "response": {"status_code": 200, "body": {"usage": {
            "prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
            "completion_tokens_details": {"reasoning_tokens": 2},
            "prompt_tokens_details": {"cached_tokens": 4}}}}, "error": None},
        {"custom_id": "2", "response": {"status_code": 500, "body": {"error": {
            "message": "oops", "type": "server_error"}}}, "error": None},
    ]
    output = b"".join(translate_output_line(orjson.dumps(a)) for a in answers)
    staged = staged_line(1, b'{"messages":[]}') + staged_line(2, b'{"messages":[]}')
    results, errors = io.BytesIO(), io.BytesIO()
    stats = classify_output(io.BytesIO(output), io.BytesIO(staged), results, errors)
    assert (stats.responses, stats.errors, stats.retryable) == (1, 1, 1)
    tokens = stats.tokens
    assert (tokens.prompt, tokens.candidates, tokens.thoughts, tokens.cached, tokens.total) == (
        10, 5, 2, 4, 17)
