"""The fake model: deterministic answers derived from the request, shaped like the real ones.

* generate: a hash-seeded echo of the prompt (system instruction honoured), as a
  ``GenerateContentResponse`` with ``usageMetadata`` token counts estimated at 4 chars/token.
  With ``responseMimeType: application/json`` the text is valid JSON, shaped by
  ``responseSchema`` (OpenAPI subset) or ``responseJsonSchema`` (JSON Schema) when given.
* embed: a unit vector seeded by the text, ``outputDimensionality`` long.
Same request in, same answer out, so tests can predict results.
"""

from __future__ import annotations

import base64
import hashlib
import math
from array import array
from typing import Any

import orjson

from emulator.wire import field

_VOCAB = (
    "amber",
    "basil",
    "cedar",
    "delta",
    "ember",
    "fjord",
    "garnet",
    "harbor",
    "indigo",
    "juniper",
    "kestrel",
    "lumen",
    "meadow",
    "nectar",
    "onyx",
    "pebble",
    "quartz",
    "river",
    "saffron",
    "tundra",
    "umber",
    "violet",
    "willow",
    "xenon",
    "yarrow",
    "zephyr",
    "aurora",
    "breeze",
    "canyon",
    "dune",
    "echo",
    "flint",
)
_ECHO_WORDS = 12
_MAX_SCHEMA_DEPTH = 6


def estimate_tokens(chars: int) -> int:
    """The emulator's token estimate: one token per 4 characters, at least one."""
    return max(1, math.ceil(chars / 4))


def _texts(content: Any) -> list[str]:
    """Every ``parts[].text`` of one Content (or of a list of them, or of a bare string)."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [text for item in content for text in _texts(item)]
    parts = field(content, "parts")
    if not isinstance(parts, list):
        return []
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


def prompt_text(request: dict[str, Any]) -> str:
    """All text a generate request carries (contents only)."""
    return "\n".join(_texts(field(request, "contents", [])))


def system_text(request: dict[str, Any]) -> str:
    instruction = field(request, "systemInstruction")
    if instruction is None:
        instruction = request.get("system_instructions") or request.get("systemInstructions")
    return "\n".join(_texts(instruction)) if instruction is not None else ""


def request_chars(request: dict[str, Any], kind: str) -> int:
    """Characters of text in one request: the basis of every token estimate."""
    if kind == "embed":
        return sum(len(t) for t in _texts(field(request, "content")))
    return len(prompt_text(request)) + len(system_text(request))


def _digest(*parts: str) -> bytes:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=32).digest()


def _words(seed: bytes, count: int) -> list[str]:
    return [_VOCAB[seed[i % len(seed)] % len(_VOCAB)] for i in range(count)]


def _fake_json(schema: Any, seed: bytes, path: str, defs: dict[str, Any], depth: int) -> Any:
    """A value that satisfies ``schema`` (enough of OpenAPI and JSON Schema for tests)."""
    if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
        return _words(_digest(seed.hex(), path), 2)[0]
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _fake_json(defs.get(ref.rsplit("/", 1)[-1]), seed, path, defs, depth + 1)
    for combinator in ("anyOf", "any_of", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            usable = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return _fake_json((usable or options)[0], seed, path, defs, depth + 1)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[_digest(seed.hex(), path)[0] % len(enum)]
    kind = schema.get("type", "")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "string")
    kind = str(kind).lower()
    local = _digest(seed.hex(), path)
    if kind == "object" or (not kind and "properties" in schema):
        props = schema.get("properties") or {}
        return {
            name: _fake_json(sub, seed, f"{path}.{name}", defs, depth + 1)
            for name, sub in props.items()
        }
    if kind == "array":
        count = max(int(field(schema, "minItems", 0) or 0), 2)
        maximum = field(schema, "maxItems")
        if maximum is not None:
            count = min(count, int(maximum))
        return [
            _fake_json(schema.get("items"), seed, f"{path}[{i}]", defs, depth + 1)
            for i in range(count)
        ]
    if kind == "integer":
        return int.from_bytes(local[:2], "big") % 100
    if kind == "number":
        return round(int.from_bytes(local[:4], "big") / 2**32 * 100, 3)
    if kind == "boolean":
        return bool(local[0] & 1)
    return " ".join(_words(local, 3))


def _json_text(config: Any, seed: bytes) -> str:
    schema = field(config, "responseJsonSchema")
    if schema is None:
        schema = field(config, "responseSchema")
    if schema is None:
        value: Any = {"text": " ".join(_words(seed, 6))}
    else:
        defs: dict[str, Any] = {}
        if isinstance(schema, dict):
            defs = schema.get("$defs") or schema.get("definitions") or {}
        value = _fake_json(schema, seed, "$", defs, 0)
    return orjson.dumps(value).decode()


def generate(request: dict[str, Any], model: str, response_id_seed: str) -> dict[str, Any]:
    """A ``GenerateContentResponse`` for one ``GenerateContentRequest``."""
    prompt = prompt_text(request)
    system = system_text(request)
    seed = _digest(model, system, prompt)
    config = field(request, "generationConfig") or field(request, "config") or {}
    mime = str(field(config, "responseMimeType", "") or "")
    if mime.lower() == "application/json":
        text = _json_text(config, seed)
    else:
        echo = " ".join(prompt.split()[:_ECHO_WORDS])
        text = f"Echo: {echo} | {' '.join(_words(seed, 6))}."
        if system:
            text = f"({' '.join(system.split()[:8])}) {text}"
    prompt_tokens = estimate_tokens(len(prompt) + len(system))
    answer_tokens = estimate_tokens(len(text))
    response_id = base64.urlsafe_b64encode(_digest(response_id_seed)[:17]).decode().rstrip("=")
    return {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": answer_tokens,
            "totalTokenCount": prompt_tokens + answer_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        },
        "modelVersion": model.removeprefix("models/"),
        "responseId": response_id,
    }


def embed(request: dict[str, Any], default_dimensions: int) -> dict[str, Any]:
    """An ``EmbedContentResponse``: a unit vector seeded by the text."""
    text = "\n".join(_texts(field(request, "content")))
    dims = int(field(request, "outputDimensionality") or default_dimensions)
    raw = array("H")
    raw.frombytes(hashlib.shake_256(text.encode()).digest(dims * 2))
    values = [v / 32767.5 - 1.0 for v in raw]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return {"embedding": {"values": [round(v / norm, 7) for v in values]}}
