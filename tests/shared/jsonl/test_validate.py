from __future__ import annotations

import orjson
import pytest

from shared.jsonl.validate import Accepted, Rejected, check_line, line_verdict

GEN = {"contents": [{"parts": [{"text": "hi"}]}]}
EMB = {"content": {"parts": [{"text": "hi"}]}}


def dumps(value: object) -> bytes:
    return orjson.dumps(value)


def test_keyed_line_with_metadata_in_order():
    raw = dumps({"doc": 7, "key": "k1", "request": GEN, "tags": ["a"]})
    verdict = check_line(raw, 3, "generate")
    assert verdict == Accepted("k1", GEN, dumps(GEN), {"doc": 7, "tags": ["a"]})
    assert list(verdict.extra or {}) == ["doc", "tags"]


def test_keyed_line_without_key_gets_line_number():
    verdict = check_line(dumps({"request": GEN}), 12, "generate")
    assert isinstance(verdict, Accepted)
    assert verdict.key == "line-12"
    assert verdict.extra is None


def test_bare_request_is_staged_verbatim_trimmed():
    raw = b'  {"contents": [{"parts": [{"text": "\\u00e9"}]}]} '
    verdict = check_line(raw, 5, "generate")
    assert isinstance(verdict, Accepted)
    assert verdict.key == "line-5"
    assert verdict.request_json == raw.strip()
    assert verdict.request == {"contents": [{"parts": [{"text": "é"}]}]}


def test_embed_forms():
    assert isinstance(check_line(dumps(EMB), 1, "embed"), Accepted)
    assert isinstance(check_line(dumps({"key": "e", "request": EMB}), 1, "embed"), Accepted)


def test_unicode_keys_and_text():
    raw = dumps({"key": "ключ-🔑", "request": {"contents": [{"parts": [{"text": "日本語 😀"}]}]}})
    verdict = check_line(raw, 1, "generate")
    assert isinstance(verdict, Accepted)
    assert verdict.key == "ключ-🔑"


@pytest.mark.parametrize(
    ("raw", "kind", "reason"),
    [
        (b"", "generate", "empty line"),
        (b"  \t ", "generate", "blank line"),
        (b'{"key": "a", ', "generate", "invalid JSON: "),
        (b'{"key": "\xff"}', "generate", "invalid UTF-8 at byte 10"),
        (b"[1, 2]", "generate", "not a JSON object (got array)"),
        (b'"text"', "generate", "not a JSON object (got string)"),
        (b'{"key": 5, "request": {}}', "generate", "`key` must be a string (got number)"),
        (b'{"key": "", "request": {}}', "generate", "`key` must not be empty"),
        (b'{"key": "a", "request": [1]}', "generate", "`request` must be an object (got array)"),
        (b'{"key": "a", "request": {}}', "generate", "non-empty `contents` list (missing)"),
        (b'{"request": {"contents": []}}', "generate", "(got an empty list)"),
        (b'{"request": {"contents": "hi"}}', "generate", "(got string)"),
        (b'{"request": {"contents": ["hi"]}}', "generate", "`contents[0]` must be an object"),
        (b'{"request": {"contents": [{}]}}', "embed", "embed request needs `content`"),
        (b'{"request": {"content": "x"}}', "embed", "an object (got string)"),
        (b'{"contents": [{}]}', "embed", "`contents` is the generate form"),
        (b'{"prompt": "hi"}', "generate", "not a request: needs `request`"),
        (b'{"key": "a", "contents": [{}]}', "generate", "has `key` but no `request` object"),
        (b'{"request": {"contents": [{}]}, "response": 1}', "generate", "`response` is reserved"),
        (b'{"request": {"contents": [{}]}, "error": 1}', "generate", "`error` is reserved"),
        (b'{"request": {"contents": [{}]}, "attempts": 1}', "generate", "`attempts` is reserved"),
    ],
)
def test_rejections(raw: bytes, kind: str, reason: str):
    verdict = check_line(raw, 1, kind)  # type: ignore[arg-type]
    assert isinstance(verdict, Rejected)
    assert reason in verdict.reason


def test_invalid_json_names_the_column():
    verdict = check_line(b'{"a": tru}', 1, "generate")
    assert isinstance(verdict, Rejected)
    assert "column" in verdict.reason


@pytest.mark.parametrize(
    "raw",
    [
        dumps({"key": "k", "request": GEN, "doc": 1}),
        dumps({"request": GEN}),
        b' {"contents": [{"parts": [{"text": "x"}]}]} ',
        b'{"key": 5, "request": {}}',
        b"{nope",
    ],
)
def test_line_verdict_is_check_line_without_the_objects(raw: bytes):
    verdict = line_verdict(raw, 4, "generate")
    checked = check_line(raw, 4, "generate")
    if isinstance(checked, Rejected):
        assert verdict == checked.reason
    else:
        assert verdict == (checked.key, checked.request, checked.request_json, checked.extra)
