"""Typed results: the validator the collect stage runs on each kept response."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from shared.errors import SpecError
from shared.jsonl.records import staged_line
from shared.run.spec import OutputSchema, RunSpec
from shared.typed import (
    INVALID_OUTPUT,
    INVALID_SCHEMA,
    ResponseValidator,
    check_output_schema,
    load_schema,
    openapi_to_json_schema,
    response_text,
    response_validator,
)

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def answer(*texts: str, thought: str | None = None) -> bytes:
    parts = [{"text": thought, "thought": True}] if thought else []
    parts += [{"text": t} for t in texts]
    return orjson.dumps({"candidates": [{"content": {"parts": parts, "role": "model"}}]})


def staged(config: dict | None = None, line: int = 1) -> bytes:
    request: dict = {"contents": [{"parts": [{"text": "who?"}]}]}
    if config is not None:
        request["generationConfig"] = config
    return staged_line(line, orjson.dumps(request))


def test_valid_json_passes_and_parts_are_joined() -> None:
    validate = ResponseValidator(SCHEMA)
    assert validate(staged(), answer('{"name": "Ada", "age": 36}')) is None
    assert validate(staged(), answer('{"name": "Ada",', ' "age": 36}')) is None


def test_thought_parts_are_not_part_of_the_text() -> None:
    validate = ResponseValidator(SCHEMA)
    assert validate(staged(), answer('{"name": "A", "age": 1}', thought="let me think")) is None


def test_wrong_shape_names_the_path_and_keeps_the_text() -> None:
    text = '{"name": "Ada", "age": "old"}'
    error = ResponseValidator(SCHEMA)(staged(), answer(text))
    assert error is not None
    assert error["status"] == INVALID_OUTPUT and error["code"] is None
    assert "$.age" in error["message"] and "integer" in error["message"]
    assert error["text"] == text


def test_missing_property_and_stringified_json_are_refused() -> None:
    validate = ResponseValidator(SCHEMA)
    missing = validate(staged(), answer('{"name": "Ada"}'))
    assert missing is not None and "'age' is a required property" in missing["message"]
    stringified = validate(staged(), answer(orjson.dumps('{"name":"A","age":1}').decode()))
    assert stringified is not None and "is not of type 'object'" in stringified["message"]


def test_text_that_is_not_json() -> None:
    error = ResponseValidator(SCHEMA)(staged(), answer('{"name": "Ada", "ag'))
    assert error is not None and error["message"].startswith("the response text is not JSON")
    assert error["text"] == '{"name": "Ada", "ag'


def test_a_response_without_text() -> None:
    blocked = orjson.dumps({"candidates": [{"finishReason": "SAFETY"}]})
    error = ResponseValidator(SCHEMA)(staged(), blocked)
    assert error is not None and error["status"] == INVALID_OUTPUT and error["text"] is None
    assert response_text({"promptFeedback": {"blockReason": "OTHER"}}) is None


def test_long_messages_are_cut_but_the_text_is_not() -> None:
    text = orjson.dumps({"name": "x" * 5000}).decode()
    error = ResponseValidator({"type": "object", "properties": {"name": {"maxLength": 3}}})(
        staged(), answer(text)
    )
    assert error is not None and len(error["message"]) <= 1000 and error["text"] == text


def test_from_request_uses_the_requests_json_schema() -> None:
    validate = ResponseValidator(None)
    config = {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}
    assert validate(staged(config), answer('{"name": "A", "age": 1}')) is None
    assert validate(staged(config), answer('{"name": "A"}')) is not None
    # A request without a schema is not checked: any text passes.
    assert validate(staged(), answer("plain words")) is None
    assert validate(staged({"temperature": 0}), answer("plain words")) is None


def test_from_request_converts_the_openapi_response_schema() -> None:
    openapi = {
        "type": "OBJECT",
        "properties": {
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": "1"},
            "note": {"type": "STRING", "nullable": True},
        },
        "required": ["tags"],
        "propertyOrdering": ["tags", "note"],
    }
    validate = ResponseValidator(None)
    config = {"responseMimeType": "application/json", "responseSchema": openapi}
    assert validate(staged(config), answer('{"tags": ["a"], "note": null}')) is None
    refused = validate(staged(config), answer('{"tags": []}'))
    assert refused is not None and "$.tags" in refused["message"]


def test_openapi_conversion() -> None:
    converted = openapi_to_json_schema(
        {"type": "STRING", "enum": ["a", "b"], "nullable": True, "max_length": "5",
         "any_of": [{"type": "INTEGER"}]}
    )
    assert converted == {
        "type": ["string", "null"], "enum": ["a", "b", None], "maxLength": 5,
        "anyOf": [{"type": "integer"}],
    }


def test_request_schemas_are_compiled_once_each(monkeypatch) -> None:
    import shared.typed as typed

    compiled: list[object] = []
    real = typed.compile_schema

    def counting(schema, where):
        compiled.append(schema)
        return real(schema, where)

    monkeypatch.setattr(typed, "compile_schema", counting)
    validate = ResponseValidator(None)
    one = {"responseJsonSchema": SCHEMA}
    two = {"responseJsonSchema": {"type": "array"}}
    for line in range(1, 50):
        validate(staged(one if line % 2 else two, line), answer('{"name": "A", "age": 1}'))
    assert len(compiled) == 2


def test_a_bad_request_schema_is_a_final_error() -> None:
    error = ResponseValidator(None)(staged({"responseJsonSchema": {"type": 12}}), answer("{}"))
    assert error is not None and error["status"] == INVALID_SCHEMA
    assert "not a valid JSON Schema" in error["message"]


def test_spec_takes_exactly_one_source() -> None:
    spec = RunSpec(input_uri="a", output_uri="b", output_schema={"json_schema": SCHEMA})
    assert spec.output_schema is not None and spec.output_schema.json_schema == SCHEMA
    for bad in ({}, {"json_schema": SCHEMA, "from_request": True}, {"uri": "x", "json_schema": {}}):
        with pytest.raises(ValidationError, match="exactly one"):
            OutputSchema.model_validate(bad)


def test_embed_runs_take_no_schema() -> None:
    with pytest.raises(ValidationError, match="an embedding has no text"):
        RunSpec(input_uri="a", output_uri="b", kind="embed",
                output_schema={"from_request": True})


def test_schema_from_a_uri(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_bytes(orjson.dumps(SCHEMA))
    output = OutputSchema(uri=str(path))
    assert load_schema(output) == SCHEMA
    validate = response_validator(output)
    assert validate is not None and validate(staged(), answer('{"name": 1}')) is not None
    assert response_validator(None) is None


def test_an_unusable_schema_fails_at_submission(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"output_schema.json_schema: not a valid JSON Schema"):
        check_output_schema(OutputSchema(json_schema={"type": "nonsense"}))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SpecError, match=r"broken.json: not JSON"):
        check_output_schema(OutputSchema(uri=str(broken)))
    check_output_schema(OutputSchema(from_request=True))
    check_output_schema(None)


def test_a_schema_that_needs_a_remote_reference_is_refused() -> None:
    remote = {"$ref": "https://schemas.invalid/person.json"}
    with pytest.raises(SpecError, match="cannot be used"):
        check_output_schema(OutputSchema(json_schema=remote))


def test_valid_values_never_reach_the_slow_reference(monkeypatch) -> None:
    import jsonschema

    def refuse(*_args, **_kwargs):
        raise AssertionError("the reference validator ran for a valid value")

    validate = ResponseValidator(SCHEMA)  # checking the schema itself uses the reference
    monkeypatch.setattr(jsonschema.Draft202012Validator, "iter_errors", refuse)
    assert validate(staged(), answer('{"name": "Ada", "age": 36}')) is None
    with pytest.raises(AssertionError, match="reference validator ran"):
        validate(staged(), answer('{"name": "Ada"}'))  # a refusal is worded by it
