from __future__ import annotations

import tracemalloc

import orjson
import pytest

from shared.errors import RunError
from shared.jsonl.records import (
    error_json,
    error_record,
    outcome_order,
    record_line_number,
    response_tail,
    result_record,
    sidecar_fields,
    sidecar_head,
    sidecar_line,
)

ERROR = {"code": 503, "message": 'say ,"retryable":true} "quoted"', "status": "UNAVAILABLE"}


@pytest.mark.parametrize(
    ("key", "extra"),
    [("a", None), ('x ,"extra":{ \\', {"extra": {"n": 1}, "z": "}}"}), ("é😀", {"doc": 7})],
)
def test_sidecar_fields_is_line_and_head_in_one_pass(key: str, extra: dict[str, object] | None):
    record = sidecar_line(12, key, extra)
    assert sidecar_fields(record) == (record_line_number(record), sidecar_head(record))


def test_result_line_tail_and_error_bytes_are_slices_of_the_records():
    response = {"candidates": [{"content": {"parts": [{"text": "é }}\n"}]}}]}
    record = result_record(3, orjson.dumps(response))
    assert response_tail(record) == b',"response":' + orjson.dumps(response) + b"}\n"
    for retryable in (True, False):
        assert error_json(error_record(3, ERROR, retryable)) == orjson.dumps(ERROR)


def test_a_line_sorts_its_results_before_its_errors():
    result = result_record(7, b"{}")
    error = error_record(7, ERROR, False)
    assert outcome_order(result) == 14
    assert outcome_order(error) == 15
    assert outcome_order(error_record(6, ERROR, True)) < outcome_order(result)


@pytest.mark.parametrize(
    "call",
    [
        lambda: sidecar_fields(b'{"line":x,"key":"a"}\n'),
        lambda: sidecar_fields(b'{"line":1,"kee":"a"}\n'),
        lambda: response_tail(error_record(1, ERROR, True)),
        lambda: error_json(result_record(1, b"{}")),
    ],
)
def test_malformed_records_are_run_errors(call):
    with pytest.raises(RunError):
        call()


def test_records_are_right_sized_copies():
    # orjson's own output keeps a >= 4 KiB allocation; the sort buffer holds many records
    tracemalloc.start()
    try:
        kept = [error_record(n, ERROR, True) for n in range(200)]
        kept += [sidecar_line(n, "k", {"doc": n}) for n in range(200)]
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size < 400 * 1024
    assert len(kept) == 400
