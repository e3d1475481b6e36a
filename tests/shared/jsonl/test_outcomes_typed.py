"""classify_output's ``validate`` hook: refused responses become retryable errors."""

from __future__ import annotations

import io

import orjson
import pytest

from shared.jsonl import classify_output
from shared.jsonl.records import staged_line, staged_line_number
from shared.typed import ResponseValidator

SCHEMA = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}


def reply(n: int, text: str) -> bytes:
    response = {
        "candidates": [{"content": {"parts": [{"text": text}]}}],
        "usageMetadata": {"promptTokenCount": 2, "totalTokenCount": 5},
    }
    return orjson.dumps({"key": str(n), "response": response})


def run(output: list[bytes], lines: list[int], **options):
    part = b"".join(staged_line(n, b'{"contents":[]}') for n in lines)
    results, errors = io.BytesIO(), io.BytesIO()
    stats = classify_output(
        io.BytesIO(b"\n".join(output) + b"\n"), io.BytesIO(part), results, errors, **options
    )
    return stats, results.getvalue().splitlines(), errors.getvalue().splitlines()


@pytest.mark.parametrize("in_order", [False, True])  # the sorted join and the in-order one
def test_refused_responses_become_errors_with_their_text(in_order: bool) -> None:
    output = [reply(1, '{"n": 1}'), reply(2, '{"n": "two"}'), reply(3, "nope"), reply(4, "{}")]
    stats, results, errors = run(
        output, [1, 2, 3, 4], validate=ResponseValidator(SCHEMA), in_order=in_order
    )
    assert [orjson.loads(r)["line"] for r in results] == [1]
    records = [orjson.loads(e) for e in errors]
    assert [r["line"] for r in records] == [2, 3, 4]
    assert {r["error"]["status"] for r in records} == {"INVALID_OUTPUT"}
    assert all(r["retryable"] for r in records)
    assert records[0]["error"]["text"] == '{"n": "two"}'
    assert stats.invalid == 3 and stats.errors == 3 and stats.retryable == 3
    assert stats.responses == 1 and stats.lines == 4
    assert stats.tokens.total == 20, "a refused response was still billed"


def test_the_retryable_rule_decides_the_flag() -> None:
    stats, _, errors = run(
        [reply(1, "{}")], [1], validate=ResponseValidator(SCHEMA), retryable=lambda e: False
    )
    assert stats.invalid == 1 and stats.retryable == 0
    assert orjson.loads(errors[0])["retryable"] is False


def test_the_hook_sees_the_staged_request_and_the_kept_response_once() -> None:
    seen: list[tuple[int, bytes]] = []

    def validate(staged: bytes, response: bytes):
        seen.append((staged_line_number(staged), response))
        return None

    output = [reply(2, '{"n": 2}'), reply(1, '{"n": 1}'), reply(1, '{"n": 9}')]  # 1 twice
    stats, results, errors = run(output, [1, 2], validate=validate)
    assert [line for line, _ in seen] == [1, 2] and stats.duplicates == 1
    assert orjson.loads(seen[0][1])["candidates"][0]["content"]["parts"][0]["text"] == '{"n": 1}'
    assert len(results) == 2 and not errors


def test_without_a_hook_nothing_is_checked() -> None:
    stats, results, _ = run([reply(1, "not json at all")], [1])
    assert len(results) == 1 and stats.invalid == 0
