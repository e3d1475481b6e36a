from __future__ import annotations

from shared.tokens import MEDIA_PART_TOKENS, estimate_tokens


def test_text_is_four_characters_per_token_rounded_up():
    request = {"contents": [{"parts": [{"text": "a" * 9}]}, {"parts": [{"text": "b" * 3}]}]}
    assert estimate_tokens(request) == 3


def test_system_instruction_and_embed_content_count():
    assert estimate_tokens({"content": {"parts": [{"text": "x" * 8}]}}) == 2
    request = {
        "contents": [{"parts": [{"text": "x" * 4}]}],
        "systemInstruction": {"parts": [{"text": "y" * 4}]},
    }
    assert estimate_tokens(request) == 2


def test_media_parts_are_flat():
    request = {
        "contents": [
            {"parts": [{"inlineData": {"mimeType": "image/png", "data": "A" * 10_000}}]},
            {"parts": [{"file_data": {"file_uri": "gs://x"}}]},
        ]
    }
    assert estimate_tokens(request) == 2 * MEDIA_PART_TOKENS


def test_tools_and_other_parts_count_by_json_length():
    base = {"contents": [{"parts": [{"text": "x"}]}]}
    with_tools = {**base, "tools": [{"functionDeclarations": [{"name": "f" * 100}]}]}
    assert estimate_tokens(with_tools) > estimate_tokens(base) + 20
    call = {"contents": [{"parts": [{"functionCall": {"name": "g" * 40, "args": {}}}]}]}
    assert estimate_tokens(call) > 10


def test_never_zero_and_tolerates_odd_shapes():
    assert estimate_tokens({}) == 1
    assert estimate_tokens({"contents": ["x", {"parts": "y"}, {"parts": [1]}]}) == 1
