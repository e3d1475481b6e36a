"""A cheap estimate of a request's input tokens, for admission control (not for billing).

The provider caps the tokens enqueued across a key's live batch jobs, so a shard's size in
tokens must be known before it is submitted, without a tokenizer and in the planner's hot
loop. The estimate:

- text (``parts[].text`` of ``contents``, ``content`` and ``systemInstruction``): one token
  per 4 characters, rounded up — the rule of thumb the provider documents for English;
- a media part (``inlineData`` / ``fileData``): a flat 258 tokens, what one image costs;
- any other part (function calls and responses, executable code) and ``tools`` /
  ``toolConfig``: their JSON length, at 4 characters per token;
- at least 1 per request.

An OpenAI-style or Anthropic body is read the same way: the text of ``messages[].content``
(a string, or ``text`` parts; an image part counts as one media part), Anthropic's
``system`` and an embedding's ``input`` (a string or a list of strings; token ids count one
each).

It tends to over-count code and under-count scripts with dense tokenization (CJK); the
counts the provider reports (``usageMetadata``) are what the summary and cost use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

CHARS_PER_TOKEN = 4
MEDIA_PART_TOKENS = 258
_CONTENT_OBJECTS = ("content", "systemInstruction", "system_instruction")
_MEDIA = frozenset(("inlineData", "inline_data", "fileData", "file_data"))
_TOOLING = ("tools", "toolConfig", "tool_config")
_BESIDES_CONTENTS = frozenset((*_CONTENT_OBJECTS, *_TOOLING))


def estimate_tokens(request: Mapping[str, Any]) -> int:
    """Estimated input tokens of one ``GenerateContentRequest`` or ``EmbedContentRequest``
    (or an OpenAI-style chat or embedding body)."""
    if "messages" in request or "input" in request:
        return _openai_estimate(request)
    chars = 0
    media = 0
    contents = request.get("contents")
    if type(contents) is not list:
        contents = []
    if not _BESIDES_CONTENTS.isdisjoint(request.keys()):  # the common request has none
        for name in _CONTENT_OBJECTS:
            value = request.get(name)
            if value is not None:
                contents = [*contents, value]
        for name in _TOOLING:
            value = request.get(name)
            if value is not None:
                chars += len(orjson.dumps(value))
    for content in contents:
        if type(content) is not dict:
            continue
        parts = content.get("parts")
        if type(parts) is not list:
            continue
        for part in parts:
            if type(part) is not dict:
                continue
            text = part.get("text")
            if type(text) is str:
                chars += len(text)
            elif not _MEDIA.isdisjoint(part.keys()):
                media += 1
            else:
                chars += len(orjson.dumps(part))
    return max(1, -(-chars // CHARS_PER_TOKEN) + media * MEDIA_PART_TOKENS)


def _openai_estimate(request: Mapping[str, Any]) -> int:
    chars = 0
    media = 0
    values: list[Any] = []
    messages = request.get("messages")
    if type(messages) is list:
        values = [m.get("content") for m in messages if type(m) is dict]
    for name in ("input", "system"):  # an embedding's input; Anthropic's system prompt
        value = request.get(name)
        if value is not None:
            values.append(value)
    for value in values:
        items = value if type(value) is list else [value]
        for item in items:
            if type(item) is str:
                chars += len(item)
            elif type(item) is int:
                chars += CHARS_PER_TOKEN  # a token id
            elif type(item) is dict and type(item.get("text")) is str:
                chars += len(item["text"])
            elif type(item) is dict:
                media += 1
    return max(1, -(-chars // CHARS_PER_TOKEN) + media * MEDIA_PART_TOKENS)
