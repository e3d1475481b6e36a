"""Cost estimate at the batch price (50 % of the interactive price).

Interactive list prices in USD per million tokens, text, standard context, as published by
each provider in 2026 (Gemini's, OpenAI's and Anthropic's models share the table: their
names do not collide; each bills a batch at half the interactive price). They change: override
or extend them with ``SHARDLINE_PRICES_FILE``
(JSON ``{"model": {"input": x, "output": y}}``, interactive prices). An unknown model gets
no cost estimate rather than a wrong one. Thinking tokens bill as output.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from pydantic import BaseModel

from shared.run.records import CostEstimate, TokenTotals

BATCH_DISCOUNT = 0.5


class Price(BaseModel):
    input: float
    output: float = 0.0


INTERACTIVE_PRICES: dict[str, Price] = {
    "gemini-3-pro-preview": Price(input=2.00, output=12.00),
    "gemini-3-flash-preview": Price(input=0.50, output=3.00),
    "gemini-2.5-pro": Price(input=1.25, output=10.00),
    "gemini-2.5-flash": Price(input=0.30, output=2.50),
    "gemini-2.5-flash-lite": Price(input=0.10, output=0.40),
    "gemini-2.0-flash": Price(input=0.10, output=0.40),
    "gemini-2.0-flash-lite": Price(input=0.075, output=0.30),
    "gemini-embedding-001": Price(input=0.15),
    # OpenAI (Batch API: 50 % of these).
    "gpt-4.1": Price(input=2.00, output=8.00),
    "gpt-4.1-mini": Price(input=0.40, output=1.60),
    "gpt-4.1-nano": Price(input=0.10, output=0.40),
    "gpt-4o": Price(input=2.50, output=10.00),
    "gpt-4o-mini": Price(input=0.15, output=0.60),
    "o4-mini": Price(input=1.10, output=4.40),
    "text-embedding-3-small": Price(input=0.02),
    "text-embedding-3-large": Price(input=0.13),
    # Anthropic (Message Batches: 50 % of these).
    "claude-opus-4-1": Price(input=15.00, output=75.00),
    "claude-sonnet-4-5": Price(input=3.00, output=15.00),
    "claude-haiku-4-5": Price(input=1.00, output=5.00),
    "claude-3-5-haiku-latest": Price(input=0.80, output=4.00),
}


def price_table() -> dict[str, Price]:
    table = dict(INTERACTIVE_PRICES)
    path = os.environ.get("SHARDLINE_PRICES_FILE")
    if path:
        for model, price in orjson.loads(Path(path).read_bytes()).items():
            table[model] = Price.model_validate(price)
    return table


def estimate_cost(model: str, tokens: TokenTotals) -> CostEstimate:
    price = price_table().get(model.removeprefix("models/"))
    if price is None:
        return CostEstimate(basis=f"no price known for {model}")
    per_token = BATCH_DISCOUNT / 1_000_000
    # Cached prompt tokens bill like interactive cache hits; counted here at the full input
    # price, so the estimate errs high rather than low.
    input_cost = tokens.prompt * price.input * per_token
    output_cost = (tokens.candidates + tokens.thoughts) * price.output * per_token
    return CostEstimate(
        input=round(input_cost, 6),
        output=round(output_cost, 6),
        total=round(input_cost + output_cost, 6),
        basis=f"batch price = {BATCH_DISCOUNT:.0%} of interactive ${price.input}/"
        f"${price.output} per 1M input/output tokens",
    )
