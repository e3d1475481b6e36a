"""Root fixtures: a clean environment for every test; real parts come from tests/fixtures/."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.fixtures.env",
    "tests.fixtures.emulator",
    "tests.fixtures.storage",
    "tests.fixtures.services",
]


@pytest.fixture(autouse=True)
def _clean_shardline_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No SHARDLINE_/GEMINI_ variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("SHARDLINE_", "GEMINI_", "GOOGLE_API_KEY", "GOOGLE_GEMINI")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHARDLINE_SECRETS_DIR", "")
    # Gemini parts go through the File API unless a test asks for inline mode: the tests of
    # uploads, sessions and crashes need files, and their parts are small.
    monkeypatch.setenv("SHARDLINE_GEMINI_INLINE_MAX_BYTES", "0")
    yield
