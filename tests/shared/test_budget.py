"""The budget's decisions and the price table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.budget import affordable, part_estimate
from shared.pricing import estimate_cost, price_of, price_table
from shared.run.records import TokenTotals


def test_parts_fit_in_input_order_until_one_would_pass_the_budget() -> None:
    assert affordable([1.0, 1.0, 1.0], 2.5) == 2
    assert affordable([1.0, 5.0, 0.1], 2.5) == 1  # no skipping ahead to cheaper parts
    assert affordable([], 1.0) == 0
    assert affordable([3.0], 2.5) == 0


def test_a_part_estimate_counts_input_and_assumed_output_at_the_batch_price() -> None:
    cost = part_estimate("gemini-2.5-flash", requests=1000, tokens=1_000_000, output_tokens=100)
    # 1M input at $0.30 and 100k output at $2.50, both halved
    assert cost.total == pytest.approx(0.15 + 0.125)


def test_the_table_is_dated_and_unknown_models_say_so() -> None:
    table = price_table()
    assert table.taken and table.source.startswith("https://")
    assert price_of("models/gemini-2.5-flash") is not None
    unknown = estimate_cost("gemini-9-ultra", TokenTotals(prompt=10))
    assert unknown.total is None and "no price known for gemini-9-ultra" in unknown.basis


def test_a_prices_file_extends_the_table(tmp_path: Path, monkeypatch) -> None:
    extra = tmp_path / "prices.json"
    extra.write_text(json.dumps({"source": "https://example.com", "taken": "2026-12-01",
                                 "models": {"my-model": {"input": {"text": 1.0},
                                                         "output": 2.0}}}))
    monkeypatch.setenv("SHARDLINE_PRICES_FILE", str(extra))
    assert price_of("my-model") is not None and price_of("gemini-2.5-flash") is not None
    cost = estimate_cost("my-model", TokenTotals(prompt=1_000_000), interactive=True)
    assert cost.total == pytest.approx(1.0)
