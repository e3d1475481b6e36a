"""The fake model's answer in Anthropic's shape: a ``message`` with ``usage``."""

from __future__ import annotations

from typing import Any

from emulator import model
from emulator.openai_model import text_of


def message(params: dict[str, Any], response_id_seed: str) -> dict[str, Any]:
    """A Messages API ``message`` for one request's ``params``."""
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: field required (a non-empty list)")
    if not isinstance(params.get("max_tokens"), int):
        raise ValueError("max_tokens: field required")
    request: dict[str, Any] = {
        "contents": [{"parts": [{"text": text_of(m.get("content"))}]}
                     for m in messages if isinstance(m, dict)],
    }
    system = params.get("system")
    if system:
        request["systemInstruction"] = {"parts": [{"text": text_of(system)}]}
    name = str(params.get("model") or "claude-emulated")
    answer = model.generate(request, name, response_id_seed)
    usage = answer["usageMetadata"]
    text = answer["candidates"][0]["content"]["parts"][0]["text"]
    return {
        "id": "msg_" + answer["responseId"],
        "type": "message",
        "role": "assistant",
        "model": name,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage["promptTokenCount"],
            "output_tokens": usage["candidatesTokenCount"],
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
