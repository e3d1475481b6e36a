"""Prices: the table is data (``shared/prices.json``), this module only reads and applies it.

The file holds the provider's interactive list prices per model, per input modality and for
output, in USD per million tokens, with the page and the date they were taken from, and the
factor the Batch API bills (0.5). ``SHARDLINE_PRICES_FILE`` names a file of the same shape
whose models replace or extend the bundled ones. A model not in the table gets no cost
(``basis`` says so) rather than a guess.

The counts Shardline has are totals per run (``usageMetadata``: prompt, candidates,
thoughts), not per modality, so prompt tokens are priced at the model's text input price;
for audio-heavy runs that under-counts (see the table). Thinking tokens bill as output;
cached prompt tokens are counted at the full input price, so the figure errs high.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import orjson
from pydantic import BaseModel, Field

from shared.run.records import CostEstimate, TokenTotals

BUNDLED = Path(__file__).with_name("prices.json")
PER_MILLION = 1_000_000


class ModelPrice(BaseModel):
    """Interactive USD per 1M tokens: input by modality (``text`` at least), and output."""

    input: dict[str, float] = Field(min_length=1)
    output: float = 0.0

    @property
    def text_input(self) -> float:
        return self.input.get("text", max(self.input.values()))


class PriceTable(BaseModel):
    source: str
    taken: str
    currency: str = "USD"
    batch_factor: float = Field(default=0.5, gt=0, le=1)
    models: dict[str, ModelPrice]


@cache
def _read(path: str) -> PriceTable:
    return PriceTable.model_validate(orjson.loads(Path(path).read_bytes()))


def price_table() -> PriceTable:
    """The bundled table, with ``SHARDLINE_PRICES_FILE``'s models laid over it."""
    table = _read(str(BUNDLED))
    extra = os.environ.get("SHARDLINE_PRICES_FILE")
    if not extra:
        return table
    override = _read(extra)
    return override.model_copy(update={"models": {**table.models, **override.models}})


def price_of(model: str) -> ModelPrice | None:
    return price_table().models.get(model.removeprefix("models/"))


def estimate_cost(model: str, tokens: TokenTotals, *, interactive: bool = False) -> CostEstimate:
    """What ``tokens`` cost on ``model``: at the batch price, or the interactive one."""
    table = price_table()
    price = table.models.get(model.removeprefix("models/"))
    if price is None:
        return CostEstimate(basis=f"no price known for {model} (prices of {table.taken})")
    factor = 1.0 if interactive else table.batch_factor
    per_token = factor / PER_MILLION
    input_cost = tokens.prompt * price.text_input * per_token
    output_cost = (tokens.candidates + tokens.thoughts) * price.output * per_token
    which = "interactive price" if interactive else f"batch price = {factor:.0%} of interactive"
    return CostEstimate(
        currency=table.currency,
        input=round(input_cost, 6),
        output=round(output_cost, 6),
        total=round(input_cost + output_cost, 6),
        basis=f"{which} ${price.text_input}/${price.output} per 1M input/output tokens "
        f"({table.source}, {table.taken})",
    )
