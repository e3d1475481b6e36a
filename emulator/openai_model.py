"""The fake model's answers in OpenAI's shapes: a chat completion and an embeddings list.

The same deterministic echo as :mod:`emulator.model` (same words for the same prompt), with
``usage`` counted at 4 characters a token; an embedding is the same seeded unit vector.
"""

from __future__ import annotations

import array
import base64
from typing import Any

from emulator import model
from emulator.model import estimate_tokens

_DEFAULT_DIMENSIONS = 1536
_SYSTEM_ROLES = ("system", "developer")


def text_of(content: Any) -> str:
    """A message's text: a string, or the ``text`` of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def chat_completion(body: dict[str, Any], response_id_seed: str) -> dict[str, Any]:
    """A ``chat.completion`` for one chat request body."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty array")
    system = [m for m in messages if isinstance(m, dict) and m.get("role") in _SYSTEM_ROLES]
    others = [m for m in messages if isinstance(m, dict) and m.get("role") not in _SYSTEM_ROLES]
    request: dict[str, Any] = {
        "contents": [{"parts": [{"text": text_of(m.get("content"))}]} for m in others],
    }
    if system:
        request["systemInstruction"] = {
            "parts": [{"text": text_of(m.get("content"))} for m in system]
        }
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        described = fmt.get("json_schema")
        schema = described.get("schema") if isinstance(described, dict) else None
        config: dict[str, Any] = {"responseMimeType": "application/json"}
        if schema is not None:
            config["responseJsonSchema"] = schema
        request["generationConfig"] = config
    name = str(body.get("model") or "gpt-emulated")
    answer = model.generate(request, name, response_id_seed)
    text = answer["candidates"][0]["content"]["parts"][0]["text"]
    usage = answer["usageMetadata"]
    prompt, completion = usage["promptTokenCount"], usage["candidatesTokenCount"]
    return {
        "id": "chatcmpl-" + answer["responseId"],
        "object": "chat.completion",
        "created": 0,
        "model": name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """An embeddings ``list`` for one embeddings request body."""
    value = body.get("input")
    inputs = value if isinstance(value, list) else [value]
    if not inputs or not all(isinstance(item, str) for item in inputs):
        raise ValueError("'input' must be a string or an array of strings")
    dimensions = int(body.get("dimensions") or _DEFAULT_DIMENSIONS)
    data = []
    tokens = 0
    for index, text in enumerate(inputs):
        vector = model.embed({"content": {"parts": [{"text": text}]}}, dimensions)
        values = vector["embedding"]["values"]
        if body.get("encoding_format") == "base64":
            packed = array.array("f", values).tobytes()
            embedding: Any = base64.b64encode(packed).decode()
        else:
            embedding = values
        data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens += estimate_tokens(len(text))
    return {
        "object": "list",
        "data": data,
        "model": str(body.get("model") or "text-embedding-emulated"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
