"""Request body parsing (emulator/wire.py) and timestamps (emulator/clock.py)."""

from __future__ import annotations

import re

import pytest

from emulator.clock import EmulatedClock, rfc3339
from emulator.errors import ApiError
from emulator.wire import batch_id, field, file_id, parse_body


def test_field_reads_both_spellings_at_one_level_only():
    body = {"input_config": {"file_name": "files/a"}, "displayName": "d"}
    assert field(field(body, "inputConfig"), "fileName") == "files/a"
    assert field(body, "displayName") == "d"
    assert field(body, "missing", 7) == 7
    assert field("not a dict", "x") is None


def test_parse_body_takes_json_and_the_docs_single_quotes():
    assert parse_body(b'{"a": [1, true, null]}') == {"a": [1, True, None]}
    assert parse_body(b"{'batch': {'display_name': 'x', 'ok': true}}") == {
        "batch": {"display_name": "x", "ok": True}
    }
    assert parse_body(b"") == {}
    with pytest.raises(ApiError) as caught:
        parse_body(b"{nope")
    assert caught.value.code == 400


def test_ids():
    assert re.fullmatch(r"[a-z0-9]{12}", file_id())
    assert re.fullmatch(r"[a-z0-9]{36}", batch_id())


def test_rfc3339_nanoseconds():
    assert rfc3339(0.5) == "1970-01-01T00:00:00.500000000Z"
    assert rfc3339(86400.0) == "1970-01-02T00:00:00.000000000Z"


def test_clock_advances():
    clock = EmulatedClock(time_scale=1.0, start=1000.0)
    assert clock.now() >= 1000.0
    assert clock.advance(3600) >= 4600.0
