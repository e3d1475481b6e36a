"""``shardline.start_run``'s payload check: readable errors that never echo a value."""

from __future__ import annotations

import json

import pytest

from shared.errors import SpecError
from workers.tasks.run import parse_spec

SECRET = "AIzaFAKE-payload-8e2d4c6a10"


def test_a_good_payload_as_object_or_json_text() -> None:
    payload = {"input_uri": "/in.jsonl", "output_uri": "/out", "idempotency_key": "k-1"}

    assert parse_spec(payload) == parse_spec(json.dumps(payload))
    assert parse_spec(payload).idempotency_key == "k-1"


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ({"input_uri": "/in.jsonl"}, ["output_uri: Field required"]),
        ({"input_uri": "/in", "output_uri": "/o", "api_key": SECRET},
         ["api_key: Extra inputs are not permitted"]),
        ({"input_uri": "/in", "output_uri": "/o", "options": {"shard_max_bytes": SECRET}},
         ["options.shard_max_bytes:"]),
        ({"input_uri": "/in", "output_uri": "/o", "kind": SECRET}, ["kind:"]),
        ([SECRET], ["payload:"]),
        ('{"input_uri": "' + SECRET, ["payload: Invalid JSON"]),
    ],
)
def test_a_bad_payload_names_each_field_and_no_value(payload: object, names: list[str]) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(payload)  # type: ignore[arg-type]

    message = str(caught.value)
    assert message.startswith("invalid RunSpec: ")
    for name in names:
        assert name in message
    assert SECRET not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
