"""The fake model (emulator/model.py)."""

from __future__ import annotations

import math

import orjson

from emulator import model


def req(text: str, **extra) -> dict:
    return {"contents": [{"parts": [{"text": text}], "role": "user"}], **extra}


def text_of(response: dict) -> str:
    return response["candidates"][0]["content"]["parts"][0]["text"]


def test_generate_is_deterministic_and_derived_from_the_prompt():
    one = model.generate(req("Why is the sky blue?"), "models/m", "id")
    assert one == model.generate(req("Why is the sky blue?"), "models/m", "id")
    assert "Why is the sky blue?" in text_of(one)
    assert text_of(one) != text_of(model.generate(req("Why is grass green?"), "models/m", "id"))
    usage = one["usageMetadata"]
    assert usage["promptTokenCount"] == math.ceil(len("Why is the sky blue?") / 4)
    assert usage["candidatesTokenCount"] == math.ceil(len(text_of(one)) / 4)
    assert one["modelVersion"] == "m"


def test_system_instruction_in_either_spelling():
    snake = model.generate(
        req("hi", system_instruction={"parts": [{"text": "Speak like a pirate"}]}), "m", "x"
    )
    camel = model.generate(
        req("hi", systemInstruction={"parts": [{"text": "Speak like a pirate"}]}), "m", "x"
    )
    assert "pirate" in text_of(snake)
    assert text_of(snake) == text_of(camel)


def test_json_schema_with_refs():
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}},
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "qty": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                    "price": {"type": "number"},
                },
            }
        },
    }
    config = {"responseMimeType": "application/json", "responseJsonSchema": schema}
    value = orjson.loads(text_of(model.generate(req("x", generationConfig=config), "m", "x")))
    assert len(value["items"]) == 2
    for item in value["items"]:
        assert isinstance(item["name"], str)
        assert isinstance(item["qty"], int)
        assert isinstance(item["price"], float)


def test_json_mode_without_schema_is_still_json():
    config = {"response_mime_type": "application/json"}
    assert isinstance(
        orjson.loads(text_of(model.generate(req("x", generation_config=config), "m", "x"))), dict
    )


def test_embedding_is_a_deterministic_unit_vector():
    request = {"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 32}
    values = model.embed(request, 768)["embedding"]["values"]
    assert len(values) == 32
    assert math.isclose(sum(v * v for v in values), 1.0, rel_tol=1e-4)
    assert values == model.embed(request, 768)["embedding"]["values"]
    assert (
        len(model.embed({"content": {"parts": [{"text": "x"}]}}, 768)["embedding"]["values"]) == 768
    )
